"""`tutela status`: each dependency of a hierarchy, where the hierarchy it needs is up, and
whether it is met, as this node sees the cluster (engine.cluster_view). Pure.

A dependency is met, while the hierarchy runs, when it holds on every node that runs it;
while the hierarchy runs nowhere, when it holds on some node that may run it (alive, and
in its equivalencies if it has any), so the hierarchy could be restored there.
"""

from __future__ import annotations

from typing import Any

from tutela.engine.cluster_view import Snapshot
from tutela.engine.dependencies import describe, placement, up_on
from tutela.model.config import ClusterConfig


def dependency_status(config: ClusterConfig, root: str,
                      snapshot: Snapshot) -> list[dict[str, Any]]:
    """One entry per dependency of `root`'s hierarchy: hierarchy, location, up_on (the
    nodes on which it counts as up), met, met_on (the nodes considered on which it holds)
    and text (in plain words)."""
    settings = config.hierarchy_settings(root)
    if not settings.dependencies:
        return []
    up = {d.hierarchy: up_on(config.hierarchy_settings(d.hierarchy),
                             snapshot.up_on(d.hierarchy))
          for d in settings.dependencies}
    running = snapshot.up_on(root)
    nodes = running or _may_run(config, root, snapshot)
    entries = []
    for dependency in settings.dependencies:
        alone = settings.model_copy(update={"dependencies": (dependency,)})
        met_on = placement(alone, nodes, up).allowed
        entries.append({"hierarchy": dependency.hierarchy, "location": dependency.location,
                        "up_on": sorted(up[dependency.hierarchy]),
                        "met": met_on == nodes if running else bool(met_on),
                        "met_on": sorted(met_on), "text": describe(dependency)})
    return entries


def _may_run(config: ClusterConfig, root: str, snapshot: Snapshot) -> frozenset[str]:
    """The nodes that could restore the hierarchy now: alive ones of its equivalencies
    (this node alone for a hierarchy without equivalencies)."""
    alive = snapshot.alive | {snapshot.me}
    equivalencies = {e.node for e in config.hierarchy_settings(root).equivalencies}
    return frozenset(alive & equivalencies) if equivalencies else frozenset({snapshot.me})
