"""What one ownership decision tick costs in a settled cluster: a micro-benchmark, no lab.

`.venv/bin/python bench/ownership_tick.py [--nodes 8 32] [--resources 500]
[--hierarchies 100] [--ticks 300] [--json]`

It builds the scale bench's shape (bench/scale.py: hierarchies of a binary heap of
resources, 3 nodes per hierarchy, primaries round-robin), settled: every hierarchy in
service on its priority-1 node, which holds its lease. Node1's `OwnershipCore` is handed a
`Situation` as daemon/ownership.py `_situation` builds it: a fresh cluster view each tick
from its peers' last reports, each report parsed anew from its last heartbeat (without the
bulky fields, which the parse keeps from the report before). Then it times `tick` alone
(not building the situation), one tick per 0.2 s of the core's clock:
- unchanged: nothing changes between ticks (an idle cluster);
- one peer changed: before each tick one peer (in turn) reports a new resource state
  (one of its resources from ISP to ISU and back: a heartbeat with the bulky fields).
It prints the median microseconds per tick and per hierarchy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scale import equivalencies, hierarchy_resources

from tutela.engine.cluster_view import Snapshot
from tutela.engine.ownership_core import OwnershipCore, Situation
from tutela.engine.peer_report import PeerReport, parse
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import Hierarchy, build_hierarchies
from tutela.model.states import ResourceState

ME = "node1"
INTERVAL = 0.2
"""Seconds of the core's clock between two ticks (the default heartbeat interval)."""
RAN = "2026-12-07T12:00:00+00:00"
WALL = 1_800_000_000.0


@dataclass(frozen=True)
class Resource:
    """A resource's runtime record as the cluster view reads it (engine.node.RuntimeState)."""

    state: ResourceState


@dataclass
class Cluster:
    """A settled cluster as node1 sees it."""

    config: ClusterConfig
    hierarchies: list[Hierarchy]
    owner: dict[str, str]
    """Root -> the node that runs it (its priority-1 node)."""
    reports: dict[str, PeerReport]
    """Peer -> its last report (with the bulky fields)."""

    def runs(self, node: str) -> list[Hierarchy]:
        return [h for h in self.hierarchies if self.owner[h.root] == node]


def settled_cluster(nodes: int, resources: int, hierarchies: int) -> Cluster:
    names = [f"node{i + 1}" for i in range(nodes)]
    sizes = [resources // hierarchies + (1 if i < resources % hierarchies else 0)
             for i in range(hierarchies)]
    config = ClusterConfig.model_validate({
        "name": "bench", "nodes": [{"name": n} for n in names],
        "resources": [r for i, size in enumerate(sizes)  # the process kit needs no scripts
                      for r in hierarchy_resources(i, size, "process", Path())],
        "hierarchies": [{"root": f"h{i:03d}-r0", "equivalencies": equivalencies(i, names, 3),
                         "target": "in_service"} for i in range(hierarchies)]})
    built = build_hierarchies(config.resources)
    owner = {h.root: config.hierarchy_settings(h.root).equivalencies[0].node for h in built}
    cluster = Cluster(config, built, owner, {})
    tags = [r.tag for r in config.resources]
    for peer in names[1:]:
        mine = cluster.runs(peer)
        running = {t for h in mine for t in h.members}
        cluster.reports[peer] = PeerReport(
            generation=1, version=(1, 1), hears=frozenset(names) - {peer},
            holds=frozenset(h.root for h in mine),
            states={t: "ISP" if t in running else "OSU" for t in tags},
            ran={h.root: RAN for h in mine})
    return cluster


