"""Deliberately broken parts of configuration replication: the `config` family must catch
each of them. Each breaks one rule of the core (tutela.lcd.replication), on top of the
rules that pass; `before-fix` breaks the rules the simulation's findings led to at once:
the rules before the fix (docs/cluster.md, "Replication as a pure core")."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

from config_sim import CORRECT, ConfigVariant

from tutela.lcd.replication import (
    Acceptor,
    Fetch,
    PromiseDecision,
    Proposer,
    PushDecision,
    Stored,
    Version,
    newer,
)


class PromisesOlderEpoch(Acceptor):
    """Promises any epoch, also one below the epoch it promised before (and keeps it)."""

    def on_promise(self, epoch: int) -> PromiseDecision:
        return PromiseDecision(True, epoch)


class PromisesEqualEpoch(Acceptor):
    """Promises an epoch equal to its promise again: two holders can share an epoch."""

    def on_promise(self, epoch: int) -> PromiseDecision:
        if epoch < self.stored.promise:
            return PromiseDecision(False, None)
        return PromiseDecision(True, epoch)


class TakesPushBelowPromise(Acceptor):
    """Takes a push whatever it promised: a holder whose lease lapsed still writes."""

    def on_push(self, version: Version) -> PushDecision:
        return self.on_fetched(version)


class TakesAnyOtherVersion(Acceptor):
    """Takes any version other than its own, an older one too."""

    def on_fetched(self, version: Version) -> PushDecision:
        return PushDecision(version != self.stored.version)


def generation_first(version: Version, than: Version) -> bool:
    return version > than


class GenerationFirstAcceptor(Acceptor):
    """Versions ordered by (generation, epoch), as before finding 2 was fixed."""

    def on_fetched(self, version: Version) -> PushDecision:
        return PushDecision(generation_first(version, self.stored.version))


class GenerationFirstProposer(Proposer):
    @staticmethod
    def newest_beyond(own: Version, held: Mapping[str, Version]) -> Fetch | None:
        newest = max(sorted(held.items()), key=lambda item: item[1], default=None)
        if newest is None or not generation_first(newest[1], own):
            return None
        return Fetch(*newest)


class CountsNewerVersions(Proposer):
    """Counts a peer that has a newer version (a rival's) as having this change."""

    @staticmethod
    def confirmed(version: Version, answers: Mapping[str, Stored], members: Collection[str],
                  holds_lease: bool) -> int:
        counted = {peer: Stored(version, 0) if newer(answer.version, version) else answer
                   for peer, answer in answers.items()}
        return Proposer.confirmed(version, counted, members, holds_lease)


class IgnoresChangedMembers(Proposer):
    """Commits after a fetch that changed the nodes, on the old nodes' promises."""

    def ready(self, own: Stored, fetched: Version | None, members: Collection[str],
              holds_lease: bool) -> int:
        return super().ready(own, fetched, self.members, holds_lease)


class IgnoresBaseChange(Proposer):
    """Commits on whatever the node holds by then, also a version a catch-up stored while
    the change was being made (the race of the daemon's _commit before the fix)."""

    @staticmethod
    def commit_version(own: Stored, base: Version, epoch: int) -> Version:
        return own.version[0] + 1, epoch


class BeforeFix(PromisesEqualEpoch, TakesPushBelowPromise, GenerationFirstAcceptor):
    """The acceptor before the fix: promises an equal epoch, takes any newer push, orders
    versions generation first."""


class BeforeFixProposer(GenerationFirstProposer):
    """The proposer before the fix: generation first, every node that holds our version
    or a newer one counted, whatever it promised."""

    @staticmethod
    def confirmed(version: Version, answers: Mapping[str, Stored], members: Collection[str],
                  holds_lease: bool) -> int:
        counted = {peer: Stored(version, 0) if answer.version >= version else answer
                   for peer, answer in answers.items()}
        return Proposer.confirmed(version, counted, members, holds_lease)


def any_voters(before: Collection[str], after: Collection[str]) -> str | None:
    """Lets any number of voters change at once."""
    return None if set(before) == set(after) else "voters changed"


def never_pending(base: Version, holding: Mapping[str, Version],
                  members: Collection[str]) -> None:
    """A change of the voters on any configuration, settled or not."""


CONFIG_MUTANTS: dict[str, ConfigVariant] = {v.name: v for v in (
    dataclasses.replace(CORRECT, name="before-fix", make_acceptor=BeforeFix,
                        make_proposer=BeforeFixProposer, checks_lease=False,
                        newer=generation_first, promise_carries_version=False,
                        voter_change=any_voters, require_settled=never_pending),
    dataclasses.replace(CORRECT, name="counts-newer-versions",
                        make_proposer=CountsNewerVersions),
    dataclasses.replace(CORRECT, name="promises-equal-epoch", make_acceptor=PromisesEqualEpoch),
    dataclasses.replace(CORRECT, name="takes-push-below-promise",
                        make_acceptor=TakesPushBelowPromise),
    dataclasses.replace(CORRECT, name="promises-older-epoch", make_acceptor=PromisesOlderEpoch),
    dataclasses.replace(CORRECT, name="forgets-promise", keeps_promise=False),
    dataclasses.replace(CORRECT, name="takes-any-other-version",
                        make_acceptor=TakesAnyOtherVersion),
    dataclasses.replace(CORRECT, name="generation-first", make_acceptor=GenerationFirstAcceptor,
                        make_proposer=GenerationFirstProposer, newer=generation_first),
    dataclasses.replace(CORRECT, name="promise-without-version", promise_carries_version=False),
    dataclasses.replace(CORRECT, name="ignores-changed-nodes", make_proposer=IgnoresChangedMembers),
    dataclasses.replace(CORRECT, name="voters-at-once", voter_change=any_voters),
    dataclasses.replace(CORRECT, name="unsettled-voter-change", require_settled=never_pending),
    dataclasses.replace(CORRECT, name="ignores-base-change", make_proposer=IgnoresBaseChange),
)}

SAFE_VARIANTS: dict[str, ConfigVariant] = {v.name: v for v in (
    dataclasses.replace(CORRECT, name="ignores-lease", checks_lease=False),
)}
"""Guards the core keeps though safety does not rest on them: `ignores-lease` commits and
reports after its configuration lease lapsed (the promises exclude an overlapping holder
all the same; the lease check keeps the command's answer honest and the changes in order)."""
