"""The candidate/holder side of leases: acquire rounds, majorities, renewal and self-fencing.

Sans-IO: every call takes the node's monotonic `now` and returns effects for the caller to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tutela.arbiter.messages import AcquireReply, AcquireRequest, Refusal, Release
from tutela.arbiter.timing import LeaseTiming

RETRY_SLACK = 0.02
"""Seconds after a refusing grant's expiry (voter's clock, as it said) before asking again:
covers clock drift over a lease and the message delay."""

SPARE_VOTERS = 1
"""A renewal round asks a majority plus this many voters: one of them may be slow or gone
without costing the round (docs/leases.md, holder rule 1)."""

WIDEN_AFTER = 0.25
"""A renewal round that asked only some voters and has not won every name this fraction of
a renewal period after it went out asks the others too: losing a minority of the voters at
once (the witness and a node) then costs no round, as it did not when every voter was asked."""

Quorum = Literal["majority", "none"]


@dataclass(frozen=True)
class Send:
    """Deliver `message` to `voter` (the node's own voter too, without the network)."""

    voter: str
    message: AcquireRequest | Release


@dataclass(frozen=True)
class Acquired:
    """The node now owns `name` until `until` (its own clock), unless renewed."""

    name: str
    until: float


@dataclass(frozen=True)
class MustRelease:
    """Less than the lease's remove time is left: take its hierarchy out of service now."""

    name: str
    remaining: float


@dataclass(frozen=True)
class LeaseLost:
    """The lease ended without renewal: run the quorum-loss action for what is still up."""

    name: str


@dataclass(frozen=True)
class Refused:
    """A round for `name` cannot reach a majority; `holder` holds it at a refusing voter
    (None: that voter just started) for `remaining` more seconds of that voter's clock."""

    name: str
    holder: str | None
    remaining: float


@dataclass(frozen=True)
class Deferred:
    """`name` is no longer wanted here: a voter granted it to `holder`, a candidate that
    `acquire` was told to leave it to (ranked before this node). Its grants are cleared."""

    name: str
    holder: str


Effect = Send | Acquired | MustRelease | LeaseLost | Refused | Deferred


@dataclass
class _Lease:
    end: float
    must_release_sent: bool = False


@dataclass
class _Round:
    sent_at: float
    names: set[str]
    """Names this round may still win; a withdrawal takes names out of every older round."""
    granted: dict[str, set[str]] = field(default_factory=dict)
    refused: dict[str, dict[str, Refusal]] = field(default_factory=dict)
    unasked: tuple[str, ...] = ()
    """The voters this round leaves out, asked at `widen_at` if it has not been won by then."""
    widen_at: float | None = None


class LeaseHolder:
    """The lease side of one holder process on one node.

    `incarnation` must differ for every start of the process (a counter kept on disk, or
    63 random bits): replies and grants are matched to the process, not only to the node.
    The engine may run a hierarchy only while `holds(name, now)` is true.
    """

    def __init__(self, node: str, voters: tuple[str, ...], timing: LeaseTiming, *,
                 incarnation: int, quorum: Quorum = "majority") -> None:
        if not voters or len(set(voters)) != len(voters):
            raise ValueError(f"voters must be distinct and not empty, got {voters!r}")
        if quorum == "none" and node not in voters:
            raise ValueError("quorum 'none' needs the node's own voter among the voters")
        self.node = node
        self.voters = voters
        self.timing = timing
        self.incarnation = incarnation
        self.quorum: Quorum = quorum
        self.needed = 1 if quorum == "none" else len(voters) // 2 + 1
        self._wanted: dict[str, float] = {}  # name -> remove time
        self._defer_to: dict[str, frozenset[str]] = {}
        """Names being acquired -> the candidates they are left to (holder rule 8)."""
        self._leases: dict[str, _Lease] = {}
        self._rounds: dict[int, _Round] = {}
        self._last_round = 0
        self._next_round_at: float | None = None

    # -- the engine's calls -----------------------------------------------------------

    def acquire(self, names: Iterable[str], now: float,
                remove_time: float = 0.0) -> list[Effect]:
        """Want `names` (try now, then every renew period until won; renew once won).

        `remove_time` is how long taking the hierarchy out of service needs: MustRelease
        comes when no more than that is left of the lease.
        """
        return self.acquire_each({name: remove_time for name in _names(names)}, now)

    def acquire_each(self, remove_times: Mapping[str, float], now: float,
                     defer_to: Mapping[str, Iterable[str]] | None = None) -> list[Effect]:
        """`acquire` for several names, each with its own remove time, in one round.

        `defer_to`: name -> the candidates ranked before this node. While such a name is
        not held here, a voter's refusal saying that it granted the name to one of them
        ends this node's attempt (`Deferred`), rather than splitting the votes with it."""
        for remove_time in remove_times.values():
            if not 0 <= remove_time < self.timing.holder_length:
                raise ValueError(f"remove time {remove_time} s must be within "
                                 f"[0, {self.timing.holder_length:.3f}) for this lease timing")
        self._wanted.update(remove_times)
        for name in remove_times:  # each acquire says anew whom it leaves the name to
            ahead = frozenset((defer_to or {}).get(name, ())) - {self.node}
            if ahead:
                self._defer_to[name] = ahead
            else:
                self._defer_to.pop(name, None)
        return self._start_round(now)

    def release(self, names: Iterable[str], now: float) -> list[Effect]:
        """Stop wanting `names`, stop holding them at once, clear their grants at voters."""
        names = _names(names)
        for name in names:
            self._wanted.pop(name, None)
            self._defer_to.pop(name, None)
        if not self._wanted:
            self._next_round_at = None
        return self._withdraw(names) if names else []

    def holds(self, name: str, now: float) -> bool:
        """True while this process owns `name`: the only test the engine may act on."""
        lease = self._leases.get(name)
        return lease is not None and now < lease.end

    def lease_end(self, name: str) -> float | None:
        """The end of the lease on `name` (own clock); None when there is none."""
        lease = self._leases.get(name)
        return None if lease is None else lease.end

    def held(self, now: float) -> dict[str, float]:
        """For status: every name held now -> seconds left."""
        return {n: lease.end - now for n, lease in sorted(self._leases.items())
                if now < lease.end}

    def set_voters(self, voters: tuple[str, ...], now: float) -> list[Effect]:
        """Change the voter set (a node or witness joined or left the configuration).

        Leases held stay valid until their end (their grants were real); from now on only
        the new voters count, and a round starts at once so that what is held is renewed
        under the new set or lost — never kept on the old set's votes alone. Rounds already
        under way are dropped: their grants were counted against another majority.
        """
        if not voters or len(set(voters)) != len(voters):
            raise ValueError(f"voters must be distinct and not empty, got {voters!r}")
        if self.quorum == "none" and self.node not in voters:
            raise ValueError("quorum 'none' needs the node's own voter among the voters")
        self.voters = voters
        self.needed = 1 if self.quorum == "none" else len(voters) // 2 + 1
        self._rounds.clear()
        return self._start_round(now)

    @property
    def wanted(self) -> tuple[str, ...]:
        return tuple(sorted(self._wanted))

    # -- events -----------------------------------------------------------------------

    def on_reply(self, reply: AcquireReply, now: float) -> list[Effect]:
        """Count a voter's answer toward the round it answers; other rounds' are ignored."""
        rnd = self._rounds.get(reply.round)
        if (rnd is None or reply.candidate != self.node
                or reply.incarnation != self.incarnation or reply.voter not in self.voters):
            return []
        effects = self._count_grants(reply, rnd, now)
        lost = self._count_refusals(reply, rnd, now)
        deferred = self._deferred(reply, now)
        lost = [name for name in lost if name not in deferred]
        if lost:
            effects += self._give_up(lost, rnd, now)
        if deferred:
            effects += [Deferred(name, holder) for name, holder in deferred.items()]
            effects += self.release(deferred, now)
        return effects

    def _count_grants(self, reply: AcquireReply, rnd: _Round, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for name in reply.granted:
            if name in rnd.names:
                rnd.granted.setdefault(name, set()).add(reply.voter)
                if self._won(name, rnd):
                    effects += self._extend(name, self._round_end(rnd.sent_at, now), now)
        return effects

    def _count_refusals(self, reply: AcquireReply, rnd: _Round, now: float) -> list[str]:
        """The names this reply makes the round lose (only names not held matter)."""
        lost = []
        for refusal in reply.refused:
            name = refusal[0]
            if name in rnd.names:
                rnd.refused.setdefault(name, {})[reply.voter] = refusal
                if self._lost(name, rnd) and not self.holds(name, now):
                    lost.append(name)
        return lost

    def _deferred(self, reply: AcquireReply, now: float) -> dict[str, str]:
        """Names not held here that the reply's voter granted to a candidate they are left
        to -> that candidate."""
        return {name: holder for name, holder, _ in reply.refused
                if holder is not None and holder in self._defer_to.get(name, ())
                and not self.holds(name, now)}

    def tick(self, now: float) -> list[Effect]:
        """Timers: must-release and lease-lost effects, and the renewal round when due."""
        effects: list[Effect] = []
        for name in sorted(self._leases):
            effects += self._check_lease(name, now)
        if self._next_round_at is not None and now >= self._next_round_at:
            effects += self._start_round(now)
        else:
            self._prune(now)
        for number, rnd in self._rounds.items():
            if rnd.widen_at is not None and now >= rnd.widen_at:
                effects += self._widen(number, rnd)
        return effects

    def next_deadline(self, now: float) -> float | None:
        """When `tick` next has something to do (may be <= now: tick at once)."""
        del now  # deadlines are absolute; the parameter keeps the call uniform
        times = [] if self._next_round_at is None else [self._next_round_at]
        times += [r.widen_at for r in self._rounds.values() if r.widen_at is not None]
        for name, lease in self._leases.items():
            times.append(lease.end)
            remove_time = self._wanted.get(name, 0.0)
            if remove_time > 0 and not lease.must_release_sent:
                times.append(lease.end - remove_time)
        return min(times, default=None)

    # -- internals --------------------------------------------------------------------

    def _round_end(self, sent_at: float, now: float) -> float:
        """The lease end a won round gives: from its SEND time, never the reply's."""
        del now  # the reply time is deliberately not used (see docs/leases.md)
        return self.timing.holder_lease_end(sent_at)

    def _start_round(self, now: float) -> list[Effect]:
        self._prune(now)
        if not self._wanted:
            self._next_round_at = None
            return []
        targets = self._targets(now)
        self._last_round += 1
        unasked = tuple(v for v in self.voters if v not in targets)
        rnd = _Round(sent_at=now, names=set(self._wanted), unasked=unasked,
                     widen_at=now + WIDEN_AFTER * self.timing.renew_every if unasked else None)
        self._rounds[self._last_round] = rnd
        self._next_round_at = now + self.timing.renew_every
        return self._ask(self._last_round, rnd, targets)

    def _ask(self, number: int, rnd: _Round, voters: tuple[str, ...]) -> list[Effect]:
        names = tuple(sorted(rnd.names))
        return [Send(v, AcquireRequest(number, self.incarnation, names, self.node, v,
                                       self.timing.duration))
                for v in voters]

    def _widen(self, number: int, rnd: _Round) -> list[Effect]:
        """Ask the voters a round left out, unless it has won every name already. The lease
        it gives still counts from its first send (`sent_at`): the later asks only make it
        more likely to be won, never longer."""
        rnd.widen_at = None
        if not rnd.names or all(self._won(name, rnd) for name in rnd.names):
            return []
        return self._ask(number, rnd, rnd.unasked)

    def _targets(self, now: float) -> tuple[str, ...]:
        """The voters a round asks: every voter, unless the round one renewal period ago
        won every name wanted; then a majority plus SPARE_VOTERS, those that granted that
        round first, so that the lease traffic of a cluster grows with a majority, not with
        every voter. Safety does not depend on it: a lease is still won only by a majority
        of ALL voters (`needed`), and a voter not asked merely lets its grant run out.
        One slow or lost voter among them costs no round; with more, the round asks the
        others WIDEN_AFTER into its period (`_widen`), and the next one asks everyone."""
        wanted = self._wanted.keys()
        recent = [r for r in self._rounds.values()
                  if r.sent_at >= now - 1.5 * self.timing.renew_every
                  and all(self._won(name, r) for name in wanted) and r.names >= wanted]
        asked = self.needed + SPARE_VOTERS
        if self.quorum == "none" or not recent or asked >= len(self.voters):
            return self.voters
        base = max(recent, key=lambda r: r.sent_at)
        granted_all = set.intersection(*(base.granted[name] for name in wanted))
        start = self.voters.index(self.node) if self.node in self.voters else 0
        ring = self.voters[start:] + self.voters[:start]  # each holder asks its own slice
        ranked = sorted(ring, key=lambda voter: voter not in granted_all)  # stable sort
        return tuple(ranked[:asked])

    def _prune(self, now: float) -> None:
        """Forget rounds too old to give a lease that has not ended yet."""
        for number in [n for n, r in self._rounds.items()
                       if self.timing.holder_lease_end(r.sent_at) <= now]:
            del self._rounds[number]

    def _won(self, name: str, rnd: _Round) -> bool:
        granted = rnd.granted.get(name, set())
        return self.node in granted if self.quorum == "none" else len(granted) >= self.needed

    def _lost(self, name: str, rnd: _Round) -> bool:
        refused = rnd.refused.get(name, {})
        if self.quorum == "none":
            return self.node in refused
        return len(refused) > len(self.voters) - self.needed

    def _extend(self, name: str, end: float, now: float) -> list[Effect]:
        if end <= now:
            return []
        lease = self._leases.get(name)
        if lease is not None and now < lease.end:
            if end > lease.end:
                lease.end = end
                if end - now > self._wanted.get(name, 0.0):
                    lease.must_release_sent = False  # re-armed for the next shortfall
            return []
        # A lease that ended before tick() noticed is reported lost before the new one.
        effects: list[Effect] = [LeaseLost(name)] if lease is not None else []
        self._leases[name] = _Lease(end)
        self._defer_to.pop(name, None)  # won: the acquire is over
        return [*effects, Acquired(name, end)]

    def _give_up(self, names: list[str], rnd: _Round, now: float) -> list[Effect]:
        """A majority is out of reach for names not held: say who holds them and clear the
        minority of grants this process got, so split votes cannot block everyone forever.
        The next round goes out when the first refusing grant expires, not a whole renewal
        period later: after a holder dies, that is when a takeover can first win."""
        # A lease that ended before tick() noticed must still be reported lost.
        effects: list[Effect] = [LeaseLost(n) for n in names if n in self._leases]
        for name in names:
            refusals = list(rnd.refused[name].values())
            holder, remaining = next(((h, r) for _, h, r in refusals if h is not None),
                                     refusals[0][1:])
            effects.append(Refused(name, holder, remaining))
            retry_at = now + max(RETRY_SLACK, min(r for _, _, r in refusals) + RETRY_SLACK)
            if self._next_round_at is not None and retry_at < self._next_round_at:
                self._next_round_at = retry_at
        return [*effects, *self._withdraw(tuple(names))]

    def _withdraw(self, names: tuple[str, ...]) -> list[Effect]:
        """Drop the leases on `names` here FIRST, then clear them at the voters.

        The release takes a new round number, so it clears only grants from earlier rounds;
        those rounds stop counting for `names` here and now.
        """
        for name in names:
            self._leases.pop(name, None)
        for rnd in self._rounds.values():
            rnd.names.difference_update(names)
        self._last_round += 1
        return [Send(v, Release(self._last_round, self.incarnation, names, self.node, v))
                for v in self.voters]

    def _check_lease(self, name: str, now: float) -> list[Effect]:
        lease = self._leases[name]
        if now >= lease.end:
            del self._leases[name]
            return [LeaseLost(name)]
        remaining = lease.end - now
        if remaining <= self._wanted.get(name, 0.0) and not lease.must_release_sent:
            lease.must_release_sent = True
            return [MustRelease(name, remaining)]
        return []


def _names(names: Iterable[str]) -> tuple[str, ...]:
    """Distinct names, in order; a lone string is a mistake, not a list of letters."""
    if isinstance(names, str):
        raise TypeError(f"names must be a collection of names, got the string {names!r}")
    return tuple(dict.fromkeys(names))
