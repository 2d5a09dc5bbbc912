"""Deliberately broken lease cores: the simulation must catch each of them.

Each mutant breaks one rule docs/leases.md relies on; test_sim_mutants.py runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulate import Variant

from tutela.arbiter.disk_voter import DiskEffect, DiskVoter, ReadArea, SlotRecord, _Io
from tutela.arbiter.holder import Effect, LeaseHolder, _Round
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming, min_margin
from tutela.arbiter.voter import Voter


class ReplyTimeHolder(LeaseHolder):
    """Counts the lease from the reply that completed the majority, not from the send."""

    def _round_end(self, sent_at: float, now: float) -> float:
        return self.timing.holder_lease_end(now)


@dataclass(frozen=True)
class NoDriftNoMarginTiming(LeaseTiming):
    """The holder keeps the full L of its own clock: no drift term, no margin."""

    def holder_lease_end(self, sent_at: float) -> float:
        return sent_at + self.duration


@dataclass(frozen=True)
class NoMarginTiming(LeaseTiming):
    """Keeps the drift term but drops the margin: L(1-rho) alone is NOT enough."""

    def holder_lease_end(self, sent_at: float) -> float:
        return sent_at + self.duration * (1 - self.drift)


@dataclass(frozen=True)
class HalfMinimumMarginTiming(LeaseTiming):
    """Half the smallest margin the proof allows (drift 5 %, to make the gap visible)."""

    drift: float = 0.05

    @property
    def holder_length(self) -> float:
        return self.duration * (1 - self.drift) - min_margin(self.duration, self.drift) / 2


class ForgetfulVoter(Voter):
    """Grants at once after a restart: no quiet period."""

    def __init__(self, voter_id: str, timing: LeaseTiming, started_at: float,
                 longest_before: float = 0.0) -> None:
        super().__init__(voter_id, timing, started_at, longest_before)
        self.quiet_until = started_at


class IgnoresDurationVoter(Voter):
    """Grants a candidate that counts on a longer lease than this voter's own: the grant
    ends before the candidate's lease does."""

    def longer_than_mine(self, req: AcquireRequest) -> bool:
        return False


class ForgetsPreviousLeaseVoter(Voter):
    """After a restart, quiet for its own lease only, not for the longer one its previous
    run may have granted."""

    def __init__(self, voter_id: str, timing: LeaseTiming, started_at: float,
                 longest_before: float = 0.0) -> None:
        del longest_before  # the mutation: the previous run's lease is not counted
        super().__init__(voter_id, timing, started_at)


class CarelessReleaseVoter(Voter):
    """Clears a grant on any release from the same node, however old the release is."""

    def on_release(self, msg: Release, now: float) -> None:
        for name in msg.names:
            grant = self._grants.get(name)
            if grant is not None and grant.holder == msg.holder:
                del self._grants[name]


class LatestRoundHolder(LeaseHolder):
    """Counts every reply toward its newest round, whatever round the reply answers."""

    def on_reply(self, reply: AcquireReply, now: float) -> list[Effect]:
        if self._rounds:
            reply = AcquireReply(max(self._rounds), reply.incarnation, reply.voter,
                                 reply.candidate, reply.granted, reply.refused)
        return super().on_reply(reply, now)


class NeverWidensHolder(LeaseHolder):
    """A renewal round never asks the voters it left out, however many it asked are gone."""

    def _widen(self, number: int, rnd: _Round) -> list[Effect]:
        rnd.widen_at = None
        return []


class KeepsLeaseOnReleaseHolder(LeaseHolder):
    """Releases at the voters but keeps believing it holds the lease."""

    def _withdraw(self, names: tuple[str, ...]) -> list[Effect]:
        kept = dict(self._leases)
        effects = super()._withdraw(names)
        self._leases.update(kept)
        return effects


class UnwatchfulDiskVoter(DiskVoter):
    """Ignores another node's claim once two reads saw it unchanged, however close together:
    no observation period."""

    def window(self, record: SlotRecord | None) -> float:
        return 0.0


class ContestingDiskVoter(DiskVoter):
    """Claims every name it is asked for, a live claim of its peer or not (no pre-check)."""

    def _may_claim(self, name: str, req: AcquireRequest, now: float) -> bool:
        return True


