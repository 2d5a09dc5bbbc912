"""Prometheus metrics of tutelad on `nodes[].metrics_address` (docs/metrics.md).

prometheus_client's own HTTP server thread answers the scrapes; the event loop reads the
daemon's state into a `Reading` (plain, frozen values) every `REFRESH` seconds and hands it
over as one attribute assignment, which a scrape reads once. So a slow or stuck scraper
never holds up the loop (heartbeats, leases), and the loop never waits for a scraper. The
counters and histograms of what happens between readings (`Observed`: local recoveries,
restore and failover durations, heartbeat lateness) are kept in the loop too, told by the
event journal's emitter and the messenger, and copied into each reading.
Names follow ClusterLabs' ha_cluster_exporter where they overlap (`tutela_` for
`ha_cluster_pacemaker_` and `ha_cluster_corosync_`).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from tutela.engine.ownership_core import clustered
from tutela.journal.events import Event
from tutela.lcm.messenger import spawn
from tutela.lcm.paths import paths_for, voters_of, witness_paths
from tutela.model.config import metrics_endpoint

if TYPE_CHECKING:
    from tutela.daemon.cluster import Cluster
    from tutela.engine.peer_report import PeerReport
    from tutela.journal.file import Journal

log = logging.getLogger(__name__)
REFRESH = 1.0
"""Seconds between readings (and between checks of `metrics_address` for a change)."""
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Seconds a heartbeat round goes out late: a millisecond or two on a quiet node; half the
heartbeat interval is logged as a warning."""
DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds of a restore or a failover: an address takes a fraction of a second, a database
minutes."""


@dataclass(frozen=True)
class HistogramValue:
    buckets: tuple[tuple[float, int], ...]
    """(upper bound, observations up to it), the last bound +Inf."""
    total: float


@dataclass
class Buckets:
    """A histogram filled in the event loop; `value()` is its copy for a reading."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def value(self) -> HistogramValue:
        return HistogramValue(tuple(zip((*self.bounds, math.inf),
                                        itertools.accumulate(self.counts), strict=True)),
                              self.total)


@dataclass
class Observed:
    """What the daemon tells the metrics as it happens, in the event loop: every heartbeat
    round's delay and every record of the event journal."""

    lateness: Buckets = field(default_factory=lambda: Buckets(LATENESS_BUCKETS))
    local_recoveries: Counter[str] = field(default_factory=Counter)
    restores: dict[str, Buckets] = field(default_factory=dict)
    failovers: dict[str, Buckets] = field(default_factory=dict)
    last_holder: dict[str, str] = field(default_factory=dict)
    """Hierarchy -> the last node seen holding its lease (from the readings)."""
    _restore_began: dict[str, datetime.datetime] = field(default_factory=dict)
    _dead_since: dict[str, datetime.datetime] = field(default_factory=dict)
    _takeover_from: dict[str, datetime.datetime] = field(default_factory=dict)
    """Correlation of a takeover from a dead holder -> when this node declared it DEAD."""

    def record(self, event: Event) -> None:
        at, subject = datetime.datetime.fromisoformat(event.at), event.subject
        if event.kind == "recovery.local":
            self.local_recoveries[subject] += 1
        elif event.kind == "node.down":
            self._dead_since[subject] = at
        elif event.kind == "node.up":
            self._dead_since.pop(subject, None)
        elif event.kind == "lease.won":
            holder = self.last_holder.get(subject)
            if holder in self._dead_since and holder in event.details.get("dead", ()):
                self._takeover_from[event.correlation] = self._dead_since[holder]
        elif event.kind == "restore.started":
            self._restore_began[subject] = at
        elif event.kind in ("restore.finished", "restore.failed"):
            self._restore_ended(event, at)

    def _restore_ended(self, event: Event, at: datetime.datetime) -> None:
        began = self._restore_began.pop(event.subject, None)
        dead_since = self._takeover_from.pop(event.correlation, None)
        if event.kind != "restore.finished":
            return
        if began is not None:
            self._histogram(self.restores, event.subject).observe((at - began).total_seconds())
        if dead_since is not None:
            self._histogram(self.failovers, event.subject).observe(
                (at - dead_since).total_seconds())

    @staticmethod
    def _histogram(histograms: dict[str, Buckets], root: str) -> Buckets:
        return histograms.setdefault(root, Buckets(DURATION_BUCKETS))


