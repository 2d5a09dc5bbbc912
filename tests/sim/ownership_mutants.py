"""Deliberately broken ownership cores: the ownership simulation must catch each one
(test_sim_ownership.py). Each breaks one rule of engine/ownership_core.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ownership_sim import Variant

from tutela.engine.ownership import View
from tutela.engine.ownership_core import Acquire, Effect, OwnershipCore, Restore, Situation
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import Hierarchy


class RestoresWithoutLease(OwnershipCore):
    """Restores when its turn comes, without asking the voters first."""

    def _acquire(self, root: str, at: Situation, automatic: bool,
                 readopt: bool = False, defer_to: frozenset[str] = frozenset()
                 ) -> list[Effect]:
        self._begin(root)  # a restore under way, as an acquire would be
        return [Restore(root, automatic) if automatic else Acquire(root, automatic)]


class NoRankWait(OwnershipCore):
    """Every candidate asks at once (no rank step, no last-owner grace)."""

    def _rank_step(self, config: ClusterConfig) -> float:
        return 0.0


class IgnoresFailedOn(OwnershipCore):
    """Counts nodes where the hierarchy failed as candidates (and itself, after a failure)."""

    def view(self, hierarchy: Hierarchy, at: Situation,
             up: Mapping[str, frozenset[str]] | None = None) -> View:
        return replace(super().view(hierarchy, at, up), failed_on=frozenset(),
                       failed_here=False)


class NoSelfFence(OwnershipCore):
    """Keeps running what it can no longer renew the lease of."""

    def lease_ending(self, root: str, remaining: float | None, action: str) -> list[Effect]:
        return []


class IgnoresDependencies(OwnershipCore):
    """Decides as if no hierarchy needed another."""

    def view(self, hierarchy: Hierarchy, at: Situation,
             up: Mapping[str, frozenset[str]] | None = None) -> View:
        return replace(super().view(hierarchy, at, up), allowed=None, unmet=())

    def _unmet_here(self, root: str, at: Situation) -> tuple[str, ...]:
        return ()


class KeepsWhatItReadopted(OwnershipCore):
    """After tutelad restarted, keeps what it finds in service while it asks for the lease
    (tutela before 2026-12-07): a peer that did not hear the new process takes it over
    once the dead process's grants end."""

    def _out_by(self, since: float, config: ClusterConfig) -> float:
        if since <= self.settled_at:
            return float("inf")
        return super()._out_by(since, config)


class FreedByAnyEnd(OwnershipCore):
    """A hierarchy is free again as soon as any action on it ends, whatever else is still
    under way there (tutela before 2026-12-07, `busy` a set: a self-fence that overtook a
    takeover's acquire freed it as it ended, and CI's stuck-state lab test saw a second
    takeover start while that acquire still waited)."""

    def done(self, root: str, gave_up: bool = False) -> None:
        super().done(root, gave_up)
        self.busy.pop(root, None)

    def self_fence_ended(self, root: str, out: bool, action: str, now: float
                         ) -> list[Effect]:
        effects = super().self_fence_ended(root, out, action, now)
        self.busy.pop(root, None)
        return effects


OWNERSHIP_MUTANTS = {
    "restore-without-lease": Variant("restore-without-lease", RestoresWithoutLease,
                                     checks_lease=False),
    "no-rank-wait": Variant("no-rank-wait", NoRankWait),
    "ignores-failed-on": Variant("ignores-failed-on", IgnoresFailedOn),
    "no-self-fence": Variant("no-self-fence", NoSelfFence),
    "ignores-dependencies": Variant("ignores-dependencies", IgnoresDependencies),
    "keeps-what-it-readopted": Variant("keeps-what-it-readopted", KeepsWhatItReadopted),
    "freed-by-any-end": Variant("freed-by-any-end", FreedByAnyEnd),
}
