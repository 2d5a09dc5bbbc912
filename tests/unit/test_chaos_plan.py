"""The chaos campaign's planner, driven against a small simulated lab with a virtual clock:
the same seed gives the same campaign, every fault kind is drawn, every fault is recovered,
and no fault strikes a cluster that is not healthy."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tutela.lab.chaos import Campaign, build_report, format_report
from tutela.lab.chaos_plan import (
    KINDS,
    Act,
    Action,
    CampaignPlanner,
    Finish,
    LabShape,
    NodeView,
    Observation,
    Step,
    Wait,
    draw,
    resolve,
)
from tutela.lab.checker import SplitBrainChecker

SHAPE = LabShape(("node1", "node2"), witness=True)
SETTLE = 3.0
"""Simulated seconds a nominal lab takes to be healthy again."""


@dataclass
class SimLab:
    """What the driver would see of a lab: actions change it at once; it is healthy SETTLE
    seconds after it last became nominal. `fence_frozen` powers a frozen node off (its
    watchdog) when its freeze is observed; `stuck` keeps it unhealthy whatever happens;
    `relapse_every` seconds, node2's tutelad dies on its own (also between two faults)."""

    shape: LabShape
    fence_frozen: bool = False
    stuck: bool = False
    relapse_every: float = 0.0
    now: float = 0.0
    state: dict[str, str] = field(default_factory=dict)
    daemon: dict[str, bool] = field(default_factory=dict)
    boot: dict[str, int | None] = field(default_factory=dict)
    witness: str = "running"
    cuts: set[tuple[str, int | None, str | None, str]] = field(default_factory=set)
    nominal_since: float = 0.0
    boots: int = 0
    owner: str = "node1"
    fenced: int = 0
    relapses: int = 1

    def __post_init__(self) -> None:
        for node in self.shape.nodes:
            self.state[node], self.daemon[node] = "running", True
            self.boot[node] = self._new_boot()

    def _new_boot(self) -> int:
        self.boots += 1
        return self.boots

    def nominal(self) -> bool:
        return (all(s == "running" for s in self.state.values()) and all(self.daemon.values())
                and (self.witness == "running" or not self.shape.witness) and not self.cuts)

    def observe(self, with_health: bool) -> Observation:
        if self.relapse_every and self.now >= self.relapses * self.relapse_every:
            self.relapses += 1
            self.apply(Action("kill-tutelad", "node2"))
        for node, state in self.state.items():
            if state == "frozen" and self.fence_frozen:
                self.apply(Action("power-off", node))
                self.fenced += 1
        if self.state.get(self.owner) != "running":
            self.owner = next((n for n, s in self.state.items() if s == "running"), self.owner)
        healthy = (not self.stuck and self.nominal()
                   and self.now >= self.nominal_since + SETTLE) if with_health else None
        return Observation(
            nodes={n: NodeView(self.state[n], self.boot[n], self.daemon[n])  # type: ignore[arg-type]
                   for n in self.shape.nodes},
            owner=self.owner, witness=self.witness if self.shape.witness else None,  # type: ignore[arg-type]
            cuts=bool(self.cuts), healthy=healthy, unhealthy_reason="simulated")

    def apply(self, action: Action) -> None:
        was_nominal = self.nominal()
        node = action.target
        if action.verb == "power-off":
            self.state[node], self.daemon[node], self.boot[node] = "off", False, None
        elif action.verb == "power-on":
            assert self.state[node] == "off", f"power-on of {node}, which is on"
            self.state[node], self.daemon[node] = "running", True
            self.boot[node] = self._new_boot()
        elif action.verb in ("freeze", "thaw"):
            assert self.state[node] != "off", f"{action.verb} of {node}, which is off"
            self.state[node] = "frozen" if action.verb == "freeze" else "running"
        elif action.verb == "cut":
            self.cuts.add((node, action.net, action.peer, action.direction))
        elif action.verb == "heal":
            self.cuts = {c for c in self.cuts if (c[0], c[1]) != (node, action.net)}
        elif action.verb == "heal-all":
            self.cuts = set()
        elif action.verb in ("kill-tutelad", "start-tutelad"):
            self.daemon[node] = action.verb == "start-tutelad"
        else:
            self.witness = {"witness-stop": "off", "witness-start": "running",
                            "witness-freeze": "frozen", "witness-thaw": "running"}[action.verb]
        if self.nominal() and not was_nominal:
            self.nominal_since = self.now


