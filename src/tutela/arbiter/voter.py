"""A voter: grants each lease name to at most one holder process at a time, in its own clock.

Sans-IO: the caller passes its monotonic `now` with every message and sends the reply back.
"""

from __future__ import annotations

from dataclasses import dataclass

from tutela.arbiter.messages import AcquireReply, AcquireRequest, Refusal, Release
from tutela.arbiter.timing import LeaseTiming


@dataclass(frozen=True)
class Grant:
    holder: str
    incarnation: int
    """With `holder`, names the holder process: a restarted holder is a different one."""
    round: int
    """The newest round of that process that granted or extended this grant."""
    expiry: float
    """In the voter's clock: receipt time of the newest extending request + L."""

    def owned_by(self, holder: str, incarnation: int) -> bool:
        return self.holder == holder and self.incarnation == incarnation


class Voter:
    """One vote: a cluster node's own voter or a witness.

    A voter that (re)starts has forgotten its grants, so it refuses everything for the
    quiet period L(1+drift): by then every lease that a forgotten grant backed has ended.
    """

    def __init__(self, voter_id: str, timing: LeaseTiming, started_at: float,
                 longest_before: float = 0.0) -> None:
        """`longest_before`: the longest L this voter may have granted in its previous run
        (a lease_duration changed across the restart); the quiet period covers it too."""
        self.voter_id = voter_id
        self.timing = timing
        self.quiet_until = started_at + max(timing.duration, longest_before) * (1 + timing.drift)
        self._grants: dict[str, Grant] = {}

    def on_acquire(self, req: AcquireRequest, now: float) -> AcquireReply:
        """Grant or extend what is free or already the candidate's; refuse the rest."""
        if req.voter != self.voter_id:
            raise ValueError(f"voter {self.voter_id} got a request for voter {req.voter}")
        granted: list[str] = []
        refused: list[Refusal] = []
        for name in dict.fromkeys(req.names):  # duplicates once, order kept
            refusal = self._refusal(name, req, now)
            if refusal is None:
                self._grant(name, req, now)
                granted.append(name)
            else:
                refused.append(refusal)
        return AcquireReply(round=req.round, incarnation=req.incarnation, voter=self.voter_id,
                            candidate=req.candidate, granted=tuple(granted),
                            refused=tuple(refused))

    def on_release(self, msg: Release, now: float) -> None:
        """Clear the grants `msg` gives up, only those its holder process last extended
        with a round older than the release (a late old release must not clear a newer
        grant)."""
        del now  # releasing needs no clock; the parameter keeps every handler alike
        for name in msg.names:
            grant = self._grants.get(name)
            if (grant is not None and grant.owned_by(msg.holder, msg.incarnation)
                    and grant.round < msg.round):
                del self._grants[name]

    def grants(self, now: float) -> dict[str, tuple[str, float]]:
        """Unexpired grants for status: name -> (holder, remaining seconds)."""
        self._forget_expired(now)
        return {name: (g.holder, g.expiry - now) for name, g in sorted(self._grants.items())}

    def quiet(self, now: float) -> bool:
        """True while the voter refuses everything after its start."""
        return now < self.quiet_until

    def longer_than_mine(self, req: AcquireRequest) -> bool:
        """The candidate counts on a longer lease than this voter grants: a node that runs
        with another lease_duration (until every tutelad restarted after a change)."""
        return req.duration > self.timing.duration + 1e-9

    def _refusal(self, name: str, req: AcquireRequest, now: float) -> Refusal | None:
        if self.longer_than_mine(req):
            return (name, None, self.timing.duration)
        if self.quiet(now):
            return (name, None, self.quiet_until - now)
        grant = self._grants.get(name)
        if grant is None or now >= grant.expiry or grant.owned_by(req.candidate,
                                                                    req.incarnation):
            return None
        return (name, grant.holder, grant.expiry - now)

    def _grant(self, name: str, req: AcquireRequest, now: float) -> None:
        expiry, newest = now + self.timing.duration, req.round
        old = self._grants.get(name)
        if old is not None and old.owned_by(req.candidate, req.incarnation):
            # A late duplicate of an old round must neither shorten the grant nor lower
            # its round: an old release could otherwise clear what a newer round relies on.
            expiry, newest = max(expiry, old.expiry), max(newest, old.round)
        self._grants[name] = Grant(req.candidate, req.incarnation, newest, expiry)

    def _forget_expired(self, now: float) -> None:
        for name in [n for n, g in self._grants.items() if now >= g.expiry]:
            del self._grants[name]
