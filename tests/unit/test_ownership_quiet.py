"""Skipped ownership ticks (engine.ownership_core `Quiet`) decide exactly as full ones.

Every tick of the ownership scenarios and of seeds of the ownership simulation is checked
against a full decision on a copy of the core: the same effects, the same core state after.
The skip must happen (an idle cluster's ticks are the point), and every kind of change a
driver or an action's end makes reaches the next tick.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from test_ownership_scenarios import SCENARIOS, WALL, World, _config, run

from tutela.engine import ownership_core as core
from tutela.engine.peer_report import PeerReport

sys.path.insert(0, str(Path(__file__).parents[1] / "sim"))
from ownership_sim import run_ownership_seeds  # tests/sim is no package

SIM_SEEDS = range(40)
FULL_TICK = core.OwnershipCore.tick


def skips(ownership: core.OwnershipCore, at: core.Situation) -> bool:
    """Whether `ownership` would skip the tick at `at`."""
    quiet = ownership._quiet
    return quiet is not None and quiet.covers(at, ownership.state())


def hashable(state: object) -> object:
    """The core's state with its tables' and records' copies as tuples: hash() then raises
    for a mutable value in them."""
    if isinstance(state, dict):
        return tuple((key, hashable(value)) for key, value in state.items())
    if isinstance(state, tuple):
        return tuple(hashable(value) for value in state)
    return state


@dataclass
class Count:
    ticks: int = 0
    skipped: int = 0


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[Count]:
    """Every tick also decided in full on a copy of the core, and compared."""
    count = Count()

    def tick(self: core.OwnershipCore, at: core.Situation) -> list[core.Effect]:
        shadow = copy.deepcopy(self)
        shadow._quiet = None  # the full decision
        expected = FULL_TICK(shadow, at)
        quiet = skips(self, at)
        found = FULL_TICK(self, at)
        assert found == expected, f"at {at.now}: skipped={quiet}"
        assert self.state() == shadow.state(), f"at {at.now}: skipped={quiet}"
        hash(hashable(self.state()))  # immutable values: a shallow copy keeps them
        count.ticks += 1
        count.skipped += quiet
        return found

    monkeypatch.setattr(core.OwnershipCore, "tick", tick)
    yield count


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_ticks_decide_as_full_ones(path: Path, checked: Count) -> None:
    run(yaml.safe_load(path.read_text()))
    assert checked.ticks


def test_simulated_ticks_decide_as_full_ones(checked: Count) -> None:
    failures, _ = run_ownership_seeds(SIM_SEEDS)
    assert not failures, failures[0].report()
    assert checked.skipped > checked.ticks / 4, checked  # calm weather is mostly quiet


# --- each kind of change reaches the next tick ----------------------------------------------

CASE = {"me": "node2", "hierarchies": [
    {"root": "app", "equivalencies": ["node1", "node2", "node3"]},
    {"root": "db", "equivalencies": ["node2", "node1"]}]}


def settled() -> tuple[core.OwnershipCore, World]:
    """node2 runs db, node1 app; node2's core has found it twice (quiet from now on)."""
    config, hierarchies = _config(CASE)
    ownership = core.OwnershipCore("node2", 1.0)
    ownership.start(-100.0, config)
    world = World("node2", config, hierarchies)
    world.change({"at": 0.0, "alive": ["node1", "node3"],
                  "peers": {"node1": {"holds": ["app"], "states": {"app": "ISP"}}},
                  "here": {"holds": ["db"], "in_service": ["db"]}})
    for at in (0.0, 0.2):
        assert ownership.tick(world.situation(ownership, at)) == []
    assert ownership._quiet is not None
    return ownership, world


def test_an_idle_tick_is_skipped() -> None:
    ownership, world = settled()
    at = world.situation(ownership, 0.4)
    assert skips(ownership, at)


