"""The multi-node driver (daemon/multinode.py) on one node: a real engine with the recording
kit (the unit tests' test double for kit actions), a real messenger that is not started,
whose peers are made ALIVE and given heartbeats by hand; `tick()` is called directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from recording_kit import World

from tutela.daemon.multinode import MultiNode
from tutela.engine.node import NodeEngine
from tutela.engine.peer_report import PeerReport, parse
from tutela.lcm.messenger import Identity, Messenger
from tutela.model.config import (
    ClusterConfig,
    Equivalency,
    HierarchySettings,
    Node,
    RecoveryPolicy,
    Resource,
)
from tutela.model.states import ResourceState as S


class MemoryStore:
    def save_state(self, tag: str, state: S, reason: str) -> None:
        pass

    def forget_state(self, tag: str) -> None:
        pass


def config(max_instances: int | None = None) -> ClusterConfig:
    web = Resource(tag="web", kit="recording", check_interval=0.02,
                   recovery=RecoveryPolicy(attempts=0))
    settings = HierarchySettings(
        root="web", multi_node=True, target="in_service", max_instances=max_instances,
        equivalencies=(Equivalency(node="node1", priority=1),
                       Equivalency(node="node2", priority=2)))
    return ClusterConfig(name="t", nodes=(Node(name="node1"), Node(name="node2")),
                         resources=(web,), hierarchies=(settings,))


def hear(messenger: Messenger[PeerReport], peer: str, report: PeerReport) -> None:
    """`peer` ALIVE (one path heard now) and `report` its last heartbeat."""
    path = (peer, f"tcp/{peer}")
    messenger.detector.add_path(path, time.monotonic())
    messenger.detector.heard(path, time.monotonic())
    messenger.heartbeats[peer] = (time.monotonic(), report)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)  # the engine's and driver's own tasks make it true


def run(cfg: ClusterConfig, tmp_path: Path,
        scenario: Callable[[MultiNode, NodeEngine], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = NodeEngine(cfg, MemoryStore(), tmp_path)
        engine.update_config(cfg)
        messenger: Messenger[PeerReport] = Messenger(
            Identity("t", "node1", b"k" * 32, 1), 0.2, 5, read_report=parse)
        driver = MultiNode("node1", engine, messenger)
        try:
            await scenario(driver, engine)
        finally:
            await engine.shutdown(leave_resources=True)

    asyncio.run(main())


def test_a_failed_instance_stays_down_until_an_administrator_restores_it(
        world: World, tmp_path: Path) -> None:
    async def scenario(driver: MultiNode, engine: NodeEngine) -> None:
        hear(driver.messenger, "node2", PeerReport(states={"web": "ISP"}))
        driver.tick()
        await until(lambda: engine.states["web"].state == S.ISP)
        world.running.discard("web")  # dies; recovery allows no attempt: it fails
        await until(lambda: engine.states["web"].state == S.OSF)
        driver.tick()  # noted failed, what is left removed
        await until(lambda: engine.states["web"].state == S.OSU and not driver._busy)
        assert driver.failed == {"web"}
        restores = len(world.actions("restore"))
        driver.tick()
        assert not driver._busy and len(world.actions("restore")) == restores  # stays down
        driver.forget_failure("web")  # tutela restore web
        driver.tick()
        await until(lambda: engine.states["web"].state == S.ISP)
        assert driver.failed == set()

    run(config(), tmp_path, scenario)


def test_an_admin_restore_brings_back_an_instance_whose_remove_left_it_failed(
        world: World, tmp_path: Path) -> None:
    """A resource still OSF when the administrator restores: that is what the restore is
    for, not a new failure."""
    async def scenario(driver: MultiNode, engine: NodeEngine) -> None:
        driver.tick()
        await until(lambda: engine.states["web"].state == S.ISP)
        world.running.discard("web")
        await until(lambda: engine.states["web"].state == S.OSF)
        driver.failed.add("web")  # as if its remove had failed: still OSF here
        driver.forget_failure("web")
        driver.tick()
        await until(lambda: engine.states["web"].state == S.ISP)
        assert driver.failed == set()

    run(config(), tmp_path, scenario)


def test_max_instances_leaves_the_place_to_a_running_peer_until_it_fails(
        world: World, tmp_path: Path) -> None:
    async def scenario(driver: MultiNode, engine: NodeEngine) -> None:
        hear(driver.messenger, "node2", PeerReport(states={"web": "ISP"}))
        driver.tick()
        assert not driver._busy and engine.states["web"].state == S.OSU
        assert driver.report()["web"]["nodes"]["node1"] == {
            "state": "OSU", "alive": True, "failed": False, "wanted": False}
        hear(driver.messenger, "node2",
             PeerReport(states={"web": "OSU"}, failed=frozenset({"web"})))
        driver.tick()
        await until(lambda: engine.states["web"].state == S.ISP)
        shown = driver.report()["web"]
        assert (shown["in_service"], shown["below_min"]) == (1, False)
        assert shown["nodes"]["node2"]["failed"]

    run(config(max_instances=1), tmp_path, scenario)