class OwnLeaseDiskVoter(DiskVoter):
    """Watches another claim for its own lease only, not for the longer one its slot states."""

    def window(self, record: SlotRecord | None) -> float:
        return self.timing.duration * (1 + self.timing.drift)


class StaleReadDiskVoter(DiskVoter):
    """Decides on what it read before its claim was written (the read after the write only
    updates what it has seen, for the next batch)."""

    def on_written(self, ok: bool, now: float) -> list[DiskEffect]:
        io = self._io
        if io is None or not ok or not io.batch or not self.state.has_read:
            return super().on_written(ok, now)
        self._io = None
        self.state.written_claims = io.claimed
        answers = self._decide(_Io("read", io.submitted_at, io.batch, io.claimed))
        self._io = _Io("read", now, [], io.claimed)
        return [*answers, ReadArea(0, self.area.length)]


class WithdrawsGrantedClaimDiskVoter(DiskVoter):
    """Takes a claim off the disk as soon as it answered, though a lease relies on it."""

    def _decide(self, io: _Io) -> list[DiskEffect]:
        answers = super()._decide(io)
        for req in io.batch:
            for name in req.names:
                self.state.claims.pop(name, None)
        return answers


def _witness_without_memory(voter_id: str, timing: LeaseTiming, started_at: float,
                            longest_before: float = 0.0) -> Voter:
    """The witness as it serves a cluster today (witness/served.py): enrolled again with a
    shorter lease, its new voter is quiet for that lease only; nodes keep the longest."""
    if voter_id == "w":
        return Voter(voter_id, timing, started_at)
    return Voter(voter_id, timing, started_at, longest_before)


def _no_incarnation(node: str, voters: tuple[str, ...], timing: LeaseTiming,
                    **_: Any) -> LeaseHolder:
    """Every start of the holder process looks the same to voters and to itself."""
    return LeaseHolder(node, voters, timing, incarnation=0)


MUTANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("reply-time", make_holder=ReplyTimeHolder),
    Variant("no-drift-no-margin", timing=NoDriftNoMarginTiming()),
    Variant("no-margin", timing=NoMarginTiming()),
    Variant("half-minimum-margin", timing=HalfMinimumMarginTiming()),
    Variant("no-quiet-period", make_voter=ForgetfulVoter),
    Variant("careless-release", make_voter=CarelessReleaseVoter),
    Variant("latest-round", make_holder=LatestRoundHolder),
    Variant("keeps-lease-on-release", make_holder=KeepsLeaseOnReleaseHolder),
    Variant("never-widens", make_holder=NeverWidensHolder),
    Variant("no-incarnation", make_holder=_no_incarnation),
    Variant("best-path", every_path=False),
    Variant("ignores-duration", make_voter=IgnoresDurationVoter),
    Variant("forgets-previous-lease", make_voter=ForgetsPreviousLeaseVoter),
    # Not made up: the previous lease as tutelad and the witness keep it today. Findings
    # (docs/leases.md, "Families"): a restart soon after another breaks the lease.
    Variant("previous-run-only", keeps_longest_lease=False),
    Variant("witness-without-memory", make_voter=_witness_without_memory),
    Variant("disk-no-observation", make_disk_voter=UnwatchfulDiskVoter),
    Variant("disk-stale-read", make_disk_voter=StaleReadDiskVoter),
    Variant("disk-withdraws-granted-claim", make_disk_voter=WithdrawsGrantedClaimDiskVoter),
    Variant("disk-contests-live-claim", make_disk_voter=ContestingDiskVoter),
    Variant("disk-own-lease-window", make_disk_voter=OwnLeaseDiskVoter),
)}

CAUGHT_IN = {"best-path": "paths", "never-widens": "paths", **dict.fromkeys(
    ("ignores-duration", "forgets-previous-lease", "previous-run-only",
     "witness-without-memory"), "lease-change"),
    **dict.fromkeys(("disk-no-observation", "disk-stale-read",
                     "disk-withdraws-granted-claim", "disk-own-lease-window"), "disk"),
    "disk-contests-live-claim": "disk-fault"}
"""The family that catches a mutant (chaos, as a safety violation, unless named here: a
mutant that breaks liveness only is caught as a liveness failure)."""
