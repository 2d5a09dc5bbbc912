"""Where a multi-node hierarchy runs: the pure decision one node takes for its own instance.

A multi-node hierarchy (`multi_node: true`, Serviceguard's multi_node package, Pacemaker's
clone) runs on every alive node of its equivalencies at once, or with `max_instances` on at
most that many. No lease: each node decides for its own instance from what every node
reports (who is alive, who runs an instance, who failed it), and every node that sees the
same reports names the same nodes, so they agree without asking each other.

Which nodes: the alive nodes of its equivalencies that have not failed it (an instance
that failed beyond local recovery stays down there until an administrator restores it),
by priority. With `max_instances`, running instances keep their place (switchback
`intelligent`, the default: moving an instance restarts it for nothing, and Pacemaker keeps
clones where they run too); the free places go to the highest-priority nodes. With
switchback `automatic` the highest-priority nodes run them: a lower-priority node gives
its instance up when a higher one is back, and the higher one starts only once the place is
free, so the count never goes above `max_instances` in a steady view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tutela.model.config import HierarchySettings

Decision = Literal["restore", "remove", "none"]


@dataclass(frozen=True)
class InstanceView:
    """One node's view of one multi-node hierarchy at one moment."""

    me: str
    settings: HierarchySettings
    alive: frozenset[str]
    """Nodes this node sees alive, itself included."""
    running_on: frozenset[str]
    """Alive nodes with an instance: in service, or being recovered locally (this node's
    own included)."""
    failed_on: frozenset[str] = frozenset()
    """Nodes where an instance failed beyond local recovery (this node included if so)."""
    parts_here: bool = False
    """Some resource of it is in service, being recovered or failed here: something to
    take out of service if this node must not run an instance."""
    allowed: frozenset[str] | None = None
    """The nodes on which its dependencies are met (engine.dependencies.placement); None:
    no dependencies."""


@dataclass(frozen=True)
class InstanceVerdict:
    decision: Decision
    """restore: start (or complete) the instance here; remove: take it out of service here."""
    wanted: frozenset[str]
    """The nodes that should run an instance, as this node sees it."""
    instances: int
    """Instances running now (alive nodes)."""
    minimum: int
    """min_instances, or 1; 0 while its target is out_of_service."""

    @property
    def below_min(self) -> bool:
        """Fewer instances run than min_instances: the hierarchy counts as down for those
        that depend on it (engine.dependencies.up_on), a reason to tell the administrator."""
        return self.instances < self.minimum


def decide(view: InstanceView) -> InstanceVerdict:
    """Restore the instance here, remove it, or leave it as it is."""
    wanted = wanted_nodes(view)
    running = view.running_on & view.alive
    here = view.me in running
    decision: Decision = "none"
    if view.me in wanted and not here and _room(view, wanted, running):
        decision = "restore"
    elif view.me not in wanted and (here or view.parts_here):
        decision = "remove"
    minimum = (view.settings.min_instances or 1) if view.settings.target == "in_service" else 0
    return InstanceVerdict(decision, wanted, len(running), minimum)


def wanted_nodes(view: InstanceView) -> frozenset[str]:
    """The nodes that should run an instance: none unless its target is in_service; else
    the eligible nodes (alive, in its equivalencies, not failed, dependencies met), all of
    them or, with max_instances, the running ones first (intelligent) or the
    highest-priority ones (automatic), each by priority."""
    settings = view.settings
    if settings.target != "in_service":
        return frozenset()
    eligible = [e.node for e in sorted(settings.equivalencies, key=lambda e: e.priority)
                if e.node in view.alive and e.node not in view.failed_on
                and (view.allowed is None or e.node in view.allowed)]
    if settings.max_instances is None:
        return frozenset(eligible)
    if settings.switchback == "intelligent":
        running = [n for n in eligible if n in view.running_on]
        eligible = running + [n for n in eligible if n not in view.running_on]
    return frozenset(eligible[:settings.max_instances])


def _room(view: InstanceView, wanted: frozenset[str], running: frozenset[str]) -> bool:
    """Whether this node's instance may start now: always without max_instances; with it,
    if it is among the highest-priority wanted nodes that fit into the free places (an
    instance giving its place up goes before another starts)."""
    limit = view.settings.max_instances
    if limit is None:
        return True
    starting = [e.node for e in sorted(view.settings.equivalencies, key=lambda e: e.priority)
                if e.node in wanted - running]
    return starting.index(view.me) < limit - len(running)
