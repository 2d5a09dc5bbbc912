"""Deliberately broken parts of configuration replication: the `config` family must catch
each of them. Each breaks one rule of the core (tutela.lcd.replication), on top of the
rules that pass; `before-fix` breaks the four rules the simulation's findings led to at
once: the rules before the fix (docs/cluster.md, "Replication as a pure core")."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from config_sim import CORRECT, ConfigVariant

from tutela.lcd.replication import Acceptor, PromiseDecision, Proposer, PushDecision, Version


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


class TakesOlderEpoch(Acceptor):
    """Takes a version of its own generation with a lower epoch: a late write of an
    earlier holder replaces the later holder's."""

    def on_fetched(self, version: Version) -> PushDecision:
        generation, epoch = self.stored.version
        return PushDecision(version[0] > generation
                            or (version[0] == generation and version[1] != epoch))


class TakesOlderGeneration(Acceptor):
    """Takes any version other than its own, an older generation too."""

    def on_fetched(self, version: Version) -> PushDecision:
        return PushDecision(version != self.stored.version)


class CountsNewerVersions(Proposer):
    """Counts a peer that has a newer version (a rival's) as having this change."""

    def confirmed(self, version: Version, answers: Mapping[str, Version],
                  needed: int, holds_lease: bool) -> int:
        newer = {peer: version if answer > version else answer
                 for peer, answer in answers.items()}
        return super().confirmed(version, newer, needed, holds_lease)


class BeforeFix(PromisesEqualEpoch, TakesPushBelowPromise):
    """The acceptor before the fix: promises an equal epoch, takes any newer push."""


CONFIG_MUTANTS: dict[str, ConfigVariant] = {v.name: v for v in (
    dataclasses.replace(CORRECT, name="before-fix", make_acceptor=BeforeFix,
                        make_proposer=CountsNewerVersions, checks_lease=False),
    dataclasses.replace(CORRECT, name="ignores-lease", checks_lease=False),
    dataclasses.replace(CORRECT, name="counts-newer-versions",
                        make_proposer=CountsNewerVersions),
    dataclasses.replace(CORRECT, name="promises-equal-epoch", make_acceptor=PromisesEqualEpoch),
    dataclasses.replace(CORRECT, name="takes-push-below-promise",
                        make_acceptor=TakesPushBelowPromise),
    dataclasses.replace(CORRECT, name="promises-older-epoch", make_acceptor=PromisesOlderEpoch),
    dataclasses.replace(CORRECT, name="forgets-promise", keeps_promise=False),
    dataclasses.replace(CORRECT, name="takes-older-epoch", make_acceptor=TakesOlderEpoch),
    dataclasses.replace(CORRECT, name="takes-older-generation",
                        make_acceptor=TakesOlderGeneration),
)}
