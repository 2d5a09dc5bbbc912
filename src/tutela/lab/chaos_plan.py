"""The chaos campaign's planner: which fault next, for how long, and how to recover from it.

Sans-IO: `CampaignPlanner.next(now, seen)` is given the time and what the driver
(tutela.lab.chaos) observed of the lab, and returns the next step: actions to carry out,
a wait, or the end of the campaign. It never touches a lab, so its choices are unit-tested.

Replay: fault number i is drawn from its own generator, seeded with (seed, i), with the
same number of draws whatever happened before, so a seed gives the same sequence of fault
kinds, durations, targets' roles ("the owner" or "another node") and pauses on every run.
Which node is the owner at the time is the lab's doing; the roles keep a replay aimed the
same way.

Recovery is computed from what is observed, not from the fault alone: whatever the fault
or the cluster's own fencing left behind (a node off or frozen, a tutelad gone, a cut, a
witness stopped) is undone, and the next fault waits until the cluster is healthy again.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

KINDS: dict[str, str] = {
    "power-off": "pull a node's plug (processes, links and mounts gone at once); after "
                 "5-30 s power it on: it boots and rejoins",
    "freeze": "SIGSTOP every process of a node for 2-15 s (a hung server), then thaw it; "
              "a frozen owner may be reset by its watchdog: that is fencing, not an error",
    "cut-net": "cut one network (net1 or net2) of a node, both ways, for 5-20 s: the other "
               "network carries the cluster",
    "isolate": "cut every link of a node for 5-20 s: it loses its majority",
    "one-way": "cut every link of a node in one direction only (what it sends, or what it "
               "receives) for 5-20 s: an asymmetric partition",
    "partition": "cut every link between a node and one other node for 5-20 s (both ways "
                 "or one way); each still reaches the rest (and the witness)",
    "witness-loss": "stop the witness (killed, or frozen with SIGSTOP) for 5-30 s, then "
                    "start or thaw it",
    "kill-tutelad": "SIGKILL a node's tutelad for 2-10 s, then start it again; the "
                    "watchdog it armed may reset the node: fencing, not an error",
    "flap": "cut and heal one network of a node over and over (0.2-2 s each) for 8-20 s",
}

DURATIONS: dict[str, tuple[float, float]] = {
    "power-off": (5, 30), "freeze": (2, 15), "cut-net": (5, 20), "isolate": (5, 20),
    "one-way": (5, 20), "partition": (5, 20), "witness-loss": (5, 30),
    "kill-tutelad": (2, 10), "flap": (8, 20),
}
FLAP_STEP = (0.2, 2.0)
"""Seconds a flapping link stays cut, then healed, each time."""
OWNER_SHARE = 0.6
"""Share of node faults aimed at the service's owner (the rest: another node)."""
PAUSE = (2.0, 6.0)
"""Seconds of a healthy cluster between the recovery of one fault and the next."""
RECOVERY_TIMEOUT = 180.0
"""Seconds the cluster gets to be healthy again after a recovery before the campaign fails."""
RESWEEP = 10.0
"""Seconds between two rounds of undoing what is still wrong while waiting for health."""

Verb = Literal["power-off", "power-on", "freeze", "thaw", "cut", "heal", "heal-all",
               "kill-tutelad", "start-tutelad", "witness-stop", "witness-start",
               "witness-freeze", "witness-thaw"]
NodeState = Literal["running", "frozen", "off"]
WitnessState = Literal["running", "frozen", "off"]


