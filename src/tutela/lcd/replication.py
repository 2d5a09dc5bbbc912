"""Configuration replication as a pure core: the acceptor's rules, one change's proposer,
and the one-voter-at-a-time rule for changes of the voters.

Sans-IO, like the lease cores in tutela.arbiter: nothing here reads a clock, touches the
LCD or sends a message. The acceptor is handed what a node has stored (its version and the
epoch it promised) and decides what to answer and what to store; the proposer is handed
the answers a change gets and decides its next step. The daemon (tutela.daemon.cluster,
tutela.daemon.service) carries the steps out and the LCD (tutela.lcd.store) stores what
the acceptor decides. docs/cluster.md, "One configuration on every node", is the protocol;
docs/leases.md, "Changing the voters", the argument for voter changes.

Versions are (generation, epoch) pairs on the wire and in the LCD, and order by epoch
first (`order`): a later holder's write beats an earlier holder's whatever their
generations, as a higher ballot does in Paxos. The simulation family `config`
(tests/sim/config_sim.py) checks these rules, and tests/unit/test_replication.py states
them case by case.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from tutela.lcd.transfer import Version, newer, order

__all__ = ["Acceptor", "AskPromise", "Fetch", "PromiseDecision", "Promised", "Proposer",
           "PushDecision", "ReplicationFailed", "Stored", "Version", "majority_of", "newer",
           "order", "require_lease", "require_settled", "voter_change"]


@dataclass(frozen=True)
class Stored:
    """What one node keeps for replication: its current version and its promise."""

    version: Version
    promise: int


@dataclass(frozen=True)
class PromiseDecision:
    """The answer to `config.promise`, and the promise to store (None: keep the old one)."""

    promised: bool
    store: int | None


@dataclass(frozen=True)
class PushDecision:
    """The answer to `config.push` (or a fetched version): adopt it or not."""

    adopt: bool


class Acceptor:
    """What a node does with a configuration lease holder's requests (`Lcd.raise_promise`,
    `Lcd.adopt`): it promises only an epoch above the one it promised (two holders never
    share an epoch), refuses a push of an epoch below its promise (a holder it promised
    a later epoch to may be writing), and keeps a version newer than its own."""

    def __init__(self, stored: Stored) -> None:
        self.stored = stored

    def on_promise(self, epoch: int) -> PromiseDecision:
        if epoch <= self.stored.promise:
            return PromiseDecision(False, None)
        return PromiseDecision(True, epoch)

    def on_push(self, version: Version) -> PushDecision:
        """`config.push` from a holder: refused when its epoch is below our promise (a
        holder whose lease lapsed), else taken as a fetched version is."""
        if version[1] < self.stored.promise:
            return PushDecision(False)
        return self.on_fetched(version)

    def on_fetched(self, version: Version) -> PushDecision:
        """A version fetched from a peer (catch-up, `config.get`): taken when newer, epoch
        first. The promise is not consulted: a committed version may carry an epoch below
        a promise given to a holder that then failed, and a node must still catch up."""
        return PushDecision(newer(version, self.stored.version))

    def vote(self) -> Stored:
        """What a grant of the configuration lease, and an answer to `config.promise`,
        carry back to the holder."""
        return self.stored


class ReplicationFailed(Exception):
    """A change cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Fetch:
    """Fetch the configuration from `peer` (it has `version`, newer than ours) first."""

    peer: str
    version: Version


@dataclass(frozen=True)
class AskPromise:
    """Promise `epoch` here and ask every node of the configuration to promise it."""

    epoch: int


@dataclass(frozen=True)
class Promised:
    """A peer's answer to `config.promise`: whether it promised, and the version it holds
    (None from a tutela that does not send it: docs/cluster.md, "Upgrading")."""

    promised: bool
    version: Version | None


def majority_of(members: Collection[str]) -> int:
    return len(members) // 2 + 1


