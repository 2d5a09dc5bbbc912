"""Deterministic simulation of ownership (family `ownership`): three nodes, each running the
real ownership core (tutela.engine.ownership_core) over the real lease holder and voter
(tutela.arbiter), driven as daemon/ownership.py drives them, on a virtual clock, with a
seeded network (delays, loss, partitions), node crashes and restarts, restarts of tutelad
alone on the owner (what ran stays in service, the new process finds it without its lease,
and the node is often cut off soon after), and kit actions that take time (a restore, a
remove, a self-fence) and sometimes fail.

Two hierarchies: `app`, and `web`, which needs `app` up (a dependency, on the same node,
any node or a different node: drawn for each seed).
In half of the seeds one node cannot run `app` (its restore fails there every time).

The checker works on physical truth, not on what the nodes believe: a hierarchy is in
service on a node from the moment a restore finishes until a remove or a self-fence
finishes there, the quorum-loss action takes effect, or the node powers off.
- safety: never two nodes with one hierarchy in service at the same simulated instant (the
  lease rule allows none: the old owner is out before the voters' grants expire);
- order: when the owner of `app` powers off in calm weather (no loss, no cut, every other
  node up for a while, no other fault for ORDER_WINDOW), the next lease of `app` goes to the
  first candidate by priority (not failed there, not handing it on): the rank wait;
- liveness: once faults stop (partitions healed, crashed nodes restarted, no loss), within
  SETTLE seconds `app` is in service on exactly one node that can run it and `web` on one
  node where its dependency is met;
- one action at a time: a decision tick never starts an action (acquire, restore, give-up,
  self-fence) on a hierarchy that the node's driver still acts on; only a self-fence that
  the lease's end calls for may overtake one (CI's stuck-state lab test once saw a takeover
  start while the acquire of the one before still waited).

Replay a seed: python tests/sim/ownership_sim.py --seed N [--variant V] [--verbose]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from simulate import Outcome

from tutela.arbiter.holder import (
    Acquired,
    Deferred,
    Effect,
    LeaseHolder,
    LeaseLost,
    MustRelease,
    Send,
)
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming
from tutela.arbiter.voter import Voter
from tutela.engine import ownership_core as core
from tutela.engine.cluster_view import Snapshot
from tutela.engine.peer_report import PeerReport
from tutela.engine.stuck import Blocked
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

FAMILY = "ownership"
NODES = ("n1", "n2", "n3")
ROOTS = ("app", "web")
TIMING = LeaseTiming()
"""The lease: 1 s, renewed every 0.25 s (the lab's)."""
HEARTBEAT = 0.5
"""Seconds between heartbeats and decisions (a slower tick than the default 0.2 s keeps a
seed cheap; the rank wait and detection scale with it)."""
MISSES = 2
FAULTS = 12.0
"""Seconds of faults from the start."""
SETTLE = 16.0
"""Seconds after the faults stop within which the hierarchies must run where they should
(a restart's quiet period and settling, the release grace, a refused takeover's back-off)."""
ORDER_WINDOW = 4.0
"""Seconds without another fault after an owner's power-off for the order check."""
SETTLED_UP = 3.0
"""Seconds a node must have run to count for the order check (settled, heard, seen)."""
STABLE = 4.0
"""Seconds the hierarchies must stay where they should for the run to end early."""
ACQUIRE_WAIT = core.ACQUIRE_LEASES * TIMING.duration
"""How long an acquire waits for a majority (as daemon/ownership.py)."""
LOCAL = 0.0005
"""Seconds for a node to reach its own voter."""
LOCATIONS = ("same_node", "any_node", "different_node")
"""Where web needs app, drawn for each seed."""


def _config(location: str) -> ClusterConfig:
    equivalencies = [{"node": n, "priority": i + 1} for i, n in enumerate(NODES)]
    return ClusterConfig.model_validate({
        "name": "sim", "nodes": [{"name": n} for n in NODES],
        "settings": {"heartbeat_interval": HEARTBEAT, "heartbeat_misses": MISSES,
                     "fencing": "none", "quorum_loss_action": "fastkill",
                     "failover_damping": {"hold": 0}},
        "hierarchies": [
            {"root": "app", "target": "in_service", "equivalencies": equivalencies},
            {"root": "web", "target": "in_service", "equivalencies": equivalencies,
             "dependencies": [{"hierarchy": "app", "location": location}]}]})


CONFIGS = {location: _config(location) for location in LOCATIONS}
HIERARCHIES = [Hierarchy(root, {root: ()}) for root in ROOTS]


@dataclass(frozen=True)
class Variant:
    """The real core, or a deliberately broken one (ownership_mutants.py)."""

    name: str = "correct"
    make_core: Callable[[str, float], core.OwnershipCore] = core.OwnershipCore
    checks_lease: bool = True
    """The driver restores only while it holds the lease (daemon/ownership.py _restore)."""


CORRECT = Variant()


class Failure(Exception):
    pass


@dataclass(frozen=True)
class _State:
    state: ResourceState


IN_SERVICE = _State(ResourceState.ISP)


@dataclass
class Node:
    """One node's process (replaced at a restart) and its physical resources."""

    name: str
    offset: float
    core: core.OwnershipCore
    voter: Voter
    holder: LeaseHolder
    life: int
    """Which run of the process: callbacks of an earlier run are dropped."""
    up: bool = True
    heard: dict[str, float] = field(default_factory=dict)
    reports: dict[str, PeerReport] = field(default_factory=dict)
    ran: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, tuple[core.Acquire, int]] = field(default_factory=dict)
    """Roots whose lease an acquire waits for -> it, and its token."""
    action: dict[str, int] = field(default_factory=dict)
    """Root -> the token of the kit action in effect (a self-fence overtakes a restore or a
    remove under way: that one then changes nothing, but still ends)."""
    under_way: dict[str, int] = field(default_factory=dict)
    """Root -> how many actions the driver carries out on it (started, not yet reported
    ended to the core), as daemon/ownership.py's `_under_way`."""