@dataclass(frozen=True)
class Action:
    """One thing the driver does to the lab. `target` is a node ("" for heal-all and the
    witness verbs); `net` None means every link; `peer` None every peer."""

    verb: Verb
    target: str = ""
    net: int | None = None
    peer: str | None = None
    direction: str = "both"

    def describe(self) -> str:
        parts = [self.verb, self.target]
        if self.net is not None:
            parts.append(f"net{self.net}")
        if self.peer is not None:
            parts.append(f"peer {self.peer}")
        if self.direction != "both":
            parts.append(self.direction)
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class LabShape:
    nodes: tuple[str, ...]
    witness: bool

    def kinds_possible(self) -> tuple[str, ...]:
        """Fault kinds that make sense here: witness loss needs a witness, a partition two
        nodes."""
        return tuple(k for k in KINDS
                     if (k != "witness-loss" or self.witness)
                     and (k != "partition" or len(self.nodes) >= 2))


@dataclass(frozen=True)
class NodeView:
    state: NodeState
    boot: int | None
    """Identifies the node's current boot (the host PID of its PID 1); None when off."""
    daemon: bool
    """tutelad runs on it."""


@dataclass(frozen=True)
class Observation:
    """What the driver saw. `healthy` is checked (costly: every node's status) only when
    the planner's `needs_health(now)` says so; else None."""

    nodes: Mapping[str, NodeView]
    owner: str | None
    witness: WitnessState | None
    cuts: bool
    healthy: bool | None = None
    unhealthy_reason: str = ""


@dataclass(frozen=True)
class Draw:
    """The random part of fault number `index`: everything the seed decides."""

    index: int
    kind: str
    at_owner: bool
    pick: float
    """Chooses among the candidate targets (and the peer of a partition)."""
    duration: float
    net: int
    direction: str
    witness_mode: str
    flaps: tuple[float, ...]
    pause: float


def draw(seed: int, index: int, kinds: Sequence[str]) -> Draw:
    """Fault number `index` of campaign `seed`, from its own generator: always the same
    draws in the same order, so one fault's choices do not depend on the others."""
    rng = random.Random(f"tutela-chaos/{seed}/{index}")
    kind = rng.choice(list(kinds))
    at_owner = rng.random() < OWNER_SHARE
    pick = rng.random()
    low, high = DURATIONS[kind]
    duration = round(rng.uniform(low, high), 1)
    net = rng.choice((1, 2))
    direction = rng.choice(("in", "out", "both"))
    witness_mode = rng.choice(("kill", "freeze"))
    flaps, total = [], 0.0
    while kind == "flap" and total < duration:
        step = round(rng.uniform(*FLAP_STEP), 2)
        flaps.append(step)
        total += step
    pause = round(rng.uniform(*PAUSE), 1)
    return Draw(index, kind, at_owner, pick, duration, net,
                direction, witness_mode, tuple(flaps), pause)


@dataclass(frozen=True)
class Fault:
    """A fault as carried out: `script` is (seconds after the start, action); recovery
    starts `duration` seconds after the start."""

    index: int
    kind: str
    target: str
    duration: float
    script: tuple[tuple[float, Action], ...]

    def describe(self) -> str:
        first = self.script[0][1].describe() if self.script else self.kind
        extra = f", {len(self.script)} toggles" if self.kind == "flap" else ""
        return f"#{self.index} {self.kind}: {first} for {self.duration:g} s{extra}"