@dataclass
class Run:
    steps: list[tuple[float, Step]]
    planner: CampaignPlanner
    lab: SimLab
    finish: Finish
    injected_while_unhealthy: int = 0


def campaign(seed: int, duration: float = 1800.0, shape: LabShape = SHAPE,
             kinds: tuple[str, ...] = (), **sim: float) -> Run:
    lab = SimLab(shape, **sim)
    planner = CampaignPlanner(seed, shape, duration, kinds)
    steps: list[tuple[float, Step]] = []
    unhealthy_strikes = 0
    for _ in range(200_000):
        seen = lab.observe(planner.needs_health(lab.now))
        faults_before = len(planner.records)
        step = planner.next(lab.now, seen)
        steps.append((lab.now, step))
        if len(planner.records) > faults_before and not (lab.nominal() and seen.healthy):
            unhealthy_strikes += 1
        if isinstance(step, Finish):
            return Run(steps, planner, lab, step, unhealthy_strikes)
        if isinstance(step, Act):
            for action in step.actions:
                lab.apply(action)
        else:
            lab.now = max(step.until, lab.now + 0.25)  # the driver's poll
    raise AssertionError("the campaign never finished")


def acts(run: Run) -> list[tuple[float, tuple[Action, ...]]]:
    return [(round(at, 3), step.actions) for at, step in run.steps if isinstance(step, Act)]


def test_the_same_seed_gives_the_same_campaign() -> None:
    first, again = campaign(42, fence_frozen=True), campaign(42, fence_frozen=True)
    assert acts(first) == acts(again)
    assert acts(first) != acts(campaign(43, fence_frozen=True))


def test_a_fault_is_the_same_whatever_came_before() -> None:
    """Fault i is drawn from (seed, i) alone: a replay stays in step even when an earlier
    fault ended differently (here: its node was fenced)."""
    fenced = campaign(7, duration=600, fence_frozen=True).planner.records
    plain = campaign(7, duration=600).planner.records
    shared = min(len(fenced), len(plain))
    assert shared > 10
    assert [r.fault.kind for r in fenced[:shared]] == [r.fault.kind for r in plain[:shared]]
    assert [r.fault.duration for r in fenced[:shared]] == \
        [r.fault.duration for r in plain[:shared]]


def test_every_fault_kind_is_drawn() -> None:
    run = campaign(1)
    assert {r.fault.kind for r in run.planner.records} == set(KINDS)
    three = LabShape(("node1", "node2", "node3"), witness=False)
    kinds = {r.fault.kind for r in campaign(1, shape=three).planner.records}
    assert kinds == set(KINDS) - {"witness-loss"}