class Sim:
    def __init__(self, seed: int, variant: Variant, trace: bool) -> None:
        self.rng = random.Random(seed)
        self.variant = variant
        self.tracing = trace
        self.trace: list[str] = []
        self.now = 0.0
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.events = 0
        self.stats = dict.fromkeys(("crashes", "partitions", "takeovers", "self_fences",
                                    "quorum_loss", "restore_failures", "lost", "order_checks",
                                    "daemon_restarts", "readoptions"), 0)
        self.cut: set[frozenset[str]] = set()
        self.calm = self.rng.random() < 0.4
        """Calm weather: no loss, power-offs only, far apart (the order check's seeds)."""
        self.loss = 0.0 if self.calm else self.rng.uniform(0.0, 0.08)
        self.faults: list[float] = []
        """When each planned fault strikes (the heal included)."""
        self.booted: dict[str, float] = dict.fromkeys(NODES, 0.0)
        self.expected: str | None = None
        """The node that must win app's lease next (order check), if one must."""
        self.broken = self.rng.choice((None, *NODES))
        """The node where app's restore always fails, if any."""
        self.serving: dict[str, set[str]] = {root: set() for root in ROOTS}
        """Physical truth: root -> nodes where it is in service now."""
        self.location = self.rng.choice(LOCATIONS)
        self.config = CONFIGS[self.location]
        self.nodes = {name: self._boot(name, 1) for name in NODES}
        self.tokens = 0

    # --- the event queue ------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (when, self.seq, action))

    def on(self, node: Node, delay: float, action: Callable[[Node], None]) -> None:
        """`action` on this run of `node` after `delay`, unless it crashed meanwhile."""
        life = node.life
        self.at(self.now + delay, lambda: self._if_alive(node.name, life, action))

    def _if_alive(self, name: str, life: int, action: Callable[[Node], None]) -> None:
        node = self.nodes[name]
        if node.up and node.life == life:
            action(node)

    def log(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.now:9.4f} {text}")

    def local(self, node: Node) -> float:
        return self.now + node.offset

    # --- nodes --------------------------------------------------------------------------------

    def _boot(self, name: str, life: int, first_tick: float | None = None) -> Node:
        offset = self.rng.uniform(0, 1000)
        now = self.now + offset
        ownership = self.variant.make_core(name, TIMING.duration)
        ownership.remove_time = TIMING.watchdog_timeout
        ownership.start(now, self.config)
        node = Node(name, offset, ownership, Voter(name, TIMING, started_at=now),
                    LeaseHolder(name, NODES, TIMING, incarnation=self.rng.getrandbits(63)),
                    life)
        phase = self.rng.uniform(0, HEARTBEAT) if first_tick is None else first_tick
        self.on(node, phase, self._beat)
        return node

    def crash(self, name: str, down_for: float) -> None:
        node = self.nodes[name]
        if not node.up:
            return
        self.stats["crashes"] += 1
        self.log(f"{name} powers off for {down_for:.2f}s")
        self.expected = self._next_in_order(node) if down_for >= ORDER_WINDOW else None
        node.up = False
        for root in ROOTS:
            self._out(node, root)
        self.at(self.now + down_for, lambda: self.restart(name))

    def restart_daemon(self, name: str) -> None:
        """tutelad alone restarts: a new process (voter, holder, core) that finds what ran
        still in service and re-adopts it, without its lease."""
        node = self.nodes[name]
        if not node.up:
            return
        self.stats["daemon_restarts"] += 1
        self.stats["readoptions"] += sum(name in self.serving[r] for r in ROOTS)
        self.log(f"{name}: tutelad restarts")
        # It decides at once, as tutelad's ownership loop does when it starts.
        self.nodes[name] = self._boot(name, node.life + 1, first_tick=0.0)
        self.nodes[name].ran = dict(node.ran)

    def restart_owner_daemon(self, cut_after: float | None, length: float) -> None:
        """tutelad of app's owner restarts; the node is cut off `cut_after` later.

        Not while something runs there with no more than W of its lease left or without one
        (self-fencing, or re-adopted by the last restart): a tutelad that dies then leaves
        it for W at most, and only fencing takes it out in time (the watchdog it armed, which
        the simulation's fencing 'none' lacks; docs/failover.md). Such a restart waits."""
        owner = self._owner()
        if not self._leased_for_a_while(self.nodes[owner]):
            if self.now + 0.1 < FAULTS:
                self.at(self.now + 0.1, lambda: self.restart_owner_daemon(cut_after, length))
            return
        self.restart_daemon(owner)
        if cut_after is not None:
            self.at(self.now + cut_after, lambda: self.isolate(owner, length))

    def _leased_for_a_while(self, node: Node) -> bool:
        """Whether every hierarchy in service on `node` has more than W of its lease left."""
        held = node.holder.held(self.local(node))
        return all(held.get(root, 0.0) > TIMING.watchdog_timeout
                   for root in ROOTS if node.name in self.serving[root])

    def _owner(self) -> str:
        """Where app runs now, else any node."""
        return min(self.serving["app"], default=self.rng.choice(NODES))

    def restart(self, name: str) -> None:
        node = self.nodes[name]
        if node.up:
            return
        self.log(f"{name} starts")
        self.booted[name] = self.now
        self.nodes[name] = self._boot(name, node.life + 1)

    # --- the network --------------------------------------------------------------------------

    def send(self, source: Node, target: str, deliver: Callable[[Node], None]) -> None:
        """A message, if the link is up and it is not lost; lands 1-40 ms later."""
        if frozenset((source.name, target)) in self.cut or (
                self.now < FAULTS and self.rng.random() < self.loss):
            self.stats["lost"] += 1
            return
        delay = self.rng.uniform(0.001, 0.04)
        self.at(self.now + delay, lambda: self._land(target, deliver))

    def _land(self, target: str, deliver: Callable[[Node], None]) -> None:
        node = self.nodes[target]
        if node.up:
            deliver(node)

    # --- heartbeats and decisions (daemon/cluster.py, daemon/ownership.py) ---------------------

    def _beat(self, node: Node) -> None:
        self.events += 1
        report = self._report(node)
        for peer in NODES:
            if peer != node.name:
                self.send(node, peer, lambda target, n=node.name: self._heard(target, n, report))
        effects = node.core.tick(self._situation(node))
        for effect in effects:
            if isinstance(effect, core.Acquire | core.Restore | core.GiveUp | core.FenceSelf
                          ) and node.under_way.get(effect.root):
                raise Failure(f"OVERLAP: {node.name}'s decision starts {effect} while "
                              f"{node.under_way[effect.root]} action(s) on {effect.root} "
                              "are still under way there")
        self._run(node, effects)
        self.on(node, HEARTBEAT, self._beat)

    def _heard(self, node: Node, peer: str, report: PeerReport) -> None:
        node.heard[peer] = self.local(node)
        node.reports[peer] = report

    def _report(self, node: Node) -> PeerReport:
        now = self.local(node)
        holds = [r for r in ROOTS if node.holder.holds(r, now)]
        serving = frozenset(r for r in ROOTS if node.name in self.serving[r])
        unleased = node.core.running_unleased(HIERARCHIES, serving, frozenset(holds),
                                              self.config)
        return PeerReport(holds=frozenset(holds), failed=frozenset(node.core.failed),
                          unleased=node.core.unleased_report(unleased, now, self.config),
                          states={r: "ISP" for r in ROOTS if node.name in self.serving[r]},
                          ran=node.core.ran_to_report(node.ran, now),
                          stuck=dict(node.core.stuck),
                          failovers={r: tuple(t) for r, t in
                                     node.core.failovers_report(holds).items()})

    def _situation(self, node: Node) -> core.Situation:
        now = self.local(node)
        detection = HEARTBEAT * MISSES
        alive = {p: node.reports[p] for p, heard in node.heard.items()
                 if now - heard < detection}
        states = {r: IN_SERVICE for r in ROOTS if node.name in self.serving[r]}
        seen = Snapshot.of(node.name, alive, node.core.ran_to_report(node.ran, now),
                           frozenset(), states)
        holds = frozenset(r for r in ROOTS if node.holder.holds(r, now))
        unleased = {root: (peer, node.heard[peer] + left * (1 + TIMING.drift))
                    for peer, report in node.reports.items()
                    for root, left in report.unleased.items()}
        return core.Situation(now, self.now, self.config, HIERARCHIES, seen, dict(node.reports),
                              holds, unleased=unleased)

    # --- carrying out the core's effects --------------------------------------------------------

    def _run(self, node: Node, effects: Iterable[core.Effect], within: bool = False) -> None:
        """Carry out `effects`: of a decision tick, or (`within`) the steps of an action
        under way, whose Restore is part of it (a takeover's)."""
        for effect in effects:
            match effect:
                case core.Acquire():
                    self._began(node, effect.root)
                    self._acquire(node, effect)
                case core.Restore():
                    if not within:
                        self._began(node, effect.root)
                    self._restore(node, effect)
                case core.GiveUp(root):
                    self.log(f"{node.name} gives {root} up: {effect.why}")
                    self._began(node, root)
                    token = self._token(node, root)
                    self.on(node, self.rng.uniform(0.02, 0.3),
                            lambda n, r=root, t=token: self._given_up(n, r, t))
                case core.Release(root):
                    self._release(node, root)
                case core.QuorumLossAction(root):
                    self.stats["quorum_loss"] += 1
                    self.log(f"{node.name}: quorum-loss action for {root}")
                    self._out(node, root)
                case core.FenceSelf():
                    self._began(node, effect.root)
                    self._fence_self(node, effect)
                case core.NoteStuck(root, record):
                    self.log(f"{node.name}: {root} stuck: {record.reason} {record.detail}")
                case _:
                    pass  # notes, the watchdog (fencing none), no peer fencing (none)

    def _token(self, node: Node, root: str) -> int:
        self.tokens += 1
        node.action[root] = self.tokens
        return self.tokens

    def _began(self, node: Node, root: str) -> None:
        node.under_way[root] = node.under_way.get(root, 0) + 1

    def _done(self, node: Node, root: str, gave_up: bool = False) -> None:
        """An Acquire, Restore or GiveUp ended: the core is told (daemon: _act's finally)."""
        self._ended(node, root)
        node.core.done(root, gave_up=gave_up)

    def _ended(self, node: Node, root: str) -> None:
        left = node.under_way[root] - 1
        if left:
            node.under_way[root] = left
        else:
            del node.under_way[root]

    def _acquire(self, node: Node, acquire: core.Acquire) -> None:
        root = acquire.root
        self.log(f"{node.name} asks for {root}'s lease")
        self.tokens += 1
        token = self.tokens
        node.waiting[root] = (acquire, token)
        self._lease(node, node.holder.acquire_each({root: TIMING.watchdog_timeout},
                                                   self.local(node), {root: acquire.defer_to}))
        wait = ACQUIRE_WAIT if acquire.timeout is None else acquire.timeout
        self.on(node, wait, lambda n: self._acquire_timeout(n, root, token))

    def _acquire_timeout(self, node: Node, root: str, token: int) -> None:
        if node.waiting.get(root, (None, None))[1] != token:
            return  # won meanwhile, or let go
        del node.waiting[root]
        now = self.local(node)
        self.log(f"{node.name}: no majority for {root}")
        self._lease(node, node.holder.release([root], now))
        self._run(node, node.core.refused(root, Blocked("no_quorum"), "no majority", now,
                                          self.now, release=False), within=True)
        self._done(node, root)

    def _deferred(self, node: Node, deferred: Deferred) -> None:
        """A higher rank asks too: the acquire ends, refused (daemon/ownership.py)."""
        root = deferred.name
        if node.waiting.pop(root, None) is None:
            return
        self.log(f"{node.name}: leaves {root} to {deferred.holder}")
        self._run(node, node.core.refused(root, Blocked("lease_wait", deferred.holder),
                                          "deferred", self.local(node), self.now,
                                          release=False), within=True)
        self._done(node, root)

    def _release(self, node: Node, root: str) -> None:
        """The lease let go; an acquire of it that still waits ends at once (daemon/leases.py:
        LeaseLetGo), which a self-fence's end does."""
        self._lease(node, node.holder.release([root], self.local(node)))
        if node.waiting.pop(root, None) is not None:
            self.log(f"{node.name}: the acquire of {root} ends: its lease was let go")
            self._done(node, root)

    def _won(self, node: Node, root: str) -> None:
        waiting = node.waiting.pop(root, None)
        if waiting is None:
            return
        acquire = waiting[0]
        if root == "app" and self.expected is not None:
            expected, self.expected = self.expected, None
            self.stats["order_checks"] += 1
            if node.name != expected:
                raise Failure(f"ORDER: {node.name} won app's lease after its owner powered "
                              f"off, before {expected}, first by priority")
        effects = node.core.lease_won(root, self._situation(node), acquire.automatic)
        self._run(node, effects, within=True)
        if not any(isinstance(e, core.Restore) for e in effects):
            self._done(node, root)  # the takeover ends here (daemon: _act's finally)

    def _restore(self, node: Node, restore: core.Restore) -> None:
        root = restore.root
        if self.variant.checks_lease and not node.holder.holds(root, self.local(node)):
            self._done(node, root)
            return
        token = self._token(node, root)
        self.on(node, self.rng.uniform(0.05, 0.4),
                lambda n: self._restored(n, restore, token))

    def _restored(self, node: Node, restore: core.Restore, token: int) -> None:
        root = restore.root
        if node.action.get(root) != token:
            self._done(node, root)  # a self-fence overtook it: it changed nothing
            return
        del node.action[root]
        if root == "app" and node.name == self.broken:
            self.stats["restore_failures"] += 1
            self.log(f"{node.name}: restore of {root} failed")
            node.core.restore_failed(root)
        else:
            self._in(node, root)
            node.ran[root] = f"{self.now:015.6f}"
            self._run(node, node.core.restored(root, restore.automatic, self.now,
                                                   self.config), within=True)
        self._done(node, root)

    def _given_up(self, node: Node, root: str, token: int) -> None:
        if node.action.get(root) != token:
            self._done(node, root, gave_up=True)  # a self-fence overtook it; it lets go
            return
        del node.action[root]
        self._out(node, root)
        self._lease(node, node.holder.release([root], self.local(node)))
        self._done(node, root, gave_up=True)

    def _fence_self(self, node: Node, fence: core.FenceSelf) -> None:
        self.stats["self_fences"] += 1
        root = fence.root
        self.log(f"{node.name} self-fences {root} within {fence.within}")
        token = self._token(node, root)  # cancels a restore or remove under way
        takes = self.rng.uniform(0.02, 0.5)
        if not fence.remove:
            self._fenced(node, root, token, out=False)
        elif fence.within is not None and takes > fence.within:
            self.on(node, fence.within, lambda n: self._fenced(n, root, token, out=False))
        else:
            self.on(node, takes, lambda n: self._fenced(n, root, token, out=True))

    def _fenced(self, node: Node, root: str, token: int, out: bool) -> None:
        """A self-fence ends, by its deadline (`within`), out of service or not: even one
        that another self-fence overtook (each one's removal runs to its end)."""
        if node.action.get(root) == token:
            del node.action[root]
        if out:
            self._out(node, root)
        self._ended(node, root)
        self._run(node, node.core.self_fence_ended(root, out, "fastkill", self.local(node)),
                  within=True)

    # --- the lease holder and the voters --------------------------------------------------------

    def _lease(self, node: Node, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._to_voter(node, effect)
            elif isinstance(effect, Acquired):
                self._won(node, effect.name)
            elif isinstance(effect, Deferred):
                self._deferred(node, effect)
            elif isinstance(effect, MustRelease | LeaseLost):
                remaining = effect.remaining if isinstance(effect, MustRelease) else None
                self._run(node, node.core.lease_ending(effect.name, remaining, "fastkill"))
        deadline = node.holder.next_deadline(self.local(node))
        if deadline is not None:
            self.on(node, max(0.0, deadline - self.local(node)) + 1e-9, self._holder_tick)

    def _holder_tick(self, node: Node) -> None:
        self.events += 1
        now = self.local(node)
        deadline = node.holder.next_deadline(now)
        if deadline is not None and deadline <= now:
            self._lease(node, node.holder.tick(now))

    def _to_voter(self, node: Node, send: Send) -> None:
        message = send.message
        if send.voter == node.name:
            self.on(node, LOCAL, lambda n: self._vote(n, n.name, message))
        else:
            self.send(node, send.voter, lambda voter, c=node.name: self._vote(voter, c, message))

    def _vote(self, voter: Node, candidate: str, message: AcquireRequest | Release) -> None:
        self.events += 1
        now = self.local(voter)
        if isinstance(message, Release):
            voter.voter.on_release(message, now)
            return
        reply = voter.voter.on_acquire(message, now)
        if candidate == voter.name:
            self.on(voter, LOCAL, lambda n: self._reply(n, reply))
        else:
            self.send(voter, candidate, lambda n: self._reply(n, reply))

    def _reply(self, node: Node, reply: AcquireReply) -> None:
        self._lease(node, node.holder.on_reply(reply, self.local(node)))

    # --- physical truth and the checker ---------------------------------------------------------

    def _in(self, node: Node, root: str) -> None:
        others = self.serving[root] - {node.name}
        self.serving[root].add(node.name)
        self.log(f"{node.name}: {root} in service")
        if others:
            raise Failure(f"SAFETY: {root} in service on {node.name} and "
                          f"{', '.join(sorted(others))} at {self.now:.4f}")
        self.stats["takeovers"] += 1

    def _out(self, node: Node, root: str) -> None:
        if node.name in self.serving[root]:
            self.log(f"{node.name}: {root} out of service")
        self.serving[root].discard(node.name)

    def _next_in_order(self, owner: Node) -> str | None:
        """The node that must take app over from `owner`, powering off now, if the weather
        is calm enough to say."""
        now = self.now
        if (owner.name not in self.serving["app"] or self.loss or self.cut
                or any(now < t < now + ORDER_WINDOW for t in self.faults)):
            return None
        others = [self.nodes[n] for n in NODES if n != owner.name]
        if any(not n.up or now - self.booted[n.name] < SETTLED_UP or "app" in n.core.busy
               for n in others):
            return None
        return next((n.name for n in others if "app" not in n.core.failed
                     and not n.core.leaves_alone("app", self.local(n))), None)

    def liveness(self) -> str | None:
        app, web = self.serving["app"], self.serving["web"]
        if len(app) != 1 or self.broken in app:
            return (f"liveness: {SETTLE:g}s after the faults stopped app is in service on "
                    f"{sorted(app) or 'no node'} (broken: {self.broken})")
        where = {"same_node": web == app, "any_node": len(web) == 1,
                 "different_node": len(web) == 1 and web != app}[self.location]
        if not where:
            return (f"liveness: web (needs app, {self.location}) is in service on "
                    f"{sorted(web) or 'no node'}, app on {sorted(app)}")
        return None

    # --- faults ---------------------------------------------------------------------------------

    def plan_faults(self) -> None:
        t = self.rng.uniform(5.5, 7.0) if self.calm else self.rng.uniform(0.5, 3.0)
        while t < FAULTS:
            name = self.rng.choice(NODES)
            length = self.rng.uniform(0.5, 5.0)
            self.faults.append(t)
            if self.calm:
                self.at(t, lambda d=length + ORDER_WINDOW: self.crash(self._owner(), d))
            elif (kind := self.rng.random()) < 0.4:
                self.at(t, lambda n=name, d=length: self.crash(n, d))
            elif kind < 0.8:
                self.at(t, lambda n=name, d=length: self.isolate(n, d))
            else:  # tutelad restarts, and the node is often cut off while it re-adopts
                cut = self.rng.uniform(0.05, 2.0) if self.rng.random() < 0.7 else None
                self.at(t, lambda c=cut, d=length: self.restart_owner_daemon(c, d))
            t += self.rng.uniform(ORDER_WINDOW, 8.0) if self.calm else self.rng.uniform(1.0, 5.0)
        self.faults.append(FAULTS)
        self.at(FAULTS, self.heal)

    def isolate(self, name: str, length: float) -> None:
        self.stats["partitions"] += 1
        links = {frozenset((name, peer)) for peer in NODES if peer != name}
        self.log(f"{name} cut off for {length:.2f}s")
        self.cut |= links
        self.at(min(self.now + length, FAULTS), lambda: self.cut.difference_update(links))

    def heal(self) -> None:
        self.log("faults stop")
        self.cut.clear()
        for name in NODES:
            self.restart(name)

    def run(self) -> str | None:
        self.plan_faults()
        end, settled = FAULTS + SETTLE, None
        try:
            while self.queue and self.queue[0][0] <= end:
                self.now, _, action = heapq.heappop(self.queue)
                action()
                if self.now > FAULTS:
                    settled = (settled or self.now) if self.liveness() is None else None
                    if settled is not None and self.now - settled >= STABLE:
                        return None
        except Failure as failure:
            return str(failure)
        self.now = end
        return self.liveness()


def simulate_ownership(seed: int, variant: Variant = CORRECT, trace: bool = False) -> Outcome:
    sim = Sim(seed, variant, trace)
    failure = sim.run()
    return Outcome(seed, FAMILY, variant.name, failure, sim.events, sim.now, sim.stats,
                   sim.trace, script="ownership_sim.py")


def run_ownership_seeds(seeds: Iterable[int], variant: Variant = CORRECT
                        ) -> tuple[list[Outcome], dict[str, int]]:
    failures, totals = [], {}
    for seed in seeds:
        outcome = simulate_ownership(seed, variant)
        totals = {k: totals.get(k, 0) + v for k, v in outcome.stats.items()}
        if not outcome.ok:
            failures.append(outcome)
    return failures, totals


def main(argv: list[str] | None = None) -> int:
    from ownership_mutants import OWNERSHIP_MUTANTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--family", choices=[FAMILY], default=FAMILY, help="its only family")
    parser.add_argument("--variant", choices=sorted(OWNERSHIP_MUTANTS), default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    variant = OWNERSHIP_MUTANTS[args.variant] if args.variant else CORRECT
    failed = 0
    for seed in range(args.seed, args.seed + args.seeds):
        outcome = simulate_ownership(seed, variant, trace=args.verbose)
        if not outcome.ok:
            failed += 1
            print(outcome.report(tail=10**6 if args.verbose else 60))
        elif args.verbose:
            print("\n".join(outcome.trace))
    print(f"{args.seeds - failed} of {args.seeds} seeds passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