def resolve(d: Draw, shape: LabShape, owner: str | None) -> Fault:
    """Turn a draw into actions on this lab, aimed at `owner` or another node."""
    nodes = list(shape.nodes)
    owned = owner in nodes and d.at_owner
    others = [n for n in nodes if n != owner] or nodes
    target = owner if owned and owner is not None else others[int(d.pick * len(others))]
    peers = [n for n in nodes if n != target]
    peer = peers[int(d.pick * len(peers))] if peers else None
    script: list[tuple[float, Action]]
    if d.kind == "power-off":
        script = [(0.0, Action("power-off", target))]
    elif d.kind == "freeze":
        script = [(0.0, Action("freeze", target))]
    elif d.kind == "cut-net":
        script = [(0.0, Action("cut", target, net=d.net))]
    elif d.kind == "isolate":
        script = [(0.0, Action("cut", target))]
    elif d.kind == "one-way":
        script = [(0.0, Action("cut", target, direction="in" if d.direction == "in"
                               else "out"))]
    elif d.kind == "partition":
        script = [(0.0, Action("cut", target, peer=peer, direction=d.direction))]
    elif d.kind == "witness-loss":
        target = "witness"
        verb: Verb = "witness-stop" if d.witness_mode == "kill" else "witness-freeze"
        script = [(0.0, Action(verb))]
    elif d.kind == "kill-tutelad":
        script = [(0.0, Action("kill-tutelad", target))]
    elif d.kind == "flap":
        script, at = [], 0.0
        for i, step in enumerate(d.flaps):
            verb = "cut" if i % 2 == 0 else "heal"
            script.append((round(at, 2), Action(verb, target, net=d.net)))
            at += step
    else:
        raise ValueError(f"unknown fault kind {d.kind!r}")
    duration = max(d.duration, script[-1][0])
    return Fault(d.index, d.kind, target, duration, tuple(script))


def restore(seen: Observation, shape: LabShape) -> list[Action]:
    """What brings the lab back to nominal from what is observed: heal every cut, power on
    what is off, thaw what is frozen, start tutelad where it is missing, bring the witness
    back. Empty when nothing is left to undo."""
    actions = [Action("heal-all")] if seen.cuts else []
    for node in shape.nodes:
        view = seen.nodes[node]
        if view.state == "off":
            actions.append(Action("power-on", node))
        elif view.state == "frozen":
            actions.append(Action("thaw", node))
        elif not view.daemon:
            actions.append(Action("start-tutelad", node))
    if shape.witness and seen.witness == "off":
        actions.append(Action("witness-start"))
    elif shape.witness and seen.witness == "frozen":
        actions.append(Action("witness-thaw"))
    return actions


@dataclass(frozen=True)
class Act:
    actions: tuple[Action, ...]
    why: str


@dataclass(frozen=True)
class Wait:
    until: float


@dataclass(frozen=True)
class Finish:
    ok: bool
    reason: str


Step = Act | Wait | Finish


@dataclass
class FaultRecord:
    fault: Fault
    started: float
    owner: str | None = None
    """The node that held the service when the fault struck."""
    recovery_started: float | None = None
    recovered: float | None = None
    """When the cluster was healthy again (None: it never was)."""
    fencing: list[str] = field(default_factory=list)
    """Nodes the cluster's fencing powered off or rebooted during this fault."""


Phase = Literal["settle", "pause", "active"]