def situations(cluster: Cluster, change: bool) -> Iterator[Situation]:
    """Node1's situation tick after tick, as the daemon builds it: peers' reports parsed
    anew (the bulky fields kept), a fresh view; with `change`, one peer's report with one
    resource state changed before each tick, peer after peer."""
    peers = sorted(cluster.reports)
    mine = cluster.runs(ME)
    here = {t: Resource(ResourceState.OSU) for t in (r.tag for r in cluster.config.resources)}
    here |= {t: Resource(ResourceState.ISP) for h in mine for t in h.members}
    my_ran = {h.root: RAN for h in mine}
    holds = frozenset(h.root for h in mine)
    reports = dict(cluster.reports)
    wires = {peer: cluster.reports[peer].to_wire(bulky=False) for peer in peers}
    tick = 0
    while True:
        if change:
            peer = peers[tick % len(peers)]
            reports[peer] = _one_state_changed(reports[peer], cluster.runs(peer))
        reports = {p: parse(wires[p], reports[p]) for p in peers}
        now = 2.0 + tick * INTERVAL
        seen = Snapshot.of(ME, reports, my_ran, frozenset(), here)
        yield Situation(now, WALL + now, cluster.config, cluster.hierarchies, seen,
                        dict(reports), holds)
        tick += 1


def _one_state_changed(report: PeerReport, runs: list[Hierarchy]) -> PeerReport:
    """The report with its first running hierarchy's root flipped between ISP and ISU."""
    root = runs[0].root
    flipped = "ISU" if report.states[root] == "ISP" else "ISP"
    return replace(report, states={**report.states, root: flipped})


def time_ticks(cluster: Cluster, change: bool, ticks: int,
               timer: Callable[[], float] = time.perf_counter) -> list[float]:
    """Microseconds per tick of node1's core, after it settled (no effects)."""
    core = OwnershipCore(ME, lease_duration=1.0)
    core.start(0.0, cluster.config)
    feed = situations(cluster, change)
    for _ in range(5):  # the first ticks learn who runs what
        core.tick(next(feed))
    samples = []
    for _ in range(ticks):
        at = next(feed)
        started = timer()
        effects = core.tick(at)
        samples.append((timer() - started) * 1e6)
        if effects:
            raise RuntimeError(f"a settled cluster should need no action, got {effects[:3]}")
    return samples


def measure(nodes: int, resources: int, hierarchies: int, ticks: int) -> dict[str, Any]:
    cluster = settled_cluster(nodes, resources, hierarchies)
    found: dict[str, Any] = {}
    for case, change in (("unchanged", False), ("one_peer_changed", True)):
        median = statistics.median(time_ticks(cluster, change, ticks))
        found[case] = {"median_us": round(median, 1),
                       "per_hierarchy_us": round(median / hierarchies, 2)}
    return found


def markdown(results: dict[int, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"{args.resources} resources in {args.hierarchies} hierarchies, 3 nodes each, "
             f"settled; median of {args.ticks} ticks",
             "", "| nodes | unchanged: µs/tick | µs/hierarchy | one peer changed: µs/tick "
             "| µs/hierarchy |", "|---|---|---|---|---|"]
    for nodes, found in results.items():
        same, changed = found["unchanged"], found["one_peer_changed"]
        lines.append(f"| {nodes} | {same['median_us']:.0f} | {same['per_hierarchy_us']:.2f} "
                     f"| {changed['median_us']:.0f} | {changed['per_hierarchy_us']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[8, 32],
                        help="cluster sizes (default: 8 32)")
    parser.add_argument("--resources", type=int, default=500)
    parser.add_argument("--hierarchies", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=300, help="ticks timed per case")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    for name in ("resources", "hierarchies", "ticks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if min(args.nodes) < 3:
        parser.error("--nodes: each size must be at least 3 (3 nodes per hierarchy)")
    if args.resources < args.hierarchies:
        parser.error("--resources must be at least --hierarchies (one root each)")
    results = {n: measure(n, args.resources, args.hierarchies, args.ticks) for n in args.nodes}
    if args.json:
        print(json.dumps({"command": sys.argv, "results": results}, indent=2))
    else:
        print(markdown(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
