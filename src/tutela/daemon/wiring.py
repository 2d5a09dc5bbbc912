"""tutelad's parts, built in one place, each from the parts above it.

Nothing runs yet when `build` returns: `daemon/main.py` re-adopts the resources, starts the
cluster side (comm paths, leases, ownership) and then serves the control socket.
docs/architecture.md shows this function as the daemon's wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tutela.daemon import api_process, events, support
from tutela.daemon.cluster import Cluster
from tutela.daemon.keys import Keys
from tutela.daemon.leases import Leases
from tutela.daemon.metrics import serve_metrics
from tutela.daemon.multinode import MultiNode
from tutela.daemon.ownership import Ownership
from tutela.daemon.service import Service
from tutela.engine import peer_report
from tutela.engine.actions import ActionRunner
from tutela.engine.node import NodeEngine, RuntimeState
from tutela.engine.peer_report import PeerReport
from tutela.journal.file import Journal
from tutela.lcd.store import Lcd
from tutela.lcm.messenger import Identity, Messenger
from tutela.notifications.dispatch import Dispatcher


@dataclass(frozen=True)
class Daemon:
    lcd: Lcd
    engine: NodeEngine
    cluster: Cluster
    service: Service
    journal: Journal


def build(lcd: Lcd, state_dir: Path, runner: ActionRunner | None = None) -> Daemon:
    """The daemon of the node whose LCD is `lcd` (opened, and this daemon the only one on
    its state directory); `runner` runs its kit actions (tutelad: a process of their own;
    default: threads of this process)."""
    # The engine: this node's resources, from the configuration and the states it recorded.
    states = recorded_states(lcd)
    engine = NodeEngine(lcd.load(), lcd, state_dir, states, runner)
    config, settings = engine.config, engine.config.settings
    # The messenger: comm paths, heartbeats (read into PeerReports), requests between
    # nodes; an incarnation raised at every start tells peers this is a new run.
    identity = Identity(config.name, lcd.node, lcd.cluster_key, lcd.next_incarnation())
    messenger: Messenger[PeerReport] = Messenger(
        identity, settings.heartbeat_interval, settings.heartbeat_misses,
        read_report=peer_report.parse, port=settings.port)
    # The cluster side: what heartbeats carry and path events, configuration replication
    # and catch-up, the cluster view; it serves config.promise, config.get, config.push.
    cluster = Cluster(lcd, engine, messenger)
    # Leases, voted and held over the messenger; a vote for the configuration lease
    # carries the voter's configuration version to the cluster side.
    cluster.leases = Leases(lcd.node, config, messenger, identity.incarnation,
                            cluster.vote_extra, cluster.note_vote, lcd)
    # Ownership of the clustered hierarchies, under their leases; no takeover while an
    # alive peer announces a newer configuration.
    cluster.ownership = Ownership(lcd.node, engine, cluster.leases, messenger,
                                  cluster.config_behind, lcd.take_left_untold())
    # Multi-node hierarchies: this node's instance of each, restored or removed here
    # without a lease, from what every node reports.
    cluster.multinode = MultiNode(lcd.node, engine, messenger)
    # Key rotation: the messenger's key ring from the LCD; serves keys.rekey.
    cluster.keys = Keys(lcd, cluster)
    # The control socket's operations, what peers ask (op.*, hierarchy.check,
    # doctor.facts) and the join service.
    service = Service(lcd, engine, cluster)
    support.register(service)  # `tutela support-bundle` and the peers' support.collect
    # The event journal (docs/events.md): every part records what changed through its one
    # emitter; `tutela events` and the peers' events.read read it.
    journal = Journal(state_dir, lcd.node)
    for part in (engine, cluster, cluster.leases, cluster.ownership,
                 cluster.ownership.fencing, cluster.ownership.watchdog, cluster.multinode,
                 service):
        part.journal = journal.emit
    events.register(service)
    serve_metrics(cluster, journal)  # Prometheus, on nodes[].metrics_address (docs/metrics.md)
    api_process.register(service)  # the HTTPS API process, where enabled (docs/api.md)
    # Notifications (docs/notifications.md): the records each configured target wants, to
    # a delivery thread of its own; the current configuration read at each record.
    journal.listeners.append(Dispatcher(lambda: engine.config).record)
    journal.start()
    return Daemon(lcd, engine, cluster, service, journal)


def recorded_states(lcd: Lcd) -> dict[str, RuntimeState]:
    """The resource states this node last recorded, for the engine to re-adopt."""
    return {tag: RuntimeState(s.state, s.reason, s.changed_at, s.last_in_service)
            for tag, s in lcd.load_states().items()}
