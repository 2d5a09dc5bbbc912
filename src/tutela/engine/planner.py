"""Pure planning: which kit actions to run, in what order, to restore or remove resources.

Restore goes bottom-up (children first), remove top-down (parents first); steps without an
ordering between them may run in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

Action = Literal["restore", "remove"]


@dataclass(frozen=True)
class Step:
    tag: str
    action: Action
    after: frozenset[str]
    """Tags whose step must finish before this one starts."""


@dataclass(frozen=True)
class Plan:
    action: Action
    target: str
    steps: tuple[Step, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(step.tag for step in self.steps)


def plan_restore(hierarchy: Hierarchy, target: str,
                 states: Mapping[str, ResourceState]) -> Plan:
    """Restore `target` and everything it depends on; skip what is already in service."""
    wanted = {t for t in hierarchy.subtree(target) if not _in_service(states, t)}
    steps = tuple(
        Step(tag, "restore", frozenset(c for c in hierarchy.children[tag] if c in wanted))
        for tag in _ordered(hierarchy, wanted, children_first=True)
    )
    return Plan("restore", target, steps)


def plan_remove(hierarchy: Hierarchy, target: str,
                states: Mapping[str, ResourceState]) -> Plan:
    """Remove `target`, everything that depends on it, and the children nothing else needs.

    Removing the root takes the whole hierarchy out of service. What is already out of
    service (OSU) is skipped; failed (OSF) resources are removed too, as a failed resource
    may still hold some of its parts.
    """
    leaving = _leaving(hierarchy, target, states)
    wanted = {t for t in leaving if states.get(t, ResourceState.UNKNOWN) != ResourceState.OSU}
    steps = tuple(
        Step(tag, "remove", frozenset(p for p in hierarchy.parents_of(tag) if p in wanted))
        for tag in _ordered(hierarchy, wanted, children_first=False)
    )
    return Plan("remove", target, steps)


def _leaving(hierarchy: Hierarchy, target: str,
             states: Mapping[str, ResourceState]) -> set[str]:
    """The target, its dependents, and every child that no resource left in service needs.

    The cascade down runs only from resources this removal takes out, so a child that
    something else restored on its own stays in service.
    """
    leaving = set(hierarchy.dependents(target))
    taken_out = {t for t in leaving
                 if t == target or states.get(t, ResourceState.UNKNOWN) != ResourceState.OSU}
    changed = True
    while changed:
        changed = False
        for tag in sorted(hierarchy.members - leaving):
            parents = hierarchy.parents_of(tag)
            still_needed = any(p not in leaving and _in_service(states, p) for p in parents)
            if any(p in taken_out for p in parents) and not still_needed:
                leaving.add(tag)
                taken_out.add(tag)
                changed = True
    return leaving


def _in_service(states: Mapping[str, ResourceState], tag: str) -> bool:
    return states.get(tag, ResourceState.UNKNOWN).in_service


def _ordered(hierarchy: Hierarchy, tags: set[str], children_first: bool) -> list[str]:
    """A topological order of `tags` (stable by name), so plans read the same every time."""
    def before(tag: str) -> set[str]:
        related = hierarchy.children[tag] if children_first else hierarchy.parents_of(tag)
        return {t for t in related if t in tags}

    done: list[str] = []
    remaining = set(tags)
    while remaining:
        ready = sorted(t for t in remaining if before(t) <= set(done))
        if not ready:  # only reachable with a cycle, which validation rejects
            raise ValueError(f"dependency cycle among {sorted(remaining)}")
        done.extend(ready)
        remaining -= set(ready)
    return done
