"""Deterministic simulation of configuration replication (family `config`): the pure core
(tutela.lcd.replication) on 3 or 5 nodes under partitions, crashes and restarts during
changes, frozen lease holders, late messages and concurrent proposers.

The configuration lease is modelled by what its proof gives (docs/leases.md): at most one
holder at any true instant, granted by a majority it can reach, renewed while the holder
runs and reaches a majority, lapsing L after its last renewal. A holder that freezes
resumes its change where it was; the proposer gives the change up when it no longer holds
the lease before it commits and before it reports.

The checker (docs/cluster.md, "Replication as a pure core"):
- one history: no two configurations are reported committed with the same generation,
  and after the network heals every node ends on the same version and configuration;
- nothing committed is lost: every configuration reported committed is a prefix of the
  one every node ends on (a configuration is the list of changes it was built from);
- a minority never commits: a change is reported committed only when a majority of the
  nodes stored exactly its version and configuration.

Replay a seed: python tests/sim/config_sim.py --seed N [--variant V] [--verbose]
(variant `before-fix`: the rules before the fix, for the findings kept as tests)
"""

from __future__ import annotations

import argparse
import functools
import heapq
import random
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from simulate import _python

from tutela.lcd.replication import (
    Acceptor,
    AskPromise,
    Fetch,
    Proposer,
    ReplicationFailed,
    Stored,
    Version,
)

FAMILIES = ("config", "config-calm")
"""config: every fault above. config-calm: the same partitions, crashes, restarts and
concurrent proposers, but every message lands well within a lease and no process freezes,
so a holder's messages land within its lease (docs/cluster.md, "Replication as a pure
core")."""
L = 1.0
"""The configuration lease, seconds of true time (the simulation's unit)."""
REQUEST_WAIT = 5.0
"""A peer's time to answer one request (tutela.daemon.cluster.REQUEST_WAIT)."""
LEASE_WAIT = 5.0
"""How long a change waits for the lease (CONFIG_LEASE_WAIT)."""
HEARTBEAT = 0.5
"""Seconds between the version announcements that drive catch-up."""
SETTLE = 10.0
"""Seconds after the heal: late messages (at most 3 L) land and catch-up ends."""

Content = tuple[str, ...]
"""A configuration: the changes it was built from, in order (generation = length + 1)."""


@dataclass(frozen=True)
class ConfigVariant:
    """The real core, or a deliberately broken part of it (config_mutants.py)."""

    name: str = "correct"
    make_acceptor: Callable[[Stored], Acceptor] = Acceptor
    make_proposer: Callable[[int, int], Proposer] = Proposer
    keeps_promise: bool = True
    """False: a restarted node forgets the epoch it promised (not kept on disk)."""
    checks_lease: bool = True
    """False: the proposer is told it holds the lease whatever the lease is."""


CORRECT = ConfigVariant()
"""The core's rules (tutela.lcd.replication): the base the mutants break."""


@dataclass
class ConfigOutcome:
    seed: int
    family: str
    variant: str
    failure: str | None
    events: int
    stats: dict[str, int]
    trace: list[str]

    @property
    def ok(self) -> bool:
        return self.failure is None

    def replay_command(self) -> str:
        variant = "" if self.variant == CORRECT.name else f" --variant {self.variant}"
        return (f"{_python()} tests/sim/config_sim.py --seed {self.seed} --family "
                f"{self.family}{variant} --verbose")

    def report(self, tail: int = 80) -> str:
        return "\n".join([f"seed {self.seed} ({self.family}, {self.variant}): {self.failure}",
                          f"replay: {self.replay_command()}", "last events:",
                          *self.trace[-tail:]])


@dataclass
class Node:
    name: str
    version: Version = (1, 0)
    content: Content = ()
    promise: int = 0
    up: bool = True
    paused_until: float = 0.0
    life: int = 0
    """Raised at every restart: what an earlier life waited for is dropped."""
    fetching: bool = False
    proposing: bool = False
    backlog_until: float = 0.0
    """What it sends until then lands 1.5 to 3 L late (attack backlog)."""

    def stored(self) -> Stored:
        return Stored(self.version, self.promise)