class Proposer:
    """One configuration change on the node that holds the configuration lease: newest
    version a voter has -> an epoch above every promise heard, promised by a majority of
    the nodes -> the newest version a promiser has (Paxos' phase 1) -> commit here as the
    next generation -> push -> count the nodes that took it."""

    def __init__(self) -> None:
        self.votes: dict[str, Stored] = {}
        self.epoch = 0
        self.members: frozenset[str] = frozenset()

    def granted(self, own: Stored, votes: Mapping[str, Stored]) -> Fetch | None:
        """The lease is held; `votes` are what its voters said. Fetch the newest version
        first if a voter has one newer than ours (else None: ask for the epoch)."""
        self.votes = dict(votes)
        return self.newest_beyond(own.version, {p: v.version for p, v in self.votes.items()})

    def fetched(self, own: Stored, wanted: Version) -> None:
        if newer(wanted, own.version):
            raise ReplicationFailed("could not fetch the newest configuration; try again")

    def ask(self, own: Stored, members: Collection[str]) -> AskPromise:
        """The epoch: above every promise and every version's epoch heard; `members` are
        the nodes of the configuration now in force here, a majority of which must
        promise it."""
        self.members = frozenset(members)
        heard = [own, *self.votes.values()]
        self.epoch = max(max(s.promise, s.version[1]) for s in heard) + 1
        return AskPromise(self.epoch)

    def promised(self, own: Stored, answers: Mapping[str, Promised],
                 holds_lease: bool) -> Fetch | None:
        """The peers' answers to the epoch (this node counts itself). The newest version
        a promiser holds is fetched first (a majority's promises see every committed
        version: the lease votes may come from witnesses), else None."""
        require_lease(holds_lease, "before it committed")
        taken = {p: a for p, a in answers.items() if a.promised and p in self.members}
        promised = 1 + len(taken)
        if promised < majority_of(self.members):
            raise ReplicationFailed(
                f"only {promised} of {len(self.members)} nodes took the configuration "
                "epoch; a majority is needed")
        held = {p: a.version for p, a in taken.items() if a.version is not None}
        step = self.newest_beyond(own.version, held)
        if step is not None and step.version[1] >= self.epoch:
            raise ReplicationFailed(
                f"{step.peer} holds a version of a later configuration change (epoch "
                f"{step.version[1]}); try again")
        return step

    def ready(self, own: Stored, fetched: Version | None, members: Collection[str],
              holds_lease: bool) -> int:
        """After the promises (and the fetch `promised` asked for): the epoch to commit
        under, on the version now stored, if the nodes whose majority promised are still
        the nodes of the configuration (a version fetched meanwhile may have changed them:
        the promises would then count for the wrong set) and this node holds the lease."""
        if fetched is not None:
            self.fetched(own, fetched)
        if own.version[1] >= self.epoch:
            raise ReplicationFailed(
                f"a version of a later configuration change (epoch {own.version[1]}) came "
                "from another node meanwhile; try again")
        if frozenset(members) != self.members:
            raise ReplicationFailed(
                "the nodes of the configuration changed while this change was being made "
                f"(now {', '.join(sorted(members))}); try again")
        require_lease(holds_lease, "before it committed")
        return self.epoch

    @staticmethod
    def newest_beyond(own: Version, held: Mapping[str, Version]) -> Fetch | None:
        """The peer with the newest version, if it is newer than `own` (ties: the first
        by name, so that every run decides alike)."""
        newest = max(sorted(held.items()), key=lambda item: order(item[1]), default=None)
        if newest is None or not newer(newest[1], own):
            return None
        return Fetch(*newest)

    @staticmethod
    def commit_version(own: Stored, base: Version, epoch: int) -> Version:
        """The version the change is committed under here: the next generation after
        `base`, the version it was made on, which must still be the one stored (a version
        fetched meanwhile would be dropped), and only while this node has promised no
        later epoch (it would write below its own promise)."""
        if own.version != base or base[1] >= epoch:
            raise ReplicationFailed(
                f"the configuration changed while this change was made (generation "
                f"{own.version[0]} epoch {own.version[1]} came from another node; the change "
                f"was made on generation {base[0]} epoch {base[1]}); try again")
        if own.promise > epoch:
            raise ReplicationFailed(
                f"this node promised epoch {own.promise} to another configuration change "
                "while it made this one; try again")
        return base[0] + 1, epoch

    @staticmethod
    def confirmed(version: Version, answers: Mapping[str, Stored], members: Collection[str],
                  holds_lease: bool) -> int:
        """The peers' answers to the push (this node counts itself): how many took
        exactly this version, having promised no later epoch (a node that holds it but
        promised a later holder before it came may not count: that holder did not see it
        there; a newer version is a rival's, not ours); a majority of `members`, the
        nodes of the configuration the change was built on (for a change of the voters:
        the old set), must. Reported only while this node holds the lease."""
        require_lease(holds_lease, "before it was confirmed")
        taken = 1 + sum(answer.version == version and answer.promise <= version[1]
                        for peer, answer in answers.items() if peer in members)
        if taken < majority_of(members):
            raise ReplicationFailed(
                f"generation {version[0]} is written on {taken} of {len(members)} nodes, "
                "not a majority: it may or may not stay; check 'tutela status' on the nodes")
        return taken


def require_lease(holds_lease: bool, when: str) -> None:
    """A holder whose lease lapsed may overlap a rival: it gives its change up."""
    if not holds_lease:
        raise ReplicationFailed(
            f"the configuration lease lapsed {when} (this node lost its majority "
            "meanwhile); check 'tutela status' and try again")


def voter_change(before: Collection[str], after: Collection[str]) -> str | None:
    """What a change does to the voters (nodes and witnesses): None when nothing, else
    what (one voter added or removed). More than one voter at a time is refused: two
    majorities of sets that differ by two voters may share no voter, so two holders
    could both change the configuration (docs/leases.md, "Changing the voters")."""
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    if len(added) + len(removed) > 1:
        what = ", ".join([*(f"adds {v}" for v in added), *(f"removes {v}" for v in removed)])
        raise ReplicationFailed(
            f"this change {what}: the voters (nodes and witnesses) change one at a time, so "
            "that the majorities before and after always share a voter; make it one "
            "change per voter (one 'tutela node remove', 'witness add', join or 'apply' "
            "each), each after the one before is committed")
    if added:
        return f"{added[0]} added"
    return f"{removed[0]} removed" if removed else None


def require_settled(base: Version, holding: Mapping[str, Version],
                    members: Collection[str]) -> None:
    """A change of the voters only on a settled configuration: a majority of its nodes
    (`members`, this node among them) hold exactly `base`, so the change of the voters
    before it is committed and no second one is pending."""
    have = sum(holding.get(node) == base for node in members)
    if have < majority_of(members):
        raise ReplicationFailed(
            f"the configuration this change builds on (generation {base[0]}) is on "
            f"{have} of {len(members)} nodes, not yet a majority: an earlier change may "
            "still be pending, and the voters change only one at a time. Wait until "
            f"'tutela status' shows a majority of the nodes on generation {base[0]} "
            "(bring nodes back, or let them catch up), then try again")
