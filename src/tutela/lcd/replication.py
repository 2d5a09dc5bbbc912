"""Configuration replication as a pure core: the acceptor's rules and one change's proposer.

Sans-IO, like the lease cores in tutela.arbiter: nothing here reads a clock, touches the
LCD or sends a message. The acceptor is handed what a node has stored (its version and the
epoch it promised) and decides what to answer and what to store; the proposer is handed
the answers a change gets and decides its next step. The daemon (tutela.daemon.cluster,
tutela.daemon.service) carries the steps out and the LCD (tutela.lcd.store) stores what
the acceptor decides. docs/cluster.md, "One configuration on every node", is the protocol.

The simulation family `config` (tests/sim/config_sim.py) checks these rules, and
tests/unit/test_replication.py states them case by case. Versions still order by
(generation, epoch), which the simulation shows can lose a commit (docs/cluster.md,
"Replication as a pure core", finding 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tutela.lcd.transfer import Version

__all__ = ["Acceptor", "AskPromise", "Fetch", "PromiseDecision", "Proposer", "PushDecision",
           "ReplicationFailed", "Stored", "Version", "require_lease"]


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
        """A version fetched from a peer (catch-up, `config.get`): taken when newer. The
        same generation with a higher epoch replaces ours (ours came from a holder that
        did not reach a majority). The promise is not consulted: a committed version may
        carry an epoch below a promise given to a holder that then failed."""
        return PushDecision(version > self.stored.version)

    def vote(self) -> Stored:
        """What a grant of the configuration lease carries back to the candidate."""
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
    """Promise `epoch` here and ask every reachable node to promise it."""

    epoch: int


class Proposer:
    """One configuration change on the node that holds the configuration lease: newest
    version a voter has -> an epoch above every promise heard, promised by a majority ->
    commit here as the next generation -> push -> count the nodes that have it."""

    def __init__(self, nodes: int, majority: int) -> None:
        self.nodes = nodes
        self.majority = majority
        self.votes: dict[str, Stored] = {}
        self.epoch = 0

    def granted(self, own: Stored, votes: Mapping[str, Stored]) -> Fetch | AskPromise:
        """The lease is held; `votes` are what its voters said. Fetch the newest version
        first if a voter has one newer than ours, else ask for the epoch."""
        self.votes = dict(votes)
        newest = max(self.votes.items(), key=lambda item: item[1].version, default=None)
        if newest is not None and newest[1].version > own.version:
            return Fetch(newest[0], newest[1].version)
        return self._ask(own)

    def fetched(self, own: Stored, wanted: Version) -> AskPromise:
        if own.version < wanted:
            raise ReplicationFailed("could not fetch the newest configuration; try again")
        return self._ask(own)

    def _ask(self, own: Stored) -> AskPromise:
        self.epoch = max([own.promise, *(v.promise for v in self.votes.values())]) + 1
        return AskPromise(self.epoch)

    def promised(self, answers: Mapping[str, bool], holds_lease: bool) -> int:
        """The peers' answers to the epoch (this node counts itself); the epoch to commit
        the change under, if this node still holds the lease."""
        require_lease(holds_lease, "before it committed")
        promised = 1 + sum(answers.values())
        if promised < self.majority:
            raise ReplicationFailed(
                f"only {promised} of {self.nodes} nodes took the configuration epoch; "
                "a majority is needed")
        return self.epoch

    @staticmethod
    def next_version(own: Stored, epoch: int) -> Version:
        """The version the change is committed under here: the next generation."""
        return own.version[0] + 1, epoch

    def confirmed(self, version: Version, answers: Mapping[str, Version],
                  needed: int, holds_lease: bool) -> int:
        """The peers' versions after the push (this node counts itself): how many have
        exactly this one (a newer version is a rival's, not ours); `needed` is a majority
        of the nodes before the change. Reported only while this node holds the lease."""
        require_lease(holds_lease, "before it was confirmed")
        taken = 1 + sum(answer == version for answer in answers.values())
        if taken < needed:
            raise ReplicationFailed(
                f"generation {version[0]} is written on {taken} of {self.nodes} nodes, not "
                "a majority: it may or may not stay; check 'tutela status' on the nodes")
        return taken


def require_lease(holds_lease: bool, when: str) -> None:
    """A holder whose lease lapsed may overlap a rival: it gives its change up."""
    if not holds_lease:
        raise ReplicationFailed(
            f"the configuration lease lapsed {when} (this node lost its majority "
            "meanwhile); check 'tutela status' and try again")