def test_only_the_chosen_kinds_are_drawn() -> None:
    run = campaign(5, duration=600, kinds=("flap", "power-off"))
    assert {r.fault.kind for r in run.planner.records} == {"flap", "power-off"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_fault_is_recovered_and_the_lab_ends_nominal(seed: int) -> None:
    run = campaign(seed, fence_frozen=True)
    assert run.finish.ok, run.finish.reason
    assert run.planner.records
    assert all(r.recovered is not None and r.recovery_started is not None
               for r in run.planner.records)
    assert run.lab.nominal()


def test_no_fault_strikes_a_cluster_that_is_not_healthy() -> None:
    """Also when the cluster breaks on its own during the pause between two faults."""
    run = campaign(9, fence_frozen=True, relapse_every=23.3)
    assert run.lab.relapses > 50 and run.planner.records
    assert run.injected_while_unhealthy == 0


def test_recovery_follows_each_fault_after_its_duration() -> None:
    run = campaign(11, duration=900)
    for record in run.planner.records:
        assert record.recovery_started is not None
        assert record.recovery_started >= record.started + record.fault.duration


def test_a_fenced_frozen_node_is_powered_on_and_counted_as_fencing() -> None:
    run = campaign(3, duration=900, kinds=("freeze",), fence_frozen=True)
    assert run.finish.ok
    assert run.lab.fenced == len(run.planner.records) > 0
    assert len(run.planner.fencing) == run.lab.fenced
    assert all(event.endswith("powered off") for event in run.planner.fencing)
    recoveries = [a for _, actions in acts(run) for a in actions if a.verb == "power-on"]
    assert len(recoveries) == run.lab.fenced


def test_a_power_off_by_the_campaign_is_no_fencing() -> None:
    run = campaign(3, duration=900, kinds=("power-off",))
    assert run.planner.records and run.planner.fencing == []


def test_a_cluster_that_never_recovers_fails_the_campaign() -> None:
    run = campaign(4, duration=900, stuck=True)
    assert not run.finish.ok
    assert "not healthy" in run.finish.reason
    assert run.planner.records == []  # nothing was injected into an unhealthy cluster


def test_the_campaign_ends_on_time_with_a_healthy_cluster() -> None:
    run = campaign(6, duration=300)
    assert run.finish.ok
    last_fault = run.planner.records[-1]
    assert last_fault.started < 300
    assert run.steps[-1][0] >= 300


def test_a_flapping_link_ends_healed() -> None:
    d = next(d for d in (draw(8, i, ("flap",)) for i in range(50)) if len(d.flaps) % 2)
    fault = resolve(d, SHAPE, "node1")
    assert [a.verb for _, a in fault.script][-1] == "cut"  # left cut: recovery heals it
    run = campaign(8, duration=600, kinds=("flap",))
    assert run.finish.ok and not run.lab.cuts


def test_targets_follow_the_owner_share() -> None:
    draws = [draw(12, i, ("power-off",)) for i in range(400)]
    at_owner = [resolve(d, SHAPE, "node2").target == "node2" for d in draws]
    assert 0.5 < sum(at_owner) / len(at_owner) < 0.7


def test_kinds_that_cannot_run_are_refused() -> None:
    no_witness = LabShape(("node1", "node2"), witness=False)
    with pytest.raises(ValueError, match="witness-loss"):
        CampaignPlanner(1, no_witness, 60, ("witness-loss",))


def test_waits_are_never_in_the_past_while_a_fault_is_active() -> None:
    run = campaign(13, duration=600)
    for at, step in run.steps:
        if isinstance(step, Wait) and step.until < at:
            raise AssertionError(f"a wait until {step.until} at {at}")


@pytest.mark.parametrize(("args", "named"), [
    (["--faults", "power-off,bogus"], "--faults"),
    (["--duration", "0"], "--duration"),
    (["--duration", "ten minutes"], "--duration"),
    (["--nodes", "1"], "--nodes"),
])
def test_bad_options_are_refused_naming_the_option(args: list[str], named: str) -> None:
    """Refused before anything is built (no root needed, no lab made)."""
    result = subprocess.run([str(Path(sys.executable).with_name("tutela")), "lab", "chaos",
                             *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "building lab" not in result.stderr


def test_help_explains_every_fault() -> None:
    result = subprocess.run([str(Path(sys.executable).with_name("tutela")), "lab", "chaos",
                             "--help"], capture_output=True, text=True, timeout=60, check=True)
    for kind in KINDS:
        assert f"  {kind} " in result.stdout


def test_the_report_matches_each_outage_with_the_fault_under_way() -> None:
    run = campaign(21, duration=120)
    records = run.planner.records
    assert len(records) >= 3
    chaos = Campaign(21, SHAPE, "lab", started=1000.0, ended=1120.0,
                     fault_times=[1000.0 + 30 * i for i in range(len(records))],
                     finish=run.finish)
    probed = {"outages": [[1001.0, 2.5], [1031.0, 0.5], [1032.0, 1.0], [999.0, 0.2]],
              "answers": 100, "failures": 20}
    checker = SplitBrainChecker(None, "198.51.100.100", "/mnt/data")  # type: ignore[arg-type]
    report = build_report(run.planner, chaos, checker, probed, "replay")
    assert report["outages"] == {"count": 4, "longest": 2.5, "total": 4.2,
                                 "longest_during": records[0].fault.describe(),
                                 "answers": 100, "failed_fetches": 20}
    assert [f["outage_seconds"] for f in report["timeline"][:3]] == [2.5, 1.5, 0.0]
    assert report["result"] == "pass" and report["dual_ownership"] == 0
    assert "longest 2.5 s (during #0 " in format_report(report)