@dataclass(frozen=True)
class Ask:
    """A driver step: ask `peers` and resume with the answers that came within the wait."""

    peers: tuple[str, ...]
    kind: str
    payload: Any
    wait: float = REQUEST_WAIT


@dataclass(frozen=True)
class Grant:
    votes: dict[str, Stored]


@dataclass(frozen=True)
class LeaseAsk:
    """A driver step: acquire the configuration lease, resume with a Grant or None."""


Step = Ask | LeaseAsk
Driver = Generator[Step, Any, None]


@dataclass
class Waiter:
    node: str
    life: int
    driver: Driver
    pending: set[str]
    answers: dict[str, Any] = field(default_factory=dict)
    done: bool = False


class ConfigSimulation:
    def __init__(self, seed: int, family: str = FAMILIES[0], variant: ConfigVariant = CORRECT,
                 trace: bool = False) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}")
        self.seed, self.family, self.variant, self.tracing = seed, family, variant, trace
        self.calm = family == "config-calm"
        self.rng = random.Random(f"{family}:{seed}")
        count = self.rng.choice((3, 5))
        self.nodes = {f"n{i}": Node(f"n{i}") for i in range(1, count + 1)}
        self.majority = count // 2 + 1
        self.now = 0.0
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = 0
        self.cut: set[tuple[str, str]] = set()
        self.lease: tuple[str, int, float] | None = None
        self.heal_at = self.rng.uniform(12.0, 24.0)
        self.healed = False
        self.failure: str | None = None
        self.trace: list[str] = []
        self.events = 0
        self.changes = 0
        self.stored_by: dict[tuple[Version, Content], set[str]] = {}
        self.committed: dict[int, Content] = {}
        self.stats = dict.fromkeys(
            ("changes", "committed", "refused", "frozen_holders", "crashes", "partitions",
             "replaced", "concurrent", "majority_held", "amnesia_attacks",
             "backlog_attacks"), 0)

    # -- the event loop ------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None], node: str | None = None) -> None:
        """Run `action` at `when`; an action of a frozen node waits until it resumes."""
        def run() -> None:
            if node is not None and self.nodes[node].paused_until > self.now:
                self.at(self.nodes[node].paused_until, action, node)
                return
            action()
        self.sequence += 1
        heapq.heappush(self.queue, (when, self.sequence, run))

    def log(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.now:9.4f} {text}")

    def fail(self, text: str) -> None:
        if self.failure is None:
            self.failure = f"SAFETY: {text}"
            self.log(f"FAILURE {self.failure}")

    def run(self) -> ConfigOutcome:
        for name in self.nodes:
            self._store(name, (1, 0), ())
            self.at(self.rng.uniform(0, HEARTBEAT), lambda n=name: self._heartbeat(n), name)
        self.at(0.1, self._renew_lease)
        self.at(self.rng.uniform(0.2, 1.0), self._next_change)
        self.at(self.rng.uniform(0.5, 2.0), self._next_fault)
        self.at(self.heal_at, self._heal)
        end = self.heal_at + SETTLE
        while self.queue and self.failure is None:
            when, _, action = heapq.heappop(self.queue)
            if when > end:
                break
            self.now = when
            self.events += 1
            action()
        if self.failure is None:
            self._check_end()
        return ConfigOutcome(self.seed, self.family, self.variant.name, self.failure, self.events,
                             self.stats, self.trace)

    # -- the network ---------------------------------------------------------------------

    def _delay(self) -> float:
        draw = self.rng.random()
        if self.healed or self.calm:
            return self.rng.uniform(0.001, 0.02) * L
        if draw < 0.04:
            return self.rng.uniform(0.5, 3.0) * L  # a backlog, a slow path
        if draw < 0.15:
            return self.rng.uniform(0.05, 0.5) * L
        return self.rng.uniform(0.001, 0.02) * L

    def send(self, source: str, target: str, deliver: Callable[[], None]) -> None:
        if self.nodes[source].backlog_until > self.now:  # queued before any cut, late
            delay = self.rng.uniform(1.5, 3.0) * L
        elif (source, target) in self.cut or (not self.healed and self.rng.random() < 0.02):
            return
        else:
            delay = self._delay()
        self.at(self.now + delay, lambda: self._arrive(target, deliver), target)

    def _arrive(self, target: str, deliver: Callable[[], None]) -> None:
        if self.nodes[target].up:
            deliver()

    def reachable(self, a: str, b: str) -> bool:
        return a == b or (self.nodes[b].up and (a, b) not in self.cut
                          and (b, a) not in self.cut)

    # -- what a node stores --------------------------------------------------------------

    def _store(self, name: str, version: Version, content: Content) -> None:
        node = self.nodes[name]
        if node.version[0] == version[0] and node.content != content:
            self.stats["replaced"] += 1
        node.version, node.content = version, content
        holders = self.stored_by.setdefault((version, content), set())
        holders.add(name)
        self.log(f"{name} stores {version} {list(content)}")
        if len(holders) == self.majority:
            self.stats["majority_held"] += 1

    def acceptor(self, name: str) -> Acceptor:
        return self.variant.make_acceptor(self.nodes[name].stored())

    def _take(self, name: str, version: Version, content: Content, pushed: bool) -> None:
        """A pushed or fetched version, as the acceptor decides."""
        acceptor = self.acceptor(name)
        decision = acceptor.on_push(version) if pushed else acceptor.on_fetched(version)
        if decision.adopt:
            self._store(name, version, content)

    def _answer(self, name: str, kind: str, payload: Any) -> Any:
        node = self.nodes[name]
        if kind == "promise":
            decision = self.acceptor(name).on_promise(payload)
            if decision.store is not None:
                node.promise = decision.store
            return decision.promised
        if kind == "push":
            self._take(name, *payload, pushed=True)
            return node.version
        return node.version, node.content  # get

    # -- drivers: a change and a catch-up ------------------------------------------------

    def start(self, name: str, driver: Driver) -> None:
        self._resume(Waiter(name, self.nodes[name].life, driver, set()), None)

    def _resume(self, waiter: Waiter, value: Any) -> None:
        node = self.nodes[waiter.node]
        if waiter.done or node.life != waiter.life or not node.up:
            return
        waiter.done = True
        try:
            step = waiter.driver.send(value)
        except StopIteration:
            return
        if isinstance(step, LeaseAsk):
            self._try_lease(waiter.node, waiter.life, waiter.driver, self.now + LEASE_WAIT)
        else:
            self._ask(Waiter(waiter.node, waiter.life, waiter.driver, set(step.peers)), step)

    def _ask(self, waiter: Waiter, step: Ask) -> None:
        if step.kind != "get":
            self.log(f"{waiter.node} asks {list(step.peers)}: {step.kind} {_short(step.payload)}")
        for peer in step.peers:
            def handle(peer: str = peer) -> None:
                answer = self._answer(peer, step.kind, step.payload)
                self.send(peer, waiter.node, lambda: self._answered(waiter, peer, answer))
            self.send(waiter.node, peer, handle)
        if not step.peers:
            self.at(self.now, lambda: self._resume(waiter, {}), waiter.node)
        self.at(self.now + step.wait, lambda: self._resume(waiter, dict(waiter.answers)),
                waiter.node)

    def _answered(self, waiter: Waiter, peer: str, answer: Any) -> None:
        self.log(f"{waiter.node} hears from {peer}: {_short(answer)}")
        waiter.answers[peer] = answer
        waiter.pending.discard(peer)
        if not waiter.pending:
            self._resume(waiter, dict(waiter.answers))

    def _peers_asked(self, name: str) -> tuple[str, ...]:
        """The peers the failure detector calls ALIVE: mostly the reachable ones, with a
        detector that has not noticed a cut or a crash yet now and then."""
        return tuple(p for p in self.nodes if p != name and (
            self.reachable(name, p) or self.rng.random() < 0.2))

    def _change(self, name: str, change: str) -> Driver:
        """One change, as tutelad makes it (no try/finally: an abandoned driver of a
        crashed life must not run anything when it is collected)."""
        self.nodes[name].proposing = True  # one change at a time (the daemon's lock)
        try:
            yield from self._propose(name, change)
        except ReplicationFailed as error:
            self.stats["refused"] += 1
            self.log(f"{name} change {change} fails: {error}")
        node = self.nodes[name]
        node.proposing = False
        if self.lease is not None and self.lease[:2] == (name, node.life):
            self.lease = None  # released

    def _propose(self, name: str, change: str) -> Driver:
        node = self.nodes[name]
        grant = yield LeaseAsk()
        if grant is None:
            raise ReplicationFailed("no quorum for the configuration lease")
        proposer = self.variant.make_proposer(len(self.nodes), self.majority)
        step = proposer.granted(node.stored(), grant.votes)
        if isinstance(step, Fetch):
            answers = yield Ask((step.peer,), "get", None)
            if step.peer in answers:
                self._take(name, *answers[step.peer], pushed=False)
            step = proposer.fetched(node.stored(), step.version)
        yield from self._commit_and_push(name, change, proposer, step)

    def _commit_and_push(self, name: str, change: str, proposer: Proposer,
                         step: AskPromise) -> Driver:
        node = self.nodes[name]
        decision = self.acceptor(name).on_promise(step.epoch)
        if decision.store is not None:
            node.promise = decision.store
        answers = yield Ask(self._peers_asked(name), "promise", step.epoch)
        epoch = proposer.promised(answers, self._holds_lease(name))
        version, content = proposer.next_version(node.stored(), epoch), (*node.content, change)
        self._store(name, version, content)
        self._maybe_freeze(name)
        answers = yield Ask(self._peers_asked(name), "push", (version, content))
        proposer.confirmed(version, answers, self.majority, self._holds_lease(name))
        self._report(name, version, content)

    def _holds_lease(self, name: str) -> bool:
        lease, life = self.lease, self.nodes[name].life
        holds = lease is not None and lease[:2] == (name, life) and lease[2] > self.now
        return holds or not self.variant.checks_lease

    def _report(self, name: str, version: Version, content: Content) -> None:
        self.stats["committed"] += 1
        self.log(f"{name} reports generation {version} committed: {list(content)}")
        if len(self.stored_by.get((version, content), ())) < self.majority:
            self.fail(f"{name} reports {version} {list(content)} committed, but only "
                      f"{sorted(self.stored_by.get((version, content), ()))} stored it")
        before = self.committed.setdefault(version[0], content)
        if before != content:
            self.fail(f"two configurations reported committed for generation {version[0]}: "
                      f"{list(before)} and {list(content)}")

    def _catch_up(self, name: str, peer: str) -> Driver:
        node = self.nodes[name]
        node.fetching = True
        answers = yield Ask((peer,), "get", None)
        if peer in answers:
            self._take(name, *answers[peer], pushed=False)
        node.fetching = False

    def _heartbeat(self, name: str) -> None:
        node = self.nodes[name]
        if node.up:
            version = node.version
            for peer in self.nodes:
                if peer != name:
                    self.send(name, peer, lambda p=peer: self._announced(p, name, version))
        self.at(self.now + HEARTBEAT, lambda: self._heartbeat(name), name)

    def _announced(self, name: str, peer: str, version: Version) -> None:
        node = self.nodes[name]
        if version > node.version and not node.fetching:
            self.start(name, self._catch_up(name, peer))

    # -- the configuration lease ---------------------------------------------------------

    def _try_lease(self, name: str, life: int, driver: Driver, deadline: float) -> None:
        node = self.nodes[name]
        if node.life != life or not node.up:
            return
        voters = [p for p in self.nodes if self.reachable(name, p)]
        free = self.lease is None or self.lease[2] <= self.now
        if free and len(voters) >= self.majority:
            self.rng.shuffle(voters)
            chosen = voters[:self.majority]  # the fewest votes a grant can come with
            self.lease = (name, life, self.now + L)
            self.log(f"{name} holds the configuration lease")
            waiter = Waiter(name, life, driver, set())
            self._resume(waiter, Grant({v: self.nodes[v].stored() for v in chosen
                                        if v != name}))
            return
        if self.now >= deadline or len(voters) < self.majority:
            self._resume(Waiter(name, life, driver, set()), None)
            return
        self.at(self.now + 0.25 * L, lambda: self._try_lease(name, life, driver, deadline),
                name)

    def _renew_lease(self) -> None:
        """The holder renews while it runs and reaches a majority; otherwise it lapses."""
        if self.lease is not None:
            holder, life, expiry = self.lease
            node = self.nodes[holder]
            runs = node.up and node.life == life and node.paused_until <= self.now
            voters = sum(self.reachable(holder, p) for p in self.nodes)
            if runs and voters >= self.majority and expiry > self.now:
                self.lease = (holder, life, self.now + L)
        self.at(self.now + 0.25 * L, self._renew_lease)

    # -- changes and faults --------------------------------------------------------------

    def _next_change(self) -> None:
        if self.healed:
            return
        names = [n for n in self.nodes if self.nodes[n].up and not self.nodes[n].proposing]
        together = 2 if self.rng.random() < 0.3 else 1
        for name in self.rng.sample(names, min(together, len(names))):
            self.stats["concurrent"] += together > 1
            self._start_change(name)
        self.at(self.now + self.rng.expovariate(1 / (1.5 * L)), self._next_change)

    def _start_change(self, name: str) -> None:
        node = self.nodes[name]
        if self.healed or not node.up or node.proposing:
            return
        self.changes += 1
        self.stats["changes"] += 1
        change = f"c{self.changes}@{name}"
        self.log(f"{name} starts change {change}")
        self.start(name, self._change(name, change))

    def _maybe_freeze(self, name: str) -> None:
        """The adversary, between a holder's commit and its push: it freezes longer than
        its lease (a paused VM, an overloaded machine), or it is cut off and a rival
        changes the configuration after its lease lapsed (attacks)."""
        draw = self.rng.random()
        if self.calm or self.healed or draw >= 0.35:
            return
        if draw < 0.15:
            self.stats["frozen_holders"] += 1
            self._pause(name, self.rng.uniform(1.2, 4.0) * L)
        elif draw < 0.25:
            self._amnesia(name)
        else:
            self._backlog(name)

    def _rival_changes(self, holder: str, *delays: float) -> None:
        for delay in delays:
            rival = self.rng.choice([n for n in sorted(self.nodes) if n != holder])
            self.at(self.now + delay, functools.partial(self._start_change, rival))

    def _isolate(self, name: str, length: float) -> None:
        """Cut `name` off both ways for `length`, then make the network whole again."""
        self.cut |= {(a, b) for a in self.nodes for b in self.nodes
                     if a != b and name in (a, b)}
        self.at(self.now + length, self.cut.clear)

    def _amnesia(self, holder: str) -> None:
        """The holder's write stays with it alone, every other node restarts (what a
        node keeps on disk is all that is left of the epoch it promised), and a rival
        changes the configuration."""
        self.stats["amnesia_attacks"] += 1
        self.log(f"attack amnesia on {holder}")
        self._isolate(holder, self.rng.uniform(2.0, 3.0) * L)
        for name in self.nodes:
            if name != holder:
                self._crash(name, self.rng.uniform(0.05, 0.3) * L)
        self._rival_changes(holder, 0.5 * L, 2.5 * L)

    def _backlog(self, holder: str) -> None:
        """The holder's pushes sit in a backlog and land after a rival's change, which
        starts once the holder's lease lapsed; another change follows."""
        self.stats["backlog_attacks"] += 1
        self.log(f"attack backlog on {holder}")
        self.nodes[holder].backlog_until = self.now + 0.01 * L
        self._isolate(holder, 1.2 * L)
        self._rival_changes(holder, 0.1 * L, self.rng.uniform(2.0, 4.0) * L)

    def _pause(self, name: str, length: float) -> None:
        node = self.nodes[name]
        node.paused_until = max(node.paused_until, self.now + length)
        self.log(f"{name} frozen until {node.paused_until:.4f}")

    def _next_fault(self) -> None:
        if self.healed:
            return
        draw = self.rng.random()
        name = self.rng.choice(sorted(self.nodes))
        if draw < 0.35:
            self._partition()
        elif draw < 0.65:
            self._crash(name)
        elif draw < 0.85 and not self.calm:
            self._pause(name, self.rng.uniform(0.3, 3.0) * L)
        else:
            self.cut.clear()
            self.log("network whole again")
        self.at(self.now + self.rng.uniform(0.5, 2.5) * L, self._next_fault)

    def _partition(self) -> None:
        names = sorted(self.nodes)
        side = set(self.rng.sample(names, self.rng.randint(1, len(names) // 2)))
        one_way = self.rng.random() < 0.3
        self.cut = {(a, b) for a in side for b in names if b not in side}
        if not one_way:
            self.cut |= {(b, a) for a, b in self.cut}
        self.stats["partitions"] += 1
        self.log(f"partition {sorted(side)} {'one way' if one_way else 'both ways'}")

    def _crash(self, name: str, down_for: float | None = None) -> None:
        node = self.nodes[name]
        if not node.up:
            return
        node.up, node.fetching, node.proposing = False, False, False
        node.life += 1
        self.stats["crashes"] += 1
        self.log(f"{name} crashes")
        if down_for is None:
            down_for = self.rng.uniform(0.5, 3.0) * L
        self.at(self.now + down_for, lambda: self._restart(name))

    def _restart(self, name: str) -> None:
        node = self.nodes[name]
        if node.up:
            return
        node.up, node.paused_until = True, min(node.paused_until, self.now)
        if not self.variant.keeps_promise:
            node.promise = 0
        self.log(f"{name} restarts with {node.version} promise {node.promise}")

    def _heal(self) -> None:
        self.healed = True
        self.cut.clear()
        for name, node in self.nodes.items():
            node.paused_until = min(node.paused_until, self.now)
            if not node.up:
                self._restart(name)
        self.log("healed: no more faults or changes")

    # -- the end -------------------------------------------------------------------------

    def _check_end(self) -> None:
        ends = {(n.version, n.content) for n in self.nodes.values()}
        if len(ends) > 1:
            self.fail("the nodes end on different configurations: " + ", ".join(
                f"{n.name} {n.version} {list(n.content)}" for n in self.nodes.values()))
            return
        (_, final), = ends
        for generation, content in self.committed.items():
            if final[:len(content)] != content:
                self.fail(f"generation {generation} {list(content)} was committed and is "
                          f"lost: every node ends on {list(final)}")


def _short(value: Any) -> str:
    """A message for the trace: versions in full, configurations by their last change."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], tuple):
        return f"{value[0]} [...{value[1][-1:]}]"
    return str(value)


def simulate_config(seed: int, family: str = FAMILIES[0], variant: ConfigVariant = CORRECT,
                    trace: bool = False) -> ConfigOutcome:
    return ConfigSimulation(seed, family, variant, trace).run()


def config_variant(name: str) -> ConfigVariant:
    """The core's rules (correct), or a broken part of them by name."""
    if name == CORRECT.name:
        return CORRECT
    from config_mutants import CONFIG_MUTANTS  # the broken parts live with the tests
    return CONFIG_MUTANTS[name]


def run_config_seeds(seeds: range, family: str = FAMILIES[0], variant: str = CORRECT.name
                     ) -> tuple[list[ConfigOutcome], dict[str, int]]:
    """Run `seeds`; failures come back re-run with their trace, plus summed stats."""
    chosen = config_variant(variant)
    failures: list[ConfigOutcome] = []
    totals: dict[str, int] = {}
    for seed in seeds:
        outcome = simulate_config(seed, family, chosen)
        totals = {k: totals.get(k, 0) + v for k, v in outcome.stats.items()}
        if not outcome.ok:
            failures.append(simulate_config(seed, family, chosen, trace=True))
    return failures, totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed")
    parser.add_argument("--family", choices=FAMILIES, default=FAMILIES[0])
    parser.add_argument("--variant", "--mutant", default=CORRECT.name,
                        help="correct (the core's rules, the default), before-fix, or a "
                             "broken part from tests/sim/config_mutants.py")
    parser.add_argument("--verbose", action="store_true", help="print every event")
    args = parser.parse_args(argv)
    variant = config_variant(args.variant)
    failed = 0
    for seed in range(args.seed, args.seed + args.seeds):
        outcome = simulate_config(seed, args.family, variant, trace=args.verbose)
        if args.verbose:
            print("\n".join(outcome.trace))
        status = "ok" if outcome.ok else f"FAILED {outcome.failure}"
        print(f"seed {seed} ({args.family}, {variant.name}): {outcome.events} events: {status}")
        failed += not outcome.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
