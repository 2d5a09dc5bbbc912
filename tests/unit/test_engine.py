"""Engine on one node: ordering, parallel branches, rollback, local recovery, re-adoption.

Uses the recording kit (a test double) so only the engine's own logic is under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from recording_kit import World

from tutela.engine.node import LeaseGone, NodeEngine, OperationError, RuntimeState
from tutela.model.config import (
    ClusterConfig,
    Equivalency,
    HierarchySettings,
    RecoveryPolicy,
    Resource,
)
from tutela.model.states import ResourceState as S


class MemoryStore:
    def __init__(self) -> None:
        self.saved: dict[str, S] = {}

    def save_state(self, tag: str, state: S, reason: str) -> None:
        self.saved[tag] = state

    def forget_state(self, tag: str) -> None:
        self.saved.pop(tag, None)


def config(*resources: Resource) -> ClusterConfig:
    return ClusterConfig(name="t", resources=resources)


def res(tag: str, *children: str, **params: Any) -> Resource:
    policy = params.pop("recovery", RecoveryPolicy())
    return Resource(tag=tag, kit="recording", depends_on=children, params=params,
                    check_interval=0.02, recovery=policy)


CHAIN = (res("app", "fs"), res("fs", "ip"), res("ip"))


def run(engine_test: Callable[[NodeEngine], Awaitable[None]], cfg: ClusterConfig,
        tmp_path: Path, initial: dict[str, RuntimeState] | None = None) -> MemoryStore:
    store = MemoryStore()

    async def main() -> None:
        engine = NodeEngine(cfg, store, tmp_path, initial)
        if initial is None:  # a restart (initial states) goes through adopt() instead
            engine.update_config(cfg)
        try:
            await engine_test(engine)
        finally:
            await engine.shutdown(leave_resources=True)

    asyncio.run(main())
    return store


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition with a deadline (the engine's own tasks make it true)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_restore_bottom_up_and_remove_top_down(world: World, tmp_path: Path) -> None:
    async def scenario(engine: NodeEngine) -> None:
        await engine.restore("app")
        assert world.actions("restore") == ["ip", "fs", "app"]
        assert all(engine.states[t].state == S.ISP for t in ("app", "fs", "ip"))
        await engine.remove("fs")  # its parent goes first, its child nothing else needs after
        assert world.actions("remove") == ["app", "fs", "ip"]

    store = run(scenario, config(*CHAIN), tmp_path)
    assert store.saved == {"app": S.OSU, "fs": S.OSU, "ip": S.OSU}


def test_configuration_change_touches_only_the_resources_it_changes(
        world: World, tmp_path: Path) -> None:
    # In a large cluster every generation (each `tutela restore` anywhere) reaches every
    # node: resources it does not change keep their state record, since and monitor.
    class CountingStore(MemoryStore):
        writes = 0

        def save_state(self, tag: str, state: S, reason: str) -> None:
            super().save_state(tag, state, reason)
            self.writes += 1

    async def scenario(engine: NodeEngine) -> None:
        await engine.restore("app")
        before = dict(engine.states)
        writes = store.writes
        engine.update_config(config(*CHAIN, res("other")))
        assert store.writes == writes  # no state record written again
        assert all(engine.states[t] is before[t] for t in ("app", "fs", "ip"))
        unprotected = res("fs", "ip").model_copy(update={"protected": False})
        engine.update_config(config(res("app", "fs"), unprotected, res("ip"), res("other")))
        assert engine.states["fs"].state == S.ISU
        assert engine.states["app"] is before["app"]

    store = CountingStore()

    async def main() -> None:
        engine = NodeEngine(config(*CHAIN), store, tmp_path)
        engine.update_config(config(*CHAIN))
        try:
            await scenario(engine)
        finally:
            await engine.shutdown(leave_resources=True)

    asyncio.run(main())


def test_independent_branches_restore_in_parallel(world: World, tmp_path: Path) -> None:
    # each branch's restore waits until the other one has started: only parallel runs pass
    cfg = config(res("app", "a", "b"), res("a", wait_for="b"), res("b", wait_for="a"))

    async def scenario(engine: NodeEngine) -> None:
        await engine.restore("app")
        assert world.actions("restore")[-1] == "app"

    run(scenario, cfg, tmp_path)


def test_pre_checks_run_before_anything_is_restored(world: World, tmp_path: Path) -> None:
    cfg = config(res("app", "fs"), res("fs", "ip"), res("ip", fail_pre_check=True))

    async def scenario(engine: NodeEngine) -> None:
        with pytest.raises(OperationError, match="refused before any change"):
            await engine.restore("app")
        assert world.actions("restore") == []
        assert sorted(world.actions("pre_check")) == ["app", "fs", "ip"]

    run(scenario, cfg, tmp_path)


def test_failed_restore_rolls_back_what_it_restored(world: World, tmp_path: Path) -> None:
    cfg = config(res("app", "fs"), res("fs", "ip", fail_restore=True), res("ip"))

    async def scenario(engine: NodeEngine) -> None:
        with pytest.raises(OperationError, match="fs: cannot start"):
            await engine.restore("app")
        assert world.actions("remove") == ["ip"]
        assert world.running == set()
        assert engine.states["fs"].state == S.OSF
        assert engine.states["ip"].state == S.OSU
        assert engine.states["app"].state == S.OSU

    run(scenario, cfg, tmp_path)


def test_restore_stops_when_the_lease_is_gone(world: World, tmp_path: Path) -> None:
    """A clustered restore checks its lease before every step: one that waited behind a
    self-fence, or lost the lease midway, restores nothing more and undoes what it did."""
    held = {"lease": True}

    def lease() -> bool:
        if world.actions("restore") == ["ip"]:
            held["lease"] = False  # renewals failed while ip was being restored
        return held["lease"]

    async def scenario(engine: NodeEngine) -> None:
        with pytest.raises(LeaseGone, match="no longer holds its lease"):
            await engine.restore("app", allowed=lease)
        assert world.actions("restore") == ["ip"]
        assert world.actions("remove") == ["ip"]
        assert world.running == set()
        with pytest.raises(LeaseGone):
            await engine.restore("app", allowed=lambda: False)
        assert world.actions("restore") == ["ip"]  # nothing at all without the lease

    run(scenario, config(*CHAIN), tmp_path)


def test_local_recovery_brings_a_failed_resource_back(world: World, tmp_path: Path) -> None:
    async def scenario(engine: NodeEngine) -> None:
        await engine.restore("app")
        world.running.discard("app")  # the application dies
        await until(lambda: "recover" in (a for a, _ in world.calls)
                    and engine.states["app"].state == S.ISP)
        assert "recovered" in engine.states["app"].reason

    run(scenario, config(*CHAIN), tmp_path)


def test_recovery_gives_up_after_its_attempts(world: World, tmp_path: Path) -> None:
    cfg = config(res("app", fail_recover=True, recovery=RecoveryPolicy(attempts=2, window=60)))

    async def scenario(engine: NodeEngine) -> None:
        await engine.restore("app")
        world.running.discard("app")
        await until(lambda: engine.states["app"].state == S.OSF)
        assert world.actions("recover") == ["app", "app"]
        assert "gave up after 2 attempt(s)" in engine.states["app"].reason

    run(scenario, cfg, tmp_path)


def test_restart_readopts_healthy_resources_without_restoring(world: World,
                                                               tmp_path: Path) -> None:
    world.running |= {"app", "fs", "ip"}  # still running from before the restart
    before = {t: RuntimeState(S.ISP, "restored", "") for t in ("app", "fs", "ip")}

    async def scenario(engine: NodeEngine) -> None:
        await engine.adopt()
        assert world.actions("restore") == []
        assert all(engine.states[t].state == S.ISP for t in before)
        assert "re-adopted" in engine.states["app"].reason

    run(scenario, config(*CHAIN), tmp_path, before)


def test_restart_recovers_what_died_meanwhile(world: World, tmp_path: Path) -> None:
    world.running |= {"fs", "ip"}
    before = {t: RuntimeState(S.ISP, "restored", "") for t in ("app", "fs", "ip")}

    async def scenario(engine: NodeEngine) -> None:
        await engine.adopt()
        await until(lambda: world.actions("recover") == ["app"]
                    and engine.states["app"].state == S.ISP)

    run(scenario, config(*CHAIN), tmp_path, before)


def test_in_service_resources_cannot_be_deleted_or_changed(world: World,
                                                            tmp_path: Path) -> None:
    async def scenario(engine: NodeEngine) -> None:
        await engine.restore("app")
        problems = engine.check_change(config(res("fs", "ip"), res("ip")))
        assert [p.field for p in problems] == ["resources[app]"]
        changed = config(res("app", "fs", fail_recover=True), res("fs", "ip"), res("ip"))
        assert [p.field for p in engine.check_change(changed)] == ["resources[app].params"]

    run(scenario, config(*CHAIN), tmp_path)


def test_resources_in_service_on_another_node_cannot_be_deleted_or_changed_here(
        world: World, tmp_path: Path) -> None:
    async def scenario(engine: NodeEngine) -> None:
        elsewhere = {"app": "node2", "fs": "node2", "ip": "node2"}
        problems = engine.check_change(config(res("fs", "ip"), res("ip")), elsewhere)
        assert [(p.field, p.message) for p in problems] == [
            ("resources[app]", "is in service on node2 and would be deleted")]
        changed = config(res("app", "fs", fail_recover=True), res("fs", "ip"), res("ip"))
        assert [(p.field, p.message) for p in engine.check_change(changed, elsewhere)] == [
            ("resources[app].params", "cannot change while in service on node2")]
        assert engine.check_change(changed) == []  # what runs nowhere may change

    run(scenario, config(*CHAIN), tmp_path)


def test_stop_without_leaving_resources_removes_everything(world: World,
                                                           tmp_path: Path) -> None:
    async def scenario(engine: NodeEngine) -> None:
        await engine.restore("app")
        await engine.shutdown(leave_resources=False)
        assert world.running == set()
        assert world.actions("remove") == ["app", "fs", "ip"]

    run(scenario, config(*CHAIN), tmp_path)


def test_restart_leaves_a_dead_clustered_hierarchy_to_the_cluster(world: World,
                                                                   tmp_path: Path) -> None:
    """Without its lease this node must not repair it: another node may run it by now."""
    world.running |= {"fs", "ip"}
    before = {t: RuntimeState(S.ISP, "restored", "") for t in ("app", "fs", "ip")}
    clustered = config(*CHAIN).model_copy(update={"hierarchies": (HierarchySettings(
        root="app", equivalencies=(Equivalency(node="a", priority=1),
                                   Equivalency(node="b", priority=2))),)})

    async def scenario(engine: NodeEngine) -> None:
        await engine.adopt()
        assert engine.states["app"].state == S.OSU
        assert "left to the cluster" in engine.states["app"].reason
        # five check periods, counted by fs's checks (app's, if any, run on the same grid)
        await until(lambda: world.actions("quick_check").count("fs") >= 5)
        assert world.actions("recover") == []

    run(scenario, clustered, tmp_path, before)


def test_a_monitor_whose_stop_was_lost_does_not_recover_a_removed_resource(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remove stops the resource's monitor by cancelling it; a cancellation that comes as
    its check returns can be lost (asyncio.wait_for, Python 3.11). The monitor that goes on
    must not 'recover' what was removed: on shared storage that undoes the new owner's work."""
    async def scenario(engine: NodeEngine) -> None:
        monkeypatch.setattr(engine, "_stop_monitor",
                            lambda tag: engine._monitors.pop(tag, None))  # the lost cancel
        await engine.restore("app")
        monitor = engine._monitors["app"]
        await engine.remove("app")
        assert engine.states["app"].state == S.OSU
        await until(monitor.done)  # it ended by itself, having recovered nothing
        assert world.actions("recover") == []
        assert engine.states["app"].state == S.OSU

    run(scenario, config(res("app")), tmp_path)
