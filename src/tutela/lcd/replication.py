"""Configuration replication as a pure core: the acceptor's rules and one change's proposer.

Sans-IO, like the lease cores in tutela.arbiter: nothing here reads a clock, touches the
LCD or sends a message. The acceptor is handed what a node has stored (its version and the
epoch it promised) and decides what to answer and what to store; the proposer is handed
the answers a change gets and decides its next step. The daemon (tutela.daemon.cluster,
tutela.daemon.service) carries the steps out and the LCD (tutela.lcd.store) stores what
the acceptor decides. docs/cluster.md, "One configuration on every node", is the protocol.

The rules are today's, unchanged: the simulation family `config` (tests/sim/config_sim.py)
checks them, and tests/unit/test_replication.py shows that the store decides the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tutela.lcd.transfer import Version

__all__ = ["Acceptor", "AskPromise", "Fetch", "PromiseDecision", "Proposer", "PushDecision",
           "ReplicationFailed", "Stored", "Version"]


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
    `Lcd.adopt`): it promises an epoch unless it promised a higher one, and it keeps a
    version that is newer than its own, whatever it promised."""

    def __init__(self, stored: Stored) -> None:
        self.stored = stored

    def on_promise(self, epoch: int) -> PromiseDecision:
        if epoch < self.stored.promise:
            return PromiseDecision(False, None)
        return PromiseDecision(True, epoch)

    def on_push(self, version: Version) -> PushDecision:
        """A version written elsewhere: the same generation with a higher epoch replaces
        ours (ours came from a holder that did not reach a majority)."""
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

    def promised(self, answers: Mapping[str, bool]) -> int:
        """The peers' answers to the epoch (this node counts itself); the epoch to commit
        the change under."""
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
                  needed: int) -> int:
        """The peers' versions after the push (this node counts itself): how many have it;
        `needed` is a majority of the nodes before the change."""
        taken = 1 + sum(answer >= version for answer in answers.values())
        if taken < needed:
            raise ReplicationFailed(
                f"generation {version[0]} is written on {taken} of {self.nodes} nodes, not "
                "a majority: it may or may not stay; check 'tutela status' on the nodes")
        return taken
