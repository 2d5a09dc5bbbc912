"""Ownership regression scenarios: a cluster and a timed sequence of events in, the
ownership core's effects out (engine.ownership_core, pure).

Each file in ownership_scenarios/ names this node (`me`), the hierarchies and settings,
then events in time order. An event may change what this node sees (`alive`: the peers
alive now; `peers`: a peer's report, kept as its last word when it vanishes, its
`unleased` seconds counted from the event's time; `here`: this
node's leases and resource states), then do one thing (`tick`, the default, or an
action's end: `lease_won`, `restored`, `refused`, ...), and lists the effects expected,
rendered as text (`render`). Add a file to add a case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tutela.engine import ownership_core as core
from tutela.engine.cluster_view import Snapshot
from tutela.engine.peer_report import PeerReport
from tutela.engine.stuck import Blocked
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

SCENARIOS = sorted((Path(__file__).parent / "ownership_scenarios").glob("*.yaml"))
WALL = 1_800_000_000.0
"""Wall-clock seconds at `at: 0` (failover histories and stuck records use the wall clock)."""


def render(effect: core.Effect) -> str:
    """One effect as the scenario files write it."""
    match effect:
        case core.Acquire(root, automatic, readopt, _, _, defer_to):
            how = " (switchover)" if not automatic else " (re-adopt)" if readopt else ""
            after = f" (after {', '.join(sorted(defer_to))})" if defer_to else ""
            return f"acquire {root}{how}{after}"
        case core.Restore(root):
            return f"restore {root}"
        case core.GiveUp(root, why):
            return f"give up {root}: {why}"
        case core.Release(root):
            return f"release {root}"
        case core.FencePeer(root, peer, command):
            return f"fence {peer} for {root}: {command}"
        case core.ArmWatchdog(root):
            return f"arm watchdog for {root}" if root else "check watchdog"
        case core.FenceSelf(root, within, remove):
            return (f"fence self {root}" + (f" within {within:g}s" if within else "")
                    + ("" if remove else " (no remove)"))
        case core.QuorumLossAction(root, action):
            return f"quorum-loss action {action} for {root}"
        case core.NoteStuck(root, record, _):
            who = f" {record.holder}" if record.holder else ""
            detail = f": {record.detail}" if record.detail else ""
            return f"stuck {root}: {record.reason}{who}{detail}"
        case core.ClearStuck(root):
            return f"not stuck {root}"
        case core.Held(root, hold):
            return f"damping holds {root}: {hold.failovers} failovers"
    raise AssertionError(f"unknown effect {effect!r}")


@dataclass
class World:
    """What the node of a scenario sees, changed event by event."""

    me: str
    config: ClusterConfig
    hierarchies: list[Hierarchy]
    reports: dict[str, PeerReport] = field(default_factory=dict)
    alive: set[str] = field(default_factory=set)
    holds: set[str] = field(default_factory=set)
    in_service: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    ran: dict[str, str] = field(default_factory=dict)
    behind: bool = False
    unleased: dict[str, tuple[str, float]] = field(default_factory=dict)

    def change(self, event: dict[str, Any]) -> None:
        for peer, report in event.get("peers", {}).items():
            self.reports[peer] = _report(report or {})
            self.unleased |= {root: (peer, event["at"] + left)
                              for root, left in self.reports[peer].unleased.items()}
        if "alive" in event:
            self.alive = set(event["alive"])
            self.reports.update({p: PeerReport() for p in self.alive if p not in self.reports})
        here = event.get("here", {})
        for key in ("holds", "in_service", "failed"):
            if key in here:
                setattr(self, key, set(here[key]))
        self.ran.update(here.get("ran", {}))
        self.behind = event.get("behind", self.behind)

    def situation(self, ownership: core.OwnershipCore, at: float) -> core.Situation:
        states = {t: SimpleNamespace(state=ResourceState.ISP) for t in self.in_service} | {
            t: SimpleNamespace(state=ResourceState.OSF) for t in self.failed}
        blocking = frozenset(n.name for n in self.config.nodes if not n.failover)
        seen = Snapshot.of(self.me, {p: self.reports[p] for p in sorted(self.alive)},
                           ownership.ran_to_report(self.ran, at), blocking, states)
        return core.Situation(at, WALL + at, self.config, self.hierarchies, seen,
                              dict(self.reports), frozenset(self.holds), self.behind,
                              self.unleased)


def _report(data: dict[str, Any]) -> PeerReport:
    return PeerReport(holds=frozenset(data.get("holds", ())),
                      failed=frozenset(data.get("failed", ())),
                      states=data.get("states", {}), ran=data.get("ran", {}),
                      unleased=data.get("unleased", {}),
                      failovers={r: tuple(WALL + t for t in ts)
                                 for r, ts in data.get("failovers", {}).items()})


def _config(case: dict[str, Any]) -> tuple[ClusterConfig, list[Hierarchy]]:
    hierarchies, settings = [], []
    for written in case["hierarchies"]:
        entry = dict(written)
        members = entry.pop("members", [entry["root"]])
        nodes = entry.pop("equivalencies", [])
        entry["equivalencies"] = [{"node": n, "priority": i + 1} for i, n in enumerate(nodes)]
        entry.setdefault("target", "in_service")
        settings.append(entry)
        hierarchies.append(Hierarchy(entry["root"], {m: () for m in members}))
    names = sorted({e["node"] for s in settings for e in s["equivalencies"]})
    nodes = [{"name": n, **case.get("nodes", {}).get(n, {})} for n in names]
    config = ClusterConfig.model_validate({
        "name": "scenario", "nodes": nodes, "hierarchies": settings,
        "settings": {"fencing": "none", **case.get("settings", {})}})
    return config, hierarchies


def _act(ownership: core.OwnershipCore, world: World, at: float,
         event: dict[str, Any]) -> list[core.Effect]:
    """The event's one action (a tick unless it names another)."""
    now, wall = at, WALL + at
    action = world.config.settings.quorum_loss_action
    match event:
        case {"lease_won": root}:
            return ownership.lease_won(root, world.situation(ownership, at),
                                       event.get("automatic", True))
        case {"restored": root}:
            return ownership.restored(root, event.get("automatic", True), wall, world.config)
        case {"refused": {"root": root, "reason": reason, **rest}}:
            blocked = Blocked(reason, rest.get("holder"), rest.get("detail", ""))
            return ownership.refused(root, blocked, "refused", now, wall,
                                     rest.get("release", True))
        case {"take": root}:
            return [ownership.take(root)]
        case {"must_release": {"root": root, "remaining": remaining}}:
            return ownership.lease_ending(root, remaining, action)
        case {"lease_lost": root}:
            return ownership.lease_ending(root, None, action)
        case {"self_fence_ended": {"root": root, "out": out}}:
            return ownership.self_fence_ended(root, out, action, now)
    if not _tell(ownership, at, event):
        return ownership.tick(world.situation(ownership, at))
    return []


