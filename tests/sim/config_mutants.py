"""Deliberately broken acceptors of configuration replication: the `config` family must
catch each of them. They break the acceptor of the `lease-checked` variant, the one that
passes (config_sim.py), so what is caught is the broken rule and not the finding."""

from __future__ import annotations

import dataclasses

from config_sim import LEASE_CHECKED, ConfigVariant

from tutela.lcd.replication import Acceptor, PromiseDecision, PushDecision, Version


class PromisesOlderEpoch(Acceptor):
    """Promises any epoch, also one below the epoch it promised before (and keeps it)."""

    def on_promise(self, epoch: int) -> PromiseDecision:
        return PromiseDecision(True, epoch)


class TakesOlderEpoch(Acceptor):
    """Takes a version of its own generation with a lower epoch: a late write of an
    earlier holder replaces the later holder's."""

    def on_push(self, version: Version) -> PushDecision:
        generation, epoch = self.stored.version
        return PushDecision(version[0] > generation
                            or (version[0] == generation and version[1] != epoch))


class TakesOlderGeneration(Acceptor):
    """Takes any version other than its own, an older generation too."""

    def on_push(self, version: Version) -> PushDecision:
        return PushDecision(version != self.stored.version)


CONFIG_MUTANTS: dict[str, ConfigVariant] = {v.name: v for v in (
    dataclasses.replace(LEASE_CHECKED, name="promises-older-epoch",
                        make_acceptor=PromisesOlderEpoch),
    dataclasses.replace(LEASE_CHECKED, name="forgets-promise", keeps_promise=False),
    dataclasses.replace(LEASE_CHECKED, name="takes-older-epoch", make_acceptor=TakesOlderEpoch),
    dataclasses.replace(LEASE_CHECKED, name="takes-older-generation",
                        make_acceptor=TakesOlderGeneration),
)}
