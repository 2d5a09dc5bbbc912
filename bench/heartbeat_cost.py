"""What one heartbeat costs in Python: building and sealing it, and receiving it.

Pure (no lab, no sockets): `.venv/bin/python bench/heartbeat_cost.py [--nodes 8]
[--resources 500] [--hierarchies 100] [--rounds 2000] [--json] [--profile send|receive]`.

The payload is a settled node's (daemon/cluster.py `_heartbeat`): every resource's state,
the hierarchies it holds and when each last ran here, the peers it hears; sent bulky (with
the states and the ran times) or light (without). Sending is what the messenger does each
round: the payload built (`PeerReport.to_wire`), encoded once, sealed for every peer-path;
before it, the looks at every resource that building the report takes.
Receiving is what a TCP path's link does with a read holding one frame: the stream
splitter, then the messenger's own `_on_frame` (route, duplicate check, decryption,
replay guard, JSON, `peer_report.parse` against the peer's last report, the detector) on
a messenger with the peer's two paths and no sockets, fed each round's two frames, one per
path, as from a peer that sends the same settled payload every round and the bulky one
every tenth.
Prints the median microseconds per heartbeat; `--json` prints them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from tutela.engine.node import RuntimeState
from tutela.engine.peer_report import PeerReport, parse, wire_states
from tutela.lcm.frame import PayloadEncoder, Sealer
from tutela.lcm.messenger import HEARTBEAT, Identity, Messenger
from tutela.lcm.paths import PathSpec
from tutela.lcm.stream import FrameSplitter
from tutela.model.states import ResourceState

CLUSTER = "bench"
KEY = b"k" * 32
PATHS_PER_PEER = 2
BULKY_EVERY = 10
"""Rounds per bulky heartbeat in a settled cluster: BULKY_REFRESH / the interval."""


@dataclass(frozen=True)
class Shape:
    nodes: int
    resources: int
    hierarchies: int

    @property
    def peer_paths(self) -> int:
        return (self.nodes - 1) * PATHS_PER_PEER


def settled_report(shape: Shape, me: int = 1) -> PeerReport:
    """A settled node's report: its share of the hierarchies held and run here, all in
    service, every peer heard, nothing failed or stuck."""
    roots = [f"h{index:03d}" for index in range(shape.hierarchies)]
    mine = roots[me - 1::shape.nodes]
    return PeerReport(
        generation=4, version=(4, 2),
        hears=frozenset(f"node{n}" for n in range(1, shape.nodes + 1) if n != me),
        holds=frozenset(mine),
        states={f"h{index % shape.hierarchies:03d}-r{index:03d}": "ISP"
                for index in range(shape.resources)},
        ran=dict.fromkeys(mine, "2026-12-07T13:17:42.123456+00:00"))


def median_us(samples: list[int]) -> float:
    return round(statistics.median(samples) / 1000, 1)


def resource_costs(shape: Shape, rounds: int) -> dict[str, float]:
    """Median µs of the two looks at every resource a round's payload takes: its state as
    the wire carries it (`wire_states`, Cluster._heartbeat) and whether it is in service
    (`ResourceState.in_service`, Ownership.heartbeat's set of those in service)."""
    engine = {f"r{n:03d}": RuntimeState(ResourceState.ISP, "", "")
              for n in range(shape.resources)}
    states, in_service = [], []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        wire_states(engine)
        states.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        frozenset(tag for tag, held in engine.items() if held.state.in_service)
        in_service.append(time.perf_counter_ns() - start)
    return {"send_wire_states": median_us(states), "send_in_service_set": median_us(in_service)}


def send_costs(shape: Shape, rounds: int) -> dict[str, float]:
    """Median µs to build a round's payload (`to_wire`, encoded once) and to seal it for one
    peer-path, light and bulky, in a settled cluster (the same report every round) and
    with a report that changed since the last round; a round: one build, a seal per
    peer-path."""
    report = settled_report(shape)
    sealer = Sealer(KEY, CLUSTER, "node1", 1)
    peers = [f"node{n}" for n in range(2, shape.nodes + 1) for _ in range(PATHS_PER_PEER)]
    figures: dict[str, float] = {}
    for bulky in (False, True):
        kind = "bulky" if bulky else "light"
        settled = PayloadEncoder()
        builds, changed, seals = [], [], []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            text = settled.encode(report.to_wire(bulky))
            builds.append(time.perf_counter_ns() - start)
            start = time.perf_counter_ns()
            PayloadEncoder().encode(report.to_wire(bulky))  # nothing known: all encoded
            changed.append(time.perf_counter_ns() - start)
            for peer in peers:
                start = time.perf_counter_ns()
                sealer.seal_encoded(peer, HEARTBEAT, text)
                seals.append(time.perf_counter_ns() - start)
        seal_round = statistics.median(seals) * len(peers)
        figures[f"send_round_{kind}"] = round((statistics.median(builds) + seal_round) / 1000, 1)
        figures[f"send_build_{kind}"] = median_us(builds)
        figures[f"send_build_{kind}_changed"] = median_us(changed)
        figures[f"send_seal_per_path_{kind}"] = median_us(seals)
    return figures


def receiver(shape: Shape) -> tuple[Messenger[PeerReport], list[PathSpec]]:
    """A messenger on node1 with node2's paths and no sockets (udp specs open nothing)."""
    messenger: Messenger[PeerReport] = Messenger(Identity(CLUSTER, "node1", KEY, 1), 0.2, 5,
                                                 read_report=parse)
    specs = [PathSpec("node2", f"udp/203.0.113.{2 + n}-203.0.113.1", "udp",
                      f"203.0.113.{2 + n}", "203.0.113.1", n + 1)
             for n in range(PATHS_PER_PEER)]
    asyncio.run(messenger.set_paths(specs, set()))
    return messenger, specs


def receive_frames(shape: Shape, rounds: int) -> list[tuple[bytes, int, str]]:
    """node2's heartbeats to node1, a frame per path each round: (frame, path index, what it
    is: the first of a bulky round, the first light after one, or a repeat of the frame
    before)."""
    report = settled_report(shape, me=2)
    texts = {bulky: PayloadEncoder().encode(report.to_wire(bulky)) for bulky in (False, True)}
    sealer = Sealer(KEY, CLUSTER, "node2", 1)
    frames = []
    for n in range(rounds):
        bulky = n % BULKY_EVERY == 0
        first = "new_bulky" if bulky else "new_light" if n % BULKY_EVERY == 1 else "repeat"
        frames += [(sealer.seal_encoded("node1", HEARTBEAT, texts[bulky]), path,
                    first if path == 0 else "repeat") for path in range(PATHS_PER_PEER)]
    return frames


def receive_costs(shape: Shape, rounds: int) -> dict[str, float]:
    """Median µs per heartbeat received: a repeat of the one before, the first copy of a
    bulky round, the first light one after it; their mean over the settled schedule, and
    that mean times the peer-paths (a round of every peer's heartbeats)."""
    messenger, specs = receiver(shape)
    splitters = [FrameSplitter() for _ in specs]
    spent: dict[str, list[int]] = {"repeat": [], "new_bulky": [], "new_light": []}
    for data, path, what in receive_frames(shape, rounds):
        start = time.perf_counter_ns()
        for frame in splitters[path].feed(data):  # StreamLink.data_received, one read
            messenger._on_frame(frame, specs[path])
        spent[what].append(time.perf_counter_ns() - start)
    dropped = {reason: n for reason, n in messenger.counters.snapshot().items() if n}
    if dropped:
        raise RuntimeError(f"frames dropped: {dropped}")
    mean = sum(statistics.median(times) * len(times) for times in spent.values()) / sum(
        len(times) for times in spent.values())
    return {**{f"receive_{what}": median_us(times) for what, times in spent.items()},
            "receive_mean": round(mean / 1000, 1),
            "receive_round": round(mean * shape.peer_paths / 1000, 1)}


def profile(what: str, shape: Shape, rounds: int) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(send_costs if what == "send" else receive_costs, shape, rounds)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=8, help="cluster size (default 8)")
    parser.add_argument("--resources", type=int, default=500, help="resources (default 500)")
    parser.add_argument("--hierarchies", type=int, default=100,
                        help="hierarchies (default 100)")
    parser.add_argument("--rounds", type=int, default=2000,
                        help="heartbeat rounds measured (default 2000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", choices=("send", "receive"),
                        help="print a cProfile of that side to stderr too")
    args = parser.parse_args()
    if args.nodes < 2 or args.resources < 0 or args.hierarchies < 1 or args.rounds < 10:
        parser.error("--nodes must be at least 2, --hierarchies 1, --rounds 10, and "
                     "--resources not negative")
    shape = Shape(args.nodes, args.resources, args.hierarchies)
    if args.profile:
        profile(args.profile, shape, args.rounds)
    figures: dict[str, Any] = {"nodes": shape.nodes, "resources": shape.resources,
                               "hierarchies": shape.hierarchies,
                               "peer_paths": shape.peer_paths,
                               **resource_costs(shape, args.rounds),
                               **send_costs(shape, args.rounds),
                               **receive_costs(shape, args.rounds)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{shape.nodes} nodes ({shape.peer_paths} peer-paths), {shape.resources} resources,"
          f" {shape.hierarchies} hierarchies; median µs")
    for name, value in figures.items():
        if name not in ("nodes", "resources", "hierarchies", "peer_paths"):
            print(f"  {name:28} {value:8.1f}")


if __name__ == "__main__":
    main()
