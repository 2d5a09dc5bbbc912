"""Deterministic simulation of configuration replication (family `config`): the pure core
(tutela.lcd.replication) on 3 or 5 nodes (and 0 to 2 witnesses) under partitions, crashes
and restarts during changes, frozen lease holders, late messages, concurrent proposers and
changes of the voters: nodes join and are removed, witnesses are added and removed.

The configuration lease is modelled voter by voter, as the lease protocol gives it
(docs/leases.md): a candidate holds it once a majority of the voters of its own
configuration (nodes and witnesses) granted it; a voter grants one holder at a time until
the grant expires (L after the last renewal, clocks ideal); the holder renews while it runs
and reaches a majority of its voters; a holder that freezes resumes its change where it
was, and the proposer gives the change up when it no longer holds the lease before it
commits and before it reports. Two holders whose voter sets differ by more than one voter
can overlap (a node that missed changes of the voters): replication must stay safe then
too. A node takes messages only from the nodes of its own configuration (a removed node's
are dropped); a witness answers every node of the cluster.

The checker (docs/cluster.md, "Replication as a pure core"):
- a minority never commits: a change is reported committed only when a majority of the
  nodes of the configuration it was built on stored exactly its version and configuration;
- one generation, one configuration: no two configurations are reported committed with the
  same generation;
- one history: once the network heals, every node of the newest configuration (that
  started: a node added whose join was not confirmed never starts) ends on exactly that
  version and configuration (a removed node that missed its removal keeps what it had);
- nothing committed is lost: every configuration reported committed is a prefix of that
  one (a configuration is the list of changes it was built from).

Replay a seed: python tests/sim/config_sim.py --seed N [--variant V] [--verbose]
(variant `before-fix`: the rules before the fix, for the findings kept as tests)
"""

from __future__ import annotations

import argparse
import functools
import heapq
import random
import re
import sys
from collections.abc import Callable, Collection, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulate import Outcome

from tutela.lcd.replication import (
    Acceptor,
    Fetch,
    Promised,
    Proposer,
    ReplicationFailed,
    Stored,
    Version,
    majority_of,
    newer,
    order,
    require_settled,
    voter_change,
)

FAMILIES = ("config", "config-calm", "config-overlap")
"""config: every fault above. config-calm: the same partitions, crashes, restarts, voter
changes and concurrent proposers, but every message lands well within a lease and no
process freezes, so a holder's messages land within its lease. config-overlap: `config`
with a lease that does not exclude (every voter grants whoever asks), so holders overlap
all the time and only the promises keep replication safe (docs/cluster.md, "Replication
as a pure core")."""
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
SPARES = 2
"""Nodes that may join during a run (never started before they join)."""
WITNESSES = ("w1", "w2")

Content = tuple[str, ...]
"""A configuration: the changes it was built from, in order. A change of the voters names
them after a colon: `c7@n2:+n6` (n6 joins), `:-n3` (n3 removed), `:+w1`, `:-w1`."""
VOTER_OP = re.compile(r"([+-])([nw]\d+)")


@dataclass(frozen=True)
class ConfigVariant:
    """The real core, or a deliberately broken part of it (config_mutants.py)."""

    name: str = "correct"
    make_acceptor: Callable[[Stored], Acceptor] = Acceptor
    make_proposer: Callable[[], Proposer] = Proposer
    keeps_promise: bool = True
    """False: a restarted node forgets the epoch it promised (not kept on disk)."""
    checks_lease: bool = True
    """False: the proposer is told it holds the lease whatever the lease is."""
    promise_carries_version: bool = True
    """False: a promise answer does not say what the node holds (an older tutela's)."""
    voter_change: Callable[[Collection[str], Collection[str]], str | None] = voter_change
    """One voter added or removed at a time (else ReplicationFailed)."""
    require_settled: Callable[[Version, Mapping[str, Version], Collection[str]], None] = (
        require_settled)
    """A change of the voters only on a version a majority of its nodes hold."""
    newer: Callable[[Version, Version], bool] = newer
    """The order a heartbeat's version is compared in (whether to catch up)."""


CORRECT = ConfigVariant()
"""The core's rules (tutela.lcd.replication): the base the mutants break."""


@dataclass
class Node:
    name: str
    version: Version = (1, 0)
    content: Content = ()
    promise: int = 0
    started: bool = True
    """False for a spare until it joins: it has no LCD and runs nothing."""
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


@dataclass(frozen=True)
class Work:
    """A driver step: the daemon works on the change (validation off the event loop)
    for `seconds`; a catch-up may store a fetched version meanwhile."""

    seconds: float