@dataclass(frozen=True)
class Reading:
    """What one scrape shows: this node's view of the cluster at one moment."""

    generation: int
    nodes: tuple[tuple[str, str, bool], ...]
    """(name, type 'member' or 'witness', alive) of every node and witness."""
    paths: tuple[tuple[str, str, str, bool], ...]
    """(peer, path name, kind, alive) of each comm path of this node."""
    resources: tuple[tuple[str, str, str, str], ...]
    """(resource, node, kit, state) on this node and every alive peer."""
    resources_total: int
    lease_holders: tuple[tuple[str, str], ...]
    """(hierarchy, node) of each clustered hierarchy whose lease holder is known."""
    failovers: Mapping[str, int]
    """Hierarchy -> automatic failovers seen since this daemon started."""
    votes: tuple[int, int, int]
    """(expected: every voter, total: those reachable, quorum: those needed)."""
    watchdog_armed: bool
    heartbeat_lateness_max: float
    local_recoveries: Mapping[str, int] = field(default_factory=dict)
    """Resource -> local recoveries begun here since this daemon started."""
    heartbeat_lateness: HistogramValue | None = None
    restore_durations: Mapping[str, HistogramValue] = field(default_factory=dict)
    """Hierarchy -> its restores here, from start to in service."""
    failover_durations: Mapping[str, HistogramValue] = field(default_factory=dict)
    """Hierarchy -> its takeovers here from a dead holder, from this node declaring the
    holder DEAD to the hierarchy in service here."""


def families(reading: Reading) -> Iterator[Metric]:
    """The metric families of one reading."""
    yield _gauge("tutela_config_generation", "Configuration generation this node runs.",
                 [], [((), reading.generation)])
    yield _gauge("tutela_nodes", "Nodes and witnesses: 1 per name, with its status.",
                 ["name", "type", "status"],
                 [((name, kind, "alive" if alive else "dead"), 1)
                  for name, kind, alive in reading.nodes])
    yield _gauge("tutela_nodes_configured", "Configured nodes (witnesses not counted).", [],
                 [((), sum(kind == "member" for _, kind, _ in reading.nodes))])
    yield _gauge("tutela_comm_path_up", "1 if the comm path to the peer is alive, else 0.",
                 ["peer", "path", "kind"],
                 [((peer, path, kind), int(alive)) for peer, path, kind, alive in reading.paths])
    yield _gauge("tutela_resources", "Resources: 1 per resource and node, with its state.",
                 ["id", "node", "kit", "status"], [(row, 1) for row in reading.resources])
    yield _gauge("tutela_resources_configured", "Configured resources.", [],
                 [((), reading.resources_total)])
    yield _gauge("tutela_lease_holder", "1 for the node holding a hierarchy's lease.",
                 ["hierarchy", "node"], [(row, 1) for row in reading.lease_holders])
    yield _counter("tutela_failovers", "Automatic failovers seen since this daemon started.",
                   "hierarchy", reading.failovers)
    yield _counter("tutela_local_recoveries", "Local recoveries begun on this node since "
                   "its daemon started.", "resource", reading.local_recoveries)
    yield _histogram("tutela_restore_duration_seconds", "Restores of a hierarchy on this "
                     "node, from start to in service.", ["hierarchy"],
                     [((root,), value) for root, value in reading.restore_durations.items()])
    yield _histogram("tutela_failover_duration_seconds", "Takeovers here from a dead "
                     "holder, from declaring it DEAD to the hierarchy in service.",
                     ["hierarchy"],
                     [((root,), value) for root, value in reading.failover_durations.items()])
    if reading.heartbeat_lateness is not None:
        yield _histogram("tutela_heartbeat_lateness_seconds", "How late each heartbeat "
                         "round went out (a held-up event loop).", [],
                         [((), reading.heartbeat_lateness)])
    expected, total, needed = reading.votes
    yield _gauge("tutela_quorate", "1 if this node reaches a majority of the voters.", [],
                 [((), int(total >= needed))])
    yield _gauge("tutela_quorum_votes", "Votes: expected (every voter), total (reachable "
                 "now), quorum (needed).", ["type"],
                 [(("expected_votes",), expected), (("total_votes",), total),
                  (("quorum",), needed)])
    yield _gauge("tutela_watchdog_armed", "1 while this node's watchdog is armed.", [],
                 [((), int(reading.watchdog_armed))])
    yield _gauge("tutela_heartbeat_lateness_max_seconds", "Latest a heartbeat round went "
                 "out since this daemon started (a held-up event loop).", [],
                 [((), reading.heartbeat_lateness_max)])