def _tell(ownership: core.OwnershipCore, at: float, event: dict[str, Any]) -> bool:
    """An action's end that returns no effects; whether the event was one."""
    match event:
        case {"restore_failed": root}:
            ownership.restore_failed(root)
        case {"fenced": {"root": root, "peer": peer}}:
            ownership.fenced(root, peer)
        case {"done": root}:
            ownership.done(root, gave_up=event.get("gave_up", False))
        case {"give": root}:
            ownership.give(root, at)
        case {"end_handover": root}:
            ownership.end_handover(root)
        case {"forget": root}:
            ownership.forget_failure(root, WALL + at)
        case _:
            return False
    return True


def run(case: dict[str, Any]) -> None:
    config, hierarchies = _config(case)
    me = case["me"]
    ownership = core.OwnershipCore(me, case.get("lease", 1.0),
                                   remove_time=case.get("remove_time", 0.0),
                                   left_here=set(case.get("left_here", ())))
    ownership.start(case.get("started", -100.0), config)
    world = World(me, config, hierarchies)
    for number, event in enumerate(case["events"], 1):
        world.change(event)
        effects = [render(e) for e in _act(ownership, world, event["at"], event)]
        assert effects == event.get("expect", []), (
            f"event {number} (at {event['at']}): {event}")


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    run(yaml.safe_load(path.read_text()))


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 20