Step = Ask | LeaseAsk | Work
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
        self.overlap = family == "config-overlap"
        self.rng = random.Random(f"{family}:{seed}")
        count = self.rng.choice((3, 5))
        self.first_nodes = tuple(f"n{i}" for i in range(1, count + 1))
        self.first_witnesses: tuple[str, ...] = self.rng.choice(((), WITNESSES[:1]))
        self.nodes = {f"n{i}": Node(f"n{i}", started=i <= count)
                      for i in range(1, count + SPARES + 1)}
        self.now = 0.0
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = 0
        self.cut: set[tuple[str, str]] = set()
        self.grants: dict[str, tuple[str, int, float]] = {}
        """Each voter's grant of the configuration lease: holder, its life, expiry."""
        self.leases: dict[str, tuple[int, float]] = {}
        """Each holder's lease: its life and when it lapses."""
        self.heal_at = self.rng.uniform(12.0, 24.0)
        self.healed = False
        self.failure: str | None = None
        self.audited: str | None = None
        self.epochs: dict[int, tuple[str, int]] = {}
        """Each epoch a majority promised, and to whom (holder, life)."""
        self.trace: list[str] = []
        self.events = 0
        self.changes = 0
        self.last_change = 0.0
        self.stored_by: dict[tuple[Version, Content], set[str]] = {}
        self.committed: dict[int, Content] = {}
        self.stats = dict.fromkeys(
            ("changes", "committed", "refused", "frozen_holders", "crashes", "partitions",
             "replaced", "concurrent", "majority_held", "amnesia_attacks", "backlog_attacks",
             "voter_changes", "joins", "removals", "witness_changes", "overlapping_leases"),
            0)

    # -- the configuration's voters --------------------------------------------------------

    def members(self, content: Content) -> tuple[frozenset[str], frozenset[str]]:
        """The nodes and the witnesses of a configuration."""
        nodes, witnesses = set(self.first_nodes), set(self.first_witnesses)
        for change in content:
            for sign, voter in VOTER_OP.findall(change.partition(":")[2]):
                chosen = nodes if voter.startswith("n") else witnesses
                (chosen.add if sign == "+" else chosen.discard)(voter)
        return frozenset(nodes), frozenset(witnesses)

    def nodes_of(self, name: str) -> frozenset[str]:
        return self.members(self.nodes[name].content)[0]

    def voters_of(self, name: str) -> frozenset[str]:
        nodes, witnesses = self.members(self.nodes[name].content)
        return nodes | witnesses

    def takes_from(self, receiver: str, sender: str) -> bool:
        """A node takes messages only from the nodes of its configuration; a witness
        from every node of the cluster."""
        return receiver not in self.nodes or sender in self.nodes_of(receiver)

    # -- the event loop ------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None], node: str | None = None) -> None:
        """Run `action` at `when`; an action of a frozen node waits until it resumes."""
        def run() -> None:
            if node is not None and node in self.nodes and \
                    self.nodes[node].paused_until > self.now:
                self.at(self.nodes[node].paused_until, action, node)
                return
            action()
        self.sequence += 1
        heapq.heappush(self.queue, (when, self.sequence, run))

    def log(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.now:9.4f} {text}")

    def fail(self, check: str, text: str) -> None:
        if self.failure is None:
            self.failure = f"SAFETY: {check}: {text}"
            self.log(f"FAILURE {self.failure}")

    def audit(self, check: str, text: str) -> None:
        """A step that breaks one of the acceptor's rules, seen in what the nodes store:
        reported at the end if the properties held (it names the rule broken)."""
        if self.audited is None:
            self.audited = f"RULE: {check}: {text}"
            self.log(f"AUDIT {self.audited}")

    def _promise(self, name: str, epoch: int, where: str) -> None:
        node = self.nodes[name]
        if epoch < node.promise:
            self.audit("only a higher epoch is promised",
                       f"{name} promised epoch {epoch} below its promise {node.promise} "
                       f"{where}")
        node.promise = epoch

    def run(self) -> Outcome:
        for name in self.first_nodes:
            self._store(name, (1, 0), ())
            self.at(self.rng.uniform(0, HEARTBEAT), lambda n=name: self._heartbeat(n), name)
        self.at(0.1, self._renew_leases)
        self.at(self.rng.uniform(0.2, 1.0), self._next_change)
        self.at(self.rng.uniform(0.5, 2.0), self._next_fault)
        self.at(self.heal_at, self._heal)
        end = self.heal_at + SETTLE
        while self.queue and self.failure is None:
            when, _, action = heapq.heappop(self.queue)
            if when > end and self._quiet(when):
                break
            end = max(end, when)
            self.now = when
            self.events += 1
            action()
        if self.failure is None:
            self._check_end()
        self.failure = self.failure or self.audited
        return Outcome(self.seed, self.family, self.variant.name, self.failure, self.events,
                       self.now, self.stats, self.trace, script="config_sim.py")

    def _quiet(self, when: float) -> bool:
        """No change is under way and none ended in the last SETTLE / 2 (a node that
        joined last catches up), or the run has gone on long enough."""
        busy = any(node.proposing for node in self.nodes.values())
        return when > self.heal_at + 4 * SETTLE or not (
            busy or when - self.last_change < SETTLE / 2)

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
        self.at(self.now + delay, lambda: self._arrive(source, target, deliver), target)

    def _arrive(self, source: str, target: str, deliver: Callable[[], None]) -> None:
        node = self.nodes[target]
        if node.up and node.started and self.takes_from(target, source):
            deliver()

    def reachable(self, a: str, b: str) -> bool:
        if a == b or b not in self.nodes:
            return True  # a witness: reachable from every node (cuts are between nodes)
        node = self.nodes[b]
        return node.up and node.started and (a, b) not in self.cut and (b, a) not in self.cut

    # -- what a node stores --------------------------------------------------------------

    def _store(self, name: str, version: Version, content: Content) -> None:
        node = self.nodes[name]
        if node.version[0] == version[0] and node.content != content:
            self.stats["replaced"] += 1
        node.version, node.content = version, content
        holders = self.stored_by.setdefault((version, content), set())
        holders.add(name)
        self.log(f"{name} stores {version} {list(content)}")
        if len(holders) == majority_of(self.members(content[:-1])[0]):
            self.stats["majority_held"] += 1

    def acceptor(self, name: str) -> Acceptor:
        return self.variant.make_acceptor(self.nodes[name].stored())

    def _take(self, name: str, version: Version, content: Content, pushed: bool) -> None:
        """A pushed or fetched version, as the acceptor decides."""
        acceptor = self.acceptor(name)
        decision = acceptor.on_push(version) if pushed else acceptor.on_fetched(version)
        if decision.adopt:
            node = self.nodes[name]
            if pushed and version[1] < node.promise:
                self.audit("no push below the promise", f"{name} took a push of {version} "
                           f"below its promise {node.promise}, given to a later holder")
            if not newer(version, node.version):
                self.audit("a version is replaced only by a newer one (epoch first)",
                           f"{name} replaced {node.version} by {version}")
            self._store(name, version, content)

    def _answer(self, name: str, kind: str, payload: Any) -> Any:
        node = self.nodes[name]
        if kind == "promise":
            decision = self.acceptor(name).on_promise(payload)
            if decision.store is not None:
                self._promise(name, decision.store, "when asked")
            held = node.version if self.variant.promise_carries_version else None
            return Promised(decision.promised, held)
        if kind == "push":
            self._take(name, *payload, pushed=True)
            return node.stored()
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
        elif isinstance(step, Work):
            resumed = Waiter(waiter.node, waiter.life, waiter.driver, set())
            self.at(self.now + step.seconds, lambda: self._resume(resumed, None), waiter.node)
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
        """The nodes of its configuration the failure detector calls ALIVE: mostly the
        reachable ones, with a detector that has not noticed a cut or a crash yet now and
        then."""
        return tuple(p for p in sorted(self.nodes_of(name)) if p != name and (
            self.reachable(name, p) or self.rng.random() < 0.2))

    def _change(self, name: str, change: str, kind: str) -> Driver:
        """One change, as tutelad makes it (no try/finally: an abandoned driver of a
        crashed life must not run anything when it is collected)."""
        self.nodes[name].proposing = True  # one change at a time (the daemon's lock)
        try:
            yield from self._propose(name, change, kind)
        except ReplicationFailed as error:
            self.stats["refused"] += 1
            self.log(f"{name} change {change} fails: {error}")
        node = self.nodes[name]
        node.proposing = False
        self.last_change = self.now
        self._release(name)

    def _propose(self, name: str, change: str, kind: str) -> Driver:
        node = self.nodes[name]
        grant = yield LeaseAsk()
        if grant is None:
            raise ReplicationFailed("no quorum for the configuration lease")
        proposer = self.variant.make_proposer()
        fetch = proposer.granted(node.stored(), grant.votes)
        if fetch is not None:
            yield from self._fetch(name, fetch)
            proposer.fetched(node.stored(), fetch.version)
        epoch = proposer.ask(node.stored(), self.nodes_of(name)).epoch
        decision = self.acceptor(name).on_promise(epoch)
        if decision.store is not None:
            self._promise(name, decision.store, "for its own change")
        answers = yield Ask(self._peers_asked(name), "promise", epoch)
        fetch = proposer.promised(node.stored(), answers, self._holds_lease(name))
        holder = self.epochs.setdefault(epoch, (name, node.life))
        if holder != (name, node.life):
            self.audit("one epoch, one holder", f"{name} and {holder[0]} were both promised "
                       f"epoch {epoch} by a majority")
        if fetch is not None:
            yield from self._fetch(name, fetch)
        epoch = proposer.ready(node.stored(), None if fetch is None else fetch.version,
                               self.nodes_of(name), self._holds_lease(name))
        holding = {p: a.version for p, a in answers.items() if a.version is not None}
        yield from self._commit_and_push(name, self._resolve(name, change, kind), proposer,
                                         epoch, holding)

    def _fetch(self, name: str, fetch: Fetch) -> Driver:
        answers = yield Ask((fetch.peer,), "get", None)
        if fetch.peer in answers:
            self._take(name, *answers[fetch.peer], pushed=False)

    def _commit_and_push(self, name: str, change: str, proposer: Proposer, epoch: int,
                         holding: dict[str, Version]) -> Driver:
        node = self.nodes[name]
        base, content = node.version, (*node.content, change)
        before, after = self.members(node.content), self.members(content)
        if self.variant.voter_change(before[0] | before[1], after[0] | after[1]) is not None:
            self.variant.require_settled(base, {**holding, name: base}, before[0])
            self.stats["voter_changes"] += 1
        yield Work(self.rng.uniform(0.0, 0.05) * L)  # validation: a catch-up may land
        if not self._holds_lease(name):
            raise ReplicationFailed("the configuration lease lapsed before it committed")
        version = proposer.commit_version(node.stored(), base, epoch)
        self._audit_commit(name, version, proposer.members, (before, after),
                           (base, content[:-1]))
        self._store(name, version, content)
        self._maybe_freeze(name)
        answers = yield Ask(self._peers_asked(name), "push", (version, content))
        proposer.confirmed(version, answers, before[0], self._holds_lease(name))
        self._report(name, version, content, before[0])

    def _audit_commit(self, name: str, version: Version, promised_by: frozenset[str],
                      voters: tuple[tuple[frozenset[str], frozenset[str]], ...],
                      base: tuple[Version, Content]) -> None:
        """The proposer's rules, seen in what it is about to store."""
        node = self.nodes[name]
        (nodes, witnesses), (nodes_after, witnesses_after) = voters
        changed = (nodes | witnesses) ^ (nodes_after | witnesses_after)
        if len(changed) > 1:
            self.audit("one voter at a time", f"{name} commits {version}, which changes "
                       f"the voters {sorted(changed)} at once")
        if promised_by != nodes:
            self.audit("promises from the nodes written on",
                       f"{name} commits {version} on the nodes {sorted(nodes)} with the "
                       f"promises of a majority of {sorted(promised_by)}")
        held = self.stored_by.get(base, set()) & nodes
        if changed and len(held) < majority_of(nodes):
            self.audit("a voter change only on a settled configuration",
                       f"{name} changes the voters {sorted(changed)} on {base[0]}, which "
                       f"only {sorted(held)} of {sorted(nodes)} ever held")
        if not newer(version, node.version) or base[0] != node.version:
            self.audit("a change is committed on the version it was made on",
                       f"{name} commits {version} made on {base[0]} over {node.version}")

    def _resolve(self, name: str, change: str, kind: str) -> str:
        """The change asked for, made on the configuration in force now: which node
        joins or is removed, which witness comes or goes."""
        nodes, witnesses = self.members(self.nodes[name].content)
        joining = [n for n in sorted(self.nodes) if n not in nodes and not self.nodes[n].started]
        leaving = [n for n in sorted(nodes) if n != name]
        witness = next((w for w in WITNESSES if w in witnesses), None)
        toggle = f"-{witness}" if witness and self.rng.random() < 0.5 else next(
            (f"+{w}" for w in WITNESSES if w not in witnesses), f"-{witness}")
        if kind == "join" and joining:
            return f"{change}:+{joining[0]}"
        if kind == "remove" and len(leaving) >= 2:
            return f"{change}:-{self.rng.choice(leaving)}"
        if kind == "witness":
            return f"{change}:{toggle}"
        if kind == "two" and joining:  # a replacement, or a node and a witness
            second = f"-{self.rng.choice(leaving)}" if leaving and self.rng.random() < 0.5 \
                else toggle
            return f"{change}:+{joining[0]}{second}"
        return change

    def _holds_lease(self, name: str) -> bool:
        lease = self.leases.get(name)
        holds = lease is not None and lease[0] == self.nodes[name].life and lease[1] > self.now
        return holds or not self.variant.checks_lease

    def _report(self, name: str, version: Version, content: Content,
                built_on: frozenset[str]) -> None:
        self.stats["committed"] += 1
        self.log(f"{name} reports generation {version} committed: {list(content)}")
        stored = self.stored_by.get((version, content), set()) & built_on
        if len(stored) < majority_of(built_on):
            self.fail("a minority committed",
                      f"{name} reports {version} {list(content)} committed, but of the nodes "
                      f"{sorted(built_on)} only {sorted(stored)} stored it")
        before = self.committed.setdefault(version[0], content)
        if before != content:
            self.fail("one generation, one configuration",
                      f"two configurations reported committed for generation {version[0]}: "
                      f"{list(before)} and {list(content)}")
        for sign, voter in VOTER_OP.findall(content[-1].partition(":")[2]):
            self.stats["removals" if (sign, voter[0]) == ("-", "n") else
                       "witness_changes" if voter[0] == "w" else "joins"] += 1
        for joiner in sorted(self.members(content)[0] - built_on):
            self._join(joiner, version, content)

    def _join(self, name: str, version: Version, content: Content) -> None:
        """The joining node gets the configuration with its grant and starts (its LCD is
        created with the generation and epoch 0, as `tutela join` does)."""
        node = self.nodes[name]
        if node.started:
            return
        node.started, node.up = True, True
        self._store(name, (version[0], 0), content)
        self.at(self.now + self.rng.uniform(0, HEARTBEAT), lambda: self._heartbeat(name), name)

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
            for peer in sorted(self.nodes_of(name)):
                if peer != name:
                    self.send(name, peer, lambda p=peer: self._announced(p, name, version))
        self.at(self.now + HEARTBEAT, lambda: self._heartbeat(name), name)

    def _announced(self, name: str, peer: str, version: Version) -> None:
        node = self.nodes[name]
        if self.variant.newer(version, node.version) and not node.fetching:
            self.start(name, self._catch_up(name, peer))

    # -- the configuration lease, voter by voter -----------------------------------------

    def _willing(self, name: str, life: int) -> list[str]:
        """The voters of `name`'s configuration that would grant it now."""
        def free(voter: str) -> bool:
            grant = self.grants.get(voter)
            return (grant is None or grant[2] <= self.now or grant[:2] == (name, life)
                    or self.overlap)
        return [v for v in sorted(self.voters_of(name))
                if self.reachable(name, v) and self.takes_from(v, name) and free(v)]

    def _try_lease(self, name: str, life: int, driver: Driver, deadline: float) -> None:
        node = self.nodes[name]
        if node.life != life or not node.up:
            return
        voters = self.voters_of(name)
        willing = self._willing(name, life)
        if len(willing) >= majority_of(voters):
            self.rng.shuffle(willing)
            chosen = willing[:majority_of(voters)]  # the fewest votes a grant can come with
            expiry = self.now + L
            for voter in chosen:
                self.grants[voter] = (name, life, expiry)
            if any(h != name and lapse > self.now for h, (_, lapse) in self.leases.items()):
                self.stats["overlapping_leases"] += 1
            self.leases[name] = (life, expiry)
            self.log(f"{name} holds the configuration lease from {sorted(chosen)}")
            waiter = Waiter(name, life, driver, set())
            self._resume(waiter, Grant({v: self.nodes[v].stored() for v in chosen
                                        if v != name and v in self.nodes}))
            return
        reachable = sum(self.reachable(name, v) for v in voters)
        if self.now >= deadline or reachable < majority_of(voters):
            self._resume(Waiter(name, life, driver, set()), None)
            return
        self.at(self.now + 0.25 * L, lambda: self._try_lease(name, life, driver, deadline),
                name)

    def _renew_leases(self) -> None:
        """A holder renews while it runs and a majority of its voters (of the
        configuration it has now) grant it; otherwise its lease lapses."""
        for holder, (life, expiry) in sorted(self.leases.items()):
            node = self.nodes[holder]
            if not (node.up and node.life == life and node.paused_until <= self.now
                    and expiry > self.now):
                continue
            needed = majority_of(self.voters_of(holder))
            willing = self._willing(holder, life)
            if len(willing) >= needed:
                for voter in willing[:needed]:
                    self.grants[voter] = (holder, life, self.now + L)
                self.leases[holder] = (life, self.now + L)
        self.at(self.now + 0.25 * L, self._renew_leases)

    def _release(self, name: str) -> None:
        lease = self.leases.pop(name, None)
        if lease is None or lease[0] != self.nodes[name].life:
            return
        for voter, grant in list(self.grants.items()):
            if grant[:2] == (name, lease[0]):
                del self.grants[voter]

    # -- changes and faults --------------------------------------------------------------

    def _next_change(self) -> None:
        if self.healed:
            return
        names = [n for n, node in self.nodes.items()
                 if node.up and node.started and not node.proposing]
        together = 2 if self.rng.random() < 0.3 else 1
        for name in self.rng.sample(names, min(together, len(names))):
            self.stats["concurrent"] += together > 1
            self._start_change(name)
        self.at(self.now + self.rng.expovariate(1 / (1.5 * L)), self._next_change)

    def _start_change(self, name: str) -> None:
        node = self.nodes[name]
        if self.healed or not node.up or not node.started or node.proposing:
            return
        self.changes += 1
        self.stats["changes"] += 1
        draw = self.rng.random()
        kind = ("join" if draw < 0.12 else "remove" if draw < 0.2 else
                "witness" if draw < 0.28 else "two" if draw < 0.31 else "plain")
        change = f"c{self.changes}@{name}"
        self.log(f"{name} starts change {change} ({kind})")
        self.start(name, self._change(name, change, kind))

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
        if not node.up or not node.started:
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
        if not self.variant.keeps_promise and node.promise:
            self.audit("a promise survives a restart",
                       f"{name} restarted having promised nothing; it had promised "
                       f"epoch {node.promise}")
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
        """The final configuration: the newest held by a node that is one of its nodes and
        that no node's configuration removes (a removed node that missed its removal
        keeps running on what it had, and may even have written a minority's version)."""
        started = {n: node for n, node in self.nodes.items() if node.started}
        removed = {voter for node in started.values() for change in node.content
                   for sign, voter in VOTER_OP.findall(change.partition(":")[2]) if sign == "-"}
        final = max(((node.version, node.content) for n, node in started.items()
                     if n in self.members(node.content)[0] and n not in removed),
                    key=lambda end: order(end[0]))
        nodes = self.members(final[1])[0]
        if any((started[n].version, started[n].content) != final
               for n in nodes if n in started):
            self.fail("one history", f"the nodes of {final[0]} {list(final[1])} end on "
                      "different configurations: " + self._ends(
                          {n: node for n, node in started.items() if n in nodes}))
            return
        for generation, content in sorted(self.committed.items()):
            if final[1][:len(content)] != content:
                self.fail("nothing committed is lost",
                          f"generation {generation} {list(content)} was committed and is "
                          f"lost: the nodes end on {list(final[1])}")

    @staticmethod
    def _ends(nodes: dict[str, Node]) -> str:
        return ", ".join(f"{n.name} {n.version} {list(n.content)}" for n in nodes.values())


def _short(value: Any) -> str:
    """A message for the trace: versions in full, configurations by their last change."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], tuple):
        return f"{value[0]} [...{value[1][-1:]}]"
    return str(value)


def simulate_config(seed: int, family: str = FAMILIES[0], variant: ConfigVariant = CORRECT,
                    trace: bool = False) -> Outcome:
    return ConfigSimulation(seed, family, variant, trace).run()


def config_variant(name: str) -> ConfigVariant:
    """The core's rules (correct), or a broken part of them by name."""
    if name == CORRECT.name:
        return CORRECT
    from config_mutants import CONFIG_MUTANTS, SAFE_VARIANTS  # they live with the tests
    return {**CONFIG_MUTANTS, **SAFE_VARIANTS}[name]


def run_config_seeds(seeds: range, family: str = FAMILIES[0], variant: str = CORRECT.name
                     ) -> tuple[list[Outcome], dict[str, int]]:
    """Run `seeds`; failures come back re-run with their trace, plus summed stats."""
    chosen = config_variant(variant)
    failures: list[Outcome] = []
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