def _gauge(name: str, documentation: str, labels: list[str],
           samples: list[tuple[tuple[str, ...], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def _counter(name: str, documentation: str, label: str, counts: Mapping[str, int]
             ) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def _histogram(name: str, documentation: str, labels: list[str],
               samples: list[tuple[tuple[str, ...], HistogramValue]]
               ) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, value in sorted(samples, key=lambda sample: sample[0]):
        family.add_metric(list(values), [(_bound(le), count) for le, count in value.buckets],
                          value.total)
    return family


def _bound(le: float) -> str:
    return "+Inf" if le == math.inf else repr(le)


class ReadingCollector(Collector):
    """Serves the last reading; the event loop replaces `reading` as a whole."""

    def __init__(self) -> None:
        self.reading: Reading | None = None

    def collect(self) -> Iterator[Metric]:
        reading = self.reading  # read once: the loop may swap in the next one meanwhile
        if reading is not None:
            yield from families(reading)


@dataclass
class FailoverTally:
    """Counts each automatic failover once, from the histories the nodes report (the holder
    of a hierarchy reports its recent failovers for failover damping)."""

    seen: dict[str, set[float]] = field(default_factory=dict)

    def count(self, histories: Iterable[Mapping[str, Iterable[float]]]) -> dict[str, int]:
        for history in histories:
            for root, times in history.items():
                self.seen.setdefault(root, set()).update(times)
        return {root: len(times) for root, times in self.seen.items()}


def read(cluster: Cluster, tally: FailoverTally, observed: Observed) -> Reading:
    """This node's view now: in the event loop, from the daemon's in-memory state and what
    it observed."""
    config, me, messenger = cluster.engine.config, cluster.lcd.node, cluster.messenger
    detector = messenger.detector
    alive = {p: report for p, (_, report) in messenger.heartbeats.items()
             if detector.node_state(p) == "ALIVE"}
    nodes = [(n.name, "member", n.name == me or n.name in alive) for n in config.nodes]
    nodes += [(s.peer, "witness", detector.node_state(s.peer) == "ALIVE")
              for s in witness_paths(config)]
    paths = [(s.peer, s.name, s.kind, detector.path_state((s.peer, s.name)) == "ALIVE")
             for s in paths_for(config, me)]
    roots = [h.root for h in clustered(config, cluster.engine.hierarchies)]
    holders = _lease_holders(cluster, roots, alive)
    observed.last_holder.update(holders)
    own_failovers = cluster.ownership.core.failovers_report(roots)
    return Reading(
        generation=cluster.lcd.generation(), nodes=tuple(nodes), paths=tuple(paths),
        resources=_resources(cluster, alive), resources_total=len(config.resources),
        lease_holders=tuple(holders.items()),
        failovers=tally.count([own_failovers, *(r.failovers for r in alive.values())]),
        votes=_votes(cluster),
        watchdog_armed=cluster.ownership.watchdog.armed,
        heartbeat_lateness_max=messenger.max_heartbeat_lateness,
        local_recoveries=dict(observed.local_recoveries),
        heartbeat_lateness=observed.lateness.value(),
        restore_durations={r: b.value() for r, b in observed.restores.items()},
        failover_durations={r: b.value() for r, b in observed.failovers.items()})


def _resources(cluster: Cluster, alive: Mapping[str, PeerReport]
               ) -> tuple[tuple[str, str, str, str], ...]:
    """(resource, node, kit, state): this node's states, and each alive peer's last report."""
    me = cluster.lcd.node
    kits = {r.tag: r.kit for r in cluster.engine.config.resources}
    here = [(tag, me, kits.get(tag, ""), s.state.value)
            for tag, s in sorted(cluster.engine.states.items())]
    there = [(tag, peer, kits.get(tag, ""), state) for peer, report in sorted(alive.items())
             for tag, state in sorted(report.states.items())]
    return tuple(here + there)


def _lease_holders(cluster: Cluster, roots: list[str], alive: Mapping[str, PeerReport]
                   ) -> dict[str, str]:
    """Root -> the node holding its lease: this one, or an alive peer that says it does."""
    found = {}
    for root in roots:
        if cluster.leases.holds(root):
            found[root] = cluster.lcd.node
        elif holder := next((p for p, r in sorted(alive.items()) if root in r.holds), None):
            found[root] = holder
    return found


def _votes(cluster: Cluster) -> tuple[int, int, int]:
    """(every voter, those reachable now, those a lease needs)."""
    voters = voters_of(cluster.engine.config)
    detector = cluster.messenger.detector
    reached = {v for v in voters if v == cluster.lcd.node or detector.node_state(v) == "ALIVE"}
    disk = cluster.leases.disk_status()  # the disk voter is reached through the disk
    if disk is not None and disk["state"] == "ok":
        reached.add(str(disk["voter"]))
    return len(voters), len(reached), cluster.leases.holder.needed


class Metrics:
    """The HTTP endpoint on this node's `metrics_address`, (re)bound when it changes, and
    the readings it serves."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.collector = ReadingCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)  # tutelad's CPU, memory, open files
        self._tally = FailoverTally()
        self.observed = Observed()
        self._server: WSGIServer | None = None
        self._bound: tuple[str, int] | None = None

    async def run(self) -> None:
        try:
            while True:
                await self._bind(self._wanted())
                if self._server is not None:
                    self.collector.reading = read(self.cluster, self._tally, self.observed)
                await asyncio.sleep(REFRESH)
        finally:
            await self._bind(None)

    def _wanted(self) -> tuple[str, int] | None:
        entry = self.cluster.engine.config.node(self.cluster.lcd.node)
        text = entry.metrics_address if entry else None
        return None if text is None else metrics_endpoint(text)

    async def _bind(self, wanted: tuple[str, int] | None) -> None:
        """Serve on `wanted` (None: nowhere), once per change of the setting."""
        if wanted == self._bound:
            return
        if self._server is not None:
            server, self._server = self._server, None
            # shutdown() waits for the server thread's next poll (up to 0.5 s): not here
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        self._bound = wanted
        if wanted is None:
            return
        address, port = wanted
        try:
            self._server, _ = start_http_server(port, address, registry=self.registry)
        except OSError as error:
            log.error("metrics: cannot serve on %s:%d (%s); set nodes[%s].metrics_address "
                      "to a free port on an address of this node", address, port,
                      error.strerror, self.cluster.lcd.node)
            return
        log.info("metrics on http://%s:%d/metrics", address, port)


def serve_metrics(cluster: Cluster, journal: Journal) -> Metrics:
    """Start the metrics of this daemon (nothing is served while metrics_address is unset);
    they observe each heartbeat round's delay and the journal's records from now on."""
    metrics = Metrics(cluster)
    cluster.messenger.observe_lateness = metrics.observed.lateness.observe
    journal.listeners.append(metrics.observed.record)
    spawn(metrics.run(), name="metrics")
    return metrics