class CampaignPlanner:
    """Drives a campaign of `duration` seconds: settle (wait for a healthy cluster, undo
    what is left), pause, inject a fault, recover it, settle again... The campaign ends
    after a settle once the time is up (Finish ok), or fails when the cluster is not
    healthy within RECOVERY_TIMEOUT of a recovery (Finish not ok)."""

    def __init__(self, seed: int, shape: LabShape, duration: float,
                 kinds: Sequence[str] | None = None,
                 recovery_timeout: float = RECOVERY_TIMEOUT) -> None:
        possible = shape.kinds_possible()
        chosen = tuple(kinds) if kinds else possible
        impossible = [k for k in chosen if k not in possible]
        if impossible or not chosen:
            raise ValueError(f"fault kinds {', '.join(impossible) or '(none)'} cannot run "
                             f"here; choose among {', '.join(possible)}")
        self.seed, self.shape, self.duration, self.kinds = seed, shape, duration, chosen
        self.recovery_timeout = recovery_timeout
        self.records: list[FaultRecord] = []
        self.failovers = 0
        self.fencing: list[str] = []
        self._phase: Phase = "settle"
        self._end: float | None = None
        self._since = 0.0
        self._swept = float("-inf")
        self._pause_until = 0.0
        self._pending: list[tuple[float, Action]] = []
        self._last_owner: str | None = None
        self._boots: dict[str, int | None] = {}
        self._expected: dict[str, int] = {}

    def needs_health(self, now: float) -> bool:
        """Whether the call at `now` wants `Observation.healthy` checked: while settling,
        and at the end of a pause (the cluster must still be healthy before a fault)."""
        return self._phase == "settle" or (self._phase == "pause"
                                           and now >= self._pause_until)

    @property
    def current(self) -> FaultRecord | None:
        return self.records[-1] if self.records else None

    def next(self, now: float, seen: Observation) -> Step:
        if self._end is None:
            self._end, self._since = now + self.duration, now
        self._watch(seen)
        if self._phase == "settle":
            return self._settle(now, seen)
        if self._phase == "pause":
            return self._pause(now, seen)
        return self._active(now, seen)

    def _watch(self, seen: Observation) -> None:
        """Count failovers (the owner changed from one node to another) and fencing
        (a node powered off or rebooted that the campaign did not power off or on)."""
        if seen.owner is not None:
            if self._last_owner is not None and seen.owner != self._last_owner:
                self.failovers += 1
            self._last_owner = seen.owner
        for node, view in seen.nodes.items():
            before = self._boots.get(node, view.boot)
            self._boots[node] = view.boot
            if view.boot == before:
                continue
            if self._expected.get(node, 0) > 0:
                self._expected[node] -= 1
                continue
            event = f"{node} {'powered off' if view.boot is None else 'rebooted'}"
            self.fencing.append(event)
            if self.current is not None:
                self.current.fencing.append(event)

    def _expect(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if action.verb in ("power-off", "power-on"):
                self._expected[action.target] = self._expected.get(action.target, 0) + 1

    def _act(self, actions: Sequence[Action], why: str) -> Act:
        self._expect(actions)
        return Act(tuple(actions), why)

    def _settle(self, now: float, seen: Observation) -> Step:
        if seen.healthy:
            record = self.current
            if record is not None and record.recovered is None:
                record.recovered = now
            self._phase = "pause"
            self._pause_until = now + draw(self.seed, len(self.records), self.kinds).pause
            return Wait(self._pause_until)
        if now - self._since > self.recovery_timeout:
            what = f"fault {self.current.fault.describe()}" if self.current else "the start"
            return Finish(False, f"the cluster was not healthy {self.recovery_timeout:g} s "
                                 f"after {what}: {seen.unhealthy_reason or 'unknown'}")
        undo = restore(seen, self.shape)
        if undo and now - self._swept >= RESWEEP:
            self._swept = now
            return self._act(undo, "undo what is still wrong")
        return Wait(now)

    def _pause(self, now: float, seen: Observation) -> Step:
        if now < self._pause_until:
            return Wait(self._pause_until)
        if seen.healthy is None:
            return Wait(now)  # the driver checks health on the next call (needs_health)
        if not seen.healthy:
            self._enter_settle(now)
            return Wait(now)
        if now >= self._end_time():
            return Finish(True, "campaign time is up; the cluster is healthy")
        fault = resolve(draw(self.seed, len(self.records), self.kinds), self.shape,
                        seen.owner)
        self.records.append(FaultRecord(fault, now, seen.owner))
        self._phase, self._pending = "active", list(fault.script)
        return self._active(now, seen)

    def _active(self, now: float, seen: Observation) -> Step:
        record = self.current
        assert record is not None
        due = [a for at, a in self._pending if record.started + at <= now]
        if due:
            self._pending = self._pending[len(due):]
            return self._act(due, record.fault.describe())
        if self._pending:
            return Wait(record.started + self._pending[0][0])
        if now < record.started + record.fault.duration:
            return Wait(record.started + record.fault.duration)
        record.recovery_started = now
        self._enter_settle(now)
        self._swept = now
        return self._act(restore(seen, self.shape), f"recover from {record.fault.describe()}")

    def _enter_settle(self, now: float) -> None:
        self._phase, self._since = "settle", now

    def _end_time(self) -> float:
        assert self._end is not None
        return self._end
