"""Dependencies between hierarchies: where a hierarchy may run, given where the hierarchies
it needs are up (Serviceguard's same_node / any_node / different_node). Pure.

The ownership decision narrows its candidates to `Placement.allowed`: a hierarchy whose
dependency is not up waits (so an any_node dependency is restored first), follows a
same_node dependency to the node it moved to, and an owner that is no longer allowed takes
it out of service (removal when the dependency goes down).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tutela.model.config import HierarchyDependency, HierarchySettings


@dataclass(frozen=True)
class Placement:
    allowed: frozenset[str]
    """The nodes (of those asked about) on which every dependency is met."""
    unmet: tuple[str, ...]
    """Each dependency that rules out some of those nodes, in plain words."""


def up_on(settings: HierarchySettings, in_service_on: frozenset[str]) -> frozenset[str]:
    """The nodes on which a hierarchy counts as up for the hierarchies that need it: where
    it is in service, but nowhere while a multi_node one runs fewer than min_instances."""
    minimum = (settings.min_instances or 1) if settings.multi_node else 1
    return in_service_on if len(in_service_on) >= minimum else frozenset()


def placement(settings: HierarchySettings, nodes: Iterable[str],
              up: Mapping[str, frozenset[str]]) -> Placement:
    """Which of `nodes` may run the hierarchy of `settings`, with `up`: root of each
    hierarchy -> the nodes on which it counts as up (`up_on`)."""
    allowed = frozenset(nodes)
    unmet: list[str] = []
    for dependency in settings.dependencies:
        met = _meets(dependency, allowed, up.get(dependency.hierarchy, frozenset()))
        if met != allowed:
            unmet.append(describe(dependency))
        allowed = met
    return Placement(allowed, tuple(unmet))


def _meets(dependency: HierarchyDependency, nodes: frozenset[str],
           up: frozenset[str]) -> frozenset[str]:
    if dependency.location == "same_node":
        return nodes & up
    if dependency.location == "any_node":
        return nodes if up else frozenset()
    return frozenset(node for node in nodes if up - {node})


def describe(dependency: HierarchyDependency) -> str:
    where = {"same_node": "up on the same node", "any_node": "up on some node",
             "different_node": "up on another node"}[dependency.location]
    return f"needs {dependency.hierarchy} {where}"
