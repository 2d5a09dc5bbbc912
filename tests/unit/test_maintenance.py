"""The maintenance stop's pure parts: resources left unprotected and re-adopted, who left
what in service, a document applied keeps the record, the reason peers give and its
rendering (docs/failover.md, "Maintenance stop")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from recording_kit import World
from test_engine import CHAIN, MemoryStore, config, run

from tutela.cli.output import print_status
from tutela.daemon.ownership import maintenance_by_root
from tutela.daemon.service import _keep_recorded
from tutela.engine.node import MAINTENANCE_REASON, NodeEngine, RuntimeState
from tutela.engine.stuck import Blocked, explain, from_payload, note, to_payload
from tutela.model.config import ClusterConfig, Maintenance, Node, NodeWatchdog
from tutela.model.states import ResourceState as S

AWAY = Maintenance(since="2026-12-07T03:00:00+00:00", hierarchies=("app", "db"))


def cluster(*nodes: Node) -> ClusterConfig:
    return ClusterConfig(name="t", nodes=nodes)


def test_a_maintenance_stop_leaves_everything_in_service_unprotected(
        world: World, tmp_path: Path) -> None:
    store = MemoryStore()

    async def main() -> None:
        engine = NodeEngine(config(*CHAIN), store, tmp_path)
        engine.update_config(config(*CHAIN))
        await engine.restore("app")
        await engine.shutdown(leave_resources=True)
        assert {t: s.state for t, s in engine.states.items()} == dict.fromkeys(
            ("app", "fs", "ip"), S.ISU)
        assert engine.states["app"].reason == MAINTENANCE_REASON

    asyncio.run(main())
    assert world.actions("remove") == []
    assert store.saved == dict.fromkeys(("app", "fs", "ip"), S.ISU)  # what a restart reads


def test_the_next_start_readopts_them_protected_without_restoring(
        world: World, tmp_path: Path) -> None:
    world.running |= {"app", "fs", "ip"}
    left = {t: RuntimeState(S.ISU, MAINTENANCE_REASON, "") for t in ("app", "fs", "ip")}

    async def scenario(engine: NodeEngine) -> None:
        await engine.adopt()
        assert world.actions("restore") == []
        assert all(engine.states[t].state == S.ISP for t in left)

    run(scenario, config(*CHAIN), tmp_path, left)


def test_each_root_left_in_service_belongs_to_the_node_that_left_it() -> None:
    config = cluster(Node(name="node1", maintenance=AWAY), Node(name="node2"),
                     Node(name="node3", maintenance=Maintenance(since="x", hierarchies=())))
    assert maintenance_by_root(config) == {"app": "node1", "db": "node1"}
    assert maintenance_by_root(cluster(Node(name="node1"))) == {}


def test_a_document_applied_keeps_the_records_in_force() -> None:
    """An export taken before the stop, applied during it, must not let node2 take over
    what node1 still runs; nor can a document put a node into maintenance."""
    current = cluster(Node(name="node1", maintenance=AWAY), Node(name="node2"))
    document = cluster(Node(name="node1"), Node(name="node2", maintenance=AWAY),
                       Node(name="node3"))
    kept = _keep_recorded(current, document)
    assert [n.maintenance for n in kept.nodes] == [AWAY, None, None]
    same = cluster(Node(name="node1", maintenance=AWAY))
    assert _keep_recorded(same, same) is same


def test_an_applied_document_keeps_the_recorded_watchdogs() -> None:
    softdog = NodeWatchdog(device="/dev/watchdog", present=True, min_timeout=1)
    current = cluster(Node(name="node1", watchdog=softdog), Node(name="node2"))
    document = cluster(Node(name="node1"), Node(name="node2", watchdog=softdog),
                       Node(name="node3", watchdog=softdog))
    kept = _keep_recorded(current, document)
    assert [n.watchdog for n in kept.nodes] == [softdog, None, softdog]


def test_peers_say_who_is_in_maintenance_and_the_command_that_confirms_a_takeover() -> None:
    record = note(None, Blocked("maintenance", "node1", "node2"), now=10.0)
    message = explain(record, "app", "watchdog", now=20.0)
    assert message.startswith("node1 is stopped for maintenance (tutela stop "
                              "--leave-resources) and may still run it, unprotected")
    assert message.endswith("make sure it is off (power it off or fence it), then confirm "
                            "the takeover with 'tutela switchover app --to node2'")
    assert from_payload(to_payload({"app": record})) == {"app": record}


def status(nodes: list[dict[str, Any]], stuck: list[dict[str, Any]]) -> dict[str, Any]:
    app = {"tag": "app", "kit": "process", "state": "OSU", "reason": "", "since": "",
           "depends_on": [], "params": {}, "elsewhere": {}}
    return {"cluster": "c", "node": "node2", "generation": 3, "daemon_pid": 1,
            "nodes": nodes, "hierarchies": [{"root": "app", "state": "OSU",
                                             "resources": [app], "ownership": {"stuck": stuck}}]}


def test_status_shows_the_node_in_maintenance_and_why_its_hierarchy_is_left_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [{"name": "node2", "state": "ALIVE", "local": True, "paths": [],
              "maintenance": None},
             {"name": "node1", "state": "DEAD", "local": False, "paths": [],
              "maintenance": {"since": AWAY.since, "hierarchies": ["app"]}}]
    stuck = [{"node": "node2", "reason": "maintenance", "message": "node1 is stopped ...",
              "since": "2026-12-07T03:00:02+00:00"}]
    print_status(status(nodes, stuck))
    out = capsys.readouterr().out
    assert ("node1 is in maintenance since 2026-12-07T03:00:00+00:00: app left in service "
            "there, unprotected; no other node takes them over ('tutela start' on node1 "
            "re-adopts them)") in out
    assert out.splitlines()[-1] == ("  left alone: node2 sees: node1 is stopped ... "
                                    "(since 2026-12-07T03:00:02+00:00)")