@pytest.mark.parametrize("change", [
    {"alive": ["node3"]},                                          # the owner vanished
    {"peers": {"node1": {"holds": ["app"], "states": {}}}},        # a report changed
    {"peers": {"node1": {"holds": ["app"], "states": {"app": "ISP"}, "unleased": {"db": 3}}}},
    {"here": {"holds": []}},                                       # the lease went
    {"here": {"in_service": []}},                                  # out of service here
    {"here": {"failed": ["db"]}},
    {"here": {"ran": {"db": "2026-12-07T12:00:00+00:00"}}},
    {"behind": True},
], ids=str)
def test_a_changed_situation_is_decided_in_full(change: dict[str, object]) -> None:
    ownership, world = settled()
    world.change({"at": 0.4, **change})
    at = world.situation(ownership, 0.4)
    assert not skips(ownership, at)


def test_a_new_configuration_is_decided_in_full() -> None:
    ownership, world = settled()
    world.config = world.config.model_copy(update={"name": "renamed"})
    at = world.situation(ownership, 0.4)
    assert not skips(ownership, at)


@pytest.mark.parametrize("tell", [
    lambda o: o.restore_failed("db"),
    lambda o: o.give("db", 0.3),
    lambda o: o.take("app"),
    lambda o: o.forget_failure("app", WALL),
    lambda o: o.fenced("app", "node3"),
    lambda o: o.lease_ending("db", 0.5, "osu"),
    lambda o: o.refused("app", core.Blocked("no_quorum"), "refused", 0.3, WALL),
    lambda o: o.restored("app", True, WALL, o._order_of[0]),
], ids=["restore_failed", "give", "take", "forget", "fenced", "lease_ending",
        "refused", "restored"])
def test_an_action_that_ended_is_decided_in_full(tell: object) -> None:
    ownership, world = settled()
    tell(ownership)  # type: ignore[operator]
    at = world.situation(ownership, 0.4)
    assert not skips(ownership, at)


def test_a_timer_ends_the_skipping() -> None:
    """A hand-over grace (or a retry) and a failover hold end at a time: not skipped past."""
    ownership, world = settled()
    ownership._yielding["db"] = 0.9
    ownership._failovers.history["db"] = (WALL - 3, WALL - 2, WALL - 1)
    assert ownership.tick(world.situation(ownership, 0.4)) == []  # a change: in full
    assert ownership.tick(world.situation(ownership, 0.6)) == []
    quiet = ownership._quiet
    assert quiet is not None and (quiet.until, quiet.until_wall) == (0.9, WALL - 1 + 300)
    assert quiet.covers(world.situation(ownership, 0.8), ownership.state())
    assert not quiet.covers(world.situation(ownership, 0.9), ownership.state())
    assert not quiet.covers(replace(world.situation(ownership, 0.8), wall=WALL + 299),
                           ownership.state())


def test_a_report_equal_in_content_but_new_is_skipped() -> None:
    """Peers' reports are parsed anew from every heartbeat: compared by content."""
    ownership, world = settled()
    world.reports = {peer: replace(report, holds=frozenset(report.holds))
                     for peer, report in world.reports.items()}
    assert all(isinstance(r, PeerReport) for r in world.reports.values())
    at = world.situation(ownership, 0.4)
    assert skips(ownership, at)


def test_a_removal_deadline_is_not_skipped_past(checked: Count) -> None:
    """In service here without its lease and every acquire refused: between the retries
    the removal's deadline comes, at a tick that nothing else marks."""
    ownership, world = settled()
    world.change({"at": 0.4, "here": {"holds": [], "in_service": ["db"]}})
    fenced = []
    for tick in range(2, 40):
        at = tick * 0.2
        for effect in ownership.tick(world.situation(ownership, at)):
            if isinstance(effect, core.Acquire):
                ownership.refused("db", core.Blocked("no_quorum"), "refused", at, WALL + at,
                                  release=False)
                ownership.done("db")
            elif isinstance(effect, core.FenceSelf):
                fenced.append(at)
    # found at 0.4 after the start settled: out 2 ticks and 3 leases (its acquire) later
    assert fenced == [pytest.approx(0.4 + 2 * 0.2 + 3.0)]
