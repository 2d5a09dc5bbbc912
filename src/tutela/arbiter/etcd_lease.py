"""Ownership leases kept in etcd: the holder side, one etcd lease per hierarchy.

A hierarchy's owner key `<prefix>/<cluster>/owner/<name>` is created only if absent (a
transaction comparing its create revision with 0), bound to an etcd lease granted for that
name alone, renewed by keepalives and given up by revoking the lease, which deletes the key.
One lease per name, not one per node: a create that arrives late, after its name was
released, finds its lease revoked and fails, so no stray key can outlive a release.

The holder counts its lease from the SEND time of the grant or keepalive that etcd answered,
for H = TTL(1 - rho) - m: the argument of docs/leases.md, Lemma 1, with the etcd leader as
the one voter (docs/arbiter.md). Self-fencing (MustRelease, LeaseLost) is that of
arbiter/holder.py, so the watchdog rule holds unchanged.

Sans-IO: every call takes the node's monotonic `now` and returns effects; the driver
(daemon/etcd_leases.py) sends the requests and reports their answers back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tutela.arbiter.holder import Acquired, LeaseLost, MustRelease, Refused, Send
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Refusal, Release
from tutela.arbiter.timing import LeaseTiming

MAX_TTL = 60
"""Seconds: a longer etcd lease would only mean a slower takeover; above it, a mistake."""
MIN_TTL = 2
"""Seconds: an etcd leader election stalls every keepalive, and the owner rides it out only
if it ends within the lease's slack H - P - W (1.28 s at 2 s with the lab's 0.4 s watchdog;
at 1 s it would be 0.29 s, less than one election timeout). 2 s is also etcd's own minimum
with its default timing (3/2 of a 1 s election timeout, rounded up)."""


@dataclass(frozen=True)
class Grant:
    """Ask etcd for a lease of `ttl` seconds for `name` (POST /v3/lease/grant)."""

    name: str
    ttl: int
    sent_at: float


@dataclass(frozen=True)
class Create:
    """Put `key` = `value` bound to `lease_id` if `key` is absent (POST /v3/kv/txn)."""

    name: str
    lease_id: int
    key: str
    value: str


@dataclass(frozen=True)
class KeepAlive:
    """Renew `lease_id` (POST /v3/lease/keepalive); answer with `sent_at`."""

    name: str
    lease_id: int
    sent_at: float


@dataclass(frozen=True)
class Revoke:
    """Revoke `lease_id`, which deletes the key bound to it (POST /v3/lease/revoke)."""

    name: str
    lease_id: int


EtcdRequest = Grant | Create | KeepAlive | Revoke
Effect = EtcdRequest | Send | Acquired | MustRelease | LeaseLost | Refused
"""Send: a failsafe/R request or release to a node's embedded voter (docs/arbiter.md)."""


def etcd_ttl(base: LeaseTiming) -> int:
    """The whole-second etcd TTL whose own fencing bound covers the embedded lease's, and
    at least MIN_TTL.

    The watchdog tutelad arms fires within the embedded timing's max_remove_time (tutelad
    refuses a device that would not), so a TTL whose max_remove_time is at least that long
    lets the same watchdog fire before the etcd lease ends (docs/arbiter.md, "Timing")."""
    ttl = max(MIN_TTL, math.ceil(base.duration))
    while etcd_timing(ttl, base).max_remove_time < base.max_remove_time:
        ttl += 1
    return ttl


def etcd_timing(ttl: int, base: LeaseTiming) -> LeaseTiming:
    """The lease timing of an etcd TTL: the embedded drift, and a margin above its minimum."""
    return LeaseTiming.for_duration(float(ttl), base.drift)


def owner_key(prefix: str, cluster: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{cluster}/owner/{name}"


FAILSAFE_PREFIX = "failsafe/"
"""The embedded voters' lease name beside hierarchy R's etcd lease: failsafe/R."""


def failsafe_name(name: str) -> str:
    return FAILSAFE_PREFIX + name


@dataclass
class _Name:
    """One wanted name: its etcd lease (once granted), its key, its failsafe grants."""

    remove_time: float
    lease_id: int | None = None
    etcd_end: float | None = None
    """The holder's end of the etcd lease (own clock), from its grant and keepalives."""
    created: bool = False
    """The owner key exists, bound to lease_id."""
    in_flight: bool = False
    """A grant or create is under way (one at a time per name)."""
    awaiting_local: bool = False
    """The etcd lease is granted; the create waits for this node's voter's grant."""
    keepalive_in_flight: bool = False
    next_keepalive: float = 0.0
    next_try: float = 0.0
    local_end: float | None = None
    """End of this node's own voter's grant on failsafe/R: needed to create the key and to
    hold it (so no other node's failsafe round can win while this node holds R)."""
    all_end: float | None = None
    """End of a failsafe round every node's voter granted: R held without etcd."""
    failsafe: bool = False
    """Keepalives are failing: every round asks every node's voter too."""
    asked_all: bool = False
    """Every node's voter was asked for failsafe/R (a release goes to them all)."""
    held: bool = False
    """Acquired was reported and neither LeaseLost nor a release came since."""
    must_release_sent: bool = False

    def end(self) -> float | None:
        """The end of the holding: etcd key and own voter's grant, or the failsafe round."""
        via_etcd = (min(self.etcd_end, self.local_end) if self.created
                    and self.etcd_end is not None and self.local_end is not None else None)
        ends = [e for e in (via_etcd, self.all_end) if e is not None]
        return max(ends) if ends else None


@dataclass
class _VoteRound:
    sent_at: float
    voters: dict[str, tuple[str, ...]]
    """Hierarchy name -> the voters asked for its failsafe name in this round."""
    granted: dict[str, set[str]] = field(default_factory=dict)


class EtcdLeaseHolder:
    """The etcd side of one holder process (node, incarnation) for the hierarchy leases.

    `voters`: every node of the cluster (not witnesses: they run nothing), this one among
    them; `base`: the embedded lease timing, which their voters grant. The engine may run
    a hierarchy only while `holds(name, now)` is true (docs/arbiter.md, "Failsafe").
    """

    def __init__(self, node: str, cluster: str, prefix: str, ttl: int, timing: LeaseTiming,
                 *, incarnation: int, voters: tuple[str, ...] = (),
                 base: LeaseTiming | None = None) -> None:
        if not 1 <= ttl <= MAX_TTL:
            raise ValueError(f"etcd TTL must be within [1, {MAX_TTL}] s, got {ttl}")
        self.node = node
        self.cluster = cluster
        self.prefix = prefix
        self.ttl = ttl
        self.timing = timing
        """The holder length, renewal period and remove-time bound of `ttl`."""
        self.base = base or LeaseTiming()
        self.incarnation = incarnation
        self.voters = self._checked(voters or (node,))
        self._names: dict[str, _Name] = {}
        self._rounds: dict[int, _VoteRound] = {}
        self._last_round = 0
        self._next_vote_at = 0.0

    @property
    def value(self) -> str:
        """What the owner key holds: who owns it (for refusals and operators)."""
        return json.dumps({"node": self.node, "incarnation": self.incarnation})

    def set_voters(self, voters: tuple[str, ...]) -> None:
        """The cluster's nodes changed: failsafe rounds from now on ask these."""
        self.voters = self._checked(voters)

    def _checked(self, voters: tuple[str, ...]) -> tuple[str, ...]:
        if self.node not in voters or len(set(voters)) != len(voters):
            raise ValueError(f"voters must be distinct and include {self.node}, got {voters!r}")
        return voters

    # -- the engine's calls -----------------------------------------------------------

    def acquire_each(self, remove_times: Mapping[str, float], now: float) -> list[Effect]:
        """Want these names (each with its remove time); try now, then every renewal period."""
        for remove_time in remove_times.values():
            if not 0 <= remove_time < min(self.timing.holder_length, self.base.holder_length):
                raise ValueError(f"remove time {remove_time} s must be within "
                                 f"[0, {self.timing.holder_length:.3f}) for this lease timing")
        effects: list[Effect] = []
        for name, remove_time in remove_times.items():
            state = self._names.setdefault(name, _Name(remove_time))
            state.remove_time = remove_time
            effects += self._try(name, state, now)
        return effects

    def release(self, names: Iterable[str], now: float) -> list[Effect]:
        """Stop wanting `names`: stop holding them here FIRST, then revoke and release."""
        effects: list[Effect] = []
        for name in names:
            state = self._names.pop(name, None)
            if state is not None:
                effects += self._give_back(name, state, now)
        return effects

    def holds(self, name: str, now: float) -> bool:
        state = self._names.get(name)
        end = None if state is None else state.end()
        return end is not None and now < end

    def held(self, now: float) -> dict[str, float]:
        """For status and the watchdog: every name held now -> seconds left."""
        return {name: end - now for name, s in sorted(self._names.items())
                if (end := s.end()) is not None and now < end}

    @property
    def wanted(self) -> tuple[str, ...]:
        return tuple(sorted(self._names))

    # -- answers from etcd --------------------------------------------------------------

    def on_granted(self, name: str, lease_id: int, ttl: int, sent_at: float,
                   now: float) -> list[Effect]:
        """etcd granted `lease_id` (of `ttl` s) to a Grant sent at `sent_at`: create the key
        once this node's own voter grants failsafe/R."""
        state = self._names.get(name)
        if state is None or state.lease_id is not None:
            return [Revoke(name, lease_id)]  # released meanwhile, or a duplicate answer
        state.lease_id = lease_id
        state.etcd_end = self._end(sent_at, ttl)
        state.next_keepalive = sent_at + self.timing.renew_every
        # A fresh grant of the own voter even if one is left from an earlier try: what is
        # left of that may be too little to hold the name for long.
        state.awaiting_local = True
        return self._vote_round(now, {name: (self.node,)})

    def on_created(self, name: str, lease_id: int, holder: str | None,
                   now: float) -> list[Effect]:
        """The create transaction answered: `holder` None means the key is ours now;
        otherwise it names the owner key's value (another holder process)."""
        state = self._current(name, lease_id)
        if state is None:
            return []
        state.in_flight = False
        if holder is None:
            state.created = True
            return self._report_held(name, state, now)
        return [Refused(name, _holder_node(holder), float(self.ttl)),
                *self._drop_etcd(name, state, now)]

    def on_kept(self, name: str, lease_id: int, ttl: int, sent_at: float,
                now: float) -> list[Effect]:
        """A keepalive sent at `sent_at` answered with `ttl` (<= 0: the lease is gone)."""
        state = self._current(name, lease_id)
        if state is None:
            return []
        state.keepalive_in_flight = False
        if ttl <= 0:
            return self._drop_etcd(name, state, now) + self._check(name, state, now)
        state.failsafe = False
        end = self._end(sent_at, ttl)
        if state.etcd_end is not None and end > state.etcd_end:
            state.etcd_end = end
            self._rearm(state, now)
        return []

    def on_failed(self, request: EtcdRequest, now: float) -> list[Effect]:
        """`request` got no answer (etcd unreachable, no leader, timed out).

        A create's outcome is then unknown: its lease is revoked and the name tried afresh,
        never counted as held. A lost keepalive leaves the lease end where it was, and
        starts failsafe rounds: every node's voter is asked for failsafe/R."""
        state = self._names.get(request.name)
        if state is None or isinstance(request, Revoke):
            return []
        if isinstance(request, Grant):
            if state.lease_id is None:
                state.in_flight = False
                state.next_try = now + self.timing.renew_every
            return []
        if state.lease_id != request.lease_id:
            return []
        if isinstance(request, KeepAlive):
            state.keepalive_in_flight = False
            if state.held and not state.failsafe:
                state.failsafe = True
                return self._vote_round(now, {request.name: self.voters})
            return []
        state.in_flight = False
        return self._drop_etcd(request.name, state, now)

    # -- answers from the voters ----------------------------------------------------------

    def on_vote(self, reply: AcquireReply, now: float) -> list[Effect]:
        """A voter's answer to a failsafe round: the own voter's grant lets a create go and
        keeps the key held; every node's grant holds the name without etcd."""
        rnd = self._rounds.get(reply.round)
        if rnd is None or reply.candidate != self.node or reply.incarnation != self.incarnation:
            return []
        effects: list[Effect] = []
        for granted in reply.granted:
            name = granted.removeprefix(FAILSAFE_PREFIX)
            state = self._names.get(name)
            if state is None or reply.voter not in rnd.voters.get(name, ()):
                continue
            votes = rnd.granted.setdefault(name, set())
            votes.add(reply.voter)
            end = self.base.holder_lease_end(rnd.sent_at)  # from the round's SEND time
            if reply.voter == self.node:
                state.local_end = max(state.local_end or end, end)
                effects += self._local_granted(name, state, now)
            if state.failsafe and votes >= set(self.voters):
                state.all_end = max(state.all_end or end, end)
            self._rearm(state, now)
        for refusal in reply.refused:
            effects += self._local_refused(refusal, reply.voter, now)
        return effects

    def _local_granted(self, name: str, state: _Name, now: float) -> list[Effect]:
        if not state.awaiting_local or state.lease_id is None:
            return []
        state.awaiting_local = False
        return [self._create(name, state.lease_id)] if now < (state.local_end or 0) else []

    def _local_refused(self, refusal: Refusal, voter: str, now: float) -> list[Effect]:
        """The own voter refuses: another node's failsafe round holds R here; no create."""
        name = refusal[0].removeprefix(FAILSAFE_PREFIX)
        state = self._names.get(name)
        if voter != self.node or state is None or not state.awaiting_local:
            return []
        state.awaiting_local = False
        state.in_flight = False
        return [Refused(name, refusal[1], refusal[2]), *self._drop_etcd(name, state, now)]

    # -- timers -------------------------------------------------------------------------

    def tick(self, now: float) -> list[Effect]:
        """Must-release and lease-lost, keepalives and failsafe rounds when due, and
        retries of names not held."""
        effects: list[Effect] = []
        self._prune(now)
        for name in sorted(self._names):
            effects += self._check(name, self._names[name], now)
            state = self._names[name]  # a lost lease starts afresh
            effects += self._keepalive(name, state, now) + self._try(name, state, now)
        if now >= self._next_vote_at:
            effects += self._vote_round(now, self._due_votes())
        return effects

    def next_deadline(self, now: float) -> float | None:
        """When `tick` next has something to do (may be <= now: tick at once)."""
        times = [self._next_vote_at] if self._due_votes() else []
        for state in self._names.values():
            if state.lease_id is None and not state.in_flight:
                times.append(state.next_try)
            if state.lease_id is not None and not state.keepalive_in_flight:
                times.append(state.next_keepalive)
            end = state.end()
            if state.held and end is not None:
                times.append(end)
                if state.remove_time > 0 and not state.must_release_sent:
                    times.append(end - state.remove_time)
        del now  # deadlines are absolute
        return min(times, default=None)

    # -- internals ----------------------------------------------------------------------

    def _end(self, sent_at: float, ttl: int) -> float:
        """The holder's end after etcd answered a request sent at `sent_at`: counted on the
        shorter of the TTL asked for and the one etcd says (a longer one only delays a
        takeover; a shorter one is all the holder may rely on)."""
        if ttl >= self.ttl:
            return self.timing.holder_lease_end(sent_at)
        return etcd_timing(ttl, self.timing).holder_lease_end(sent_at)

    def _create(self, name: str, lease_id: int) -> Create:
        return Create(name, lease_id, owner_key(self.prefix, self.cluster, name), self.value)

    def _current(self, name: str, lease_id: int) -> _Name | None:
        state = self._names.get(name)
        return state if state is not None and state.lease_id == lease_id else None

    def _report_held(self, name: str, state: _Name, now: float) -> list[Effect]:
        end = state.end()
        if state.held or end is None or now >= end:
            return []
        state.held = True
        return [Acquired(name, end)]

    def _due_votes(self) -> dict[str, tuple[str, ...]]:
        """Names whose failsafe grants are renewed each round -> the voters to ask."""
        return {name: self.voters if s.failsafe else (self.node,)
                for name, s in self._names.items()
                if s.lease_id is not None or s.held}

    def _vote_round(self, now: float, asks: dict[str, tuple[str, ...]]) -> list[Effect]:
        self._next_vote_at = now + self.base.renew_every
        if not asks:
            return []
        self._last_round += 1
        self._rounds[self._last_round] = _VoteRound(now, dict(asks))
        by_voter: dict[str, list[str]] = {}
        for name, voters in sorted(asks.items()):
            if len(voters) > 1:
                self._names[name].asked_all = True
            for voter in voters:
                by_voter.setdefault(voter, []).append(failsafe_name(name))
        return [Send(voter, AcquireRequest(self._last_round, self.incarnation, tuple(names),
                                           self.node, voter, self.base.duration))
                for voter, names in sorted(by_voter.items())]

    def _prune(self, now: float) -> None:
        """Forget rounds too old to give a grant that has not ended yet."""
        for number in [n for n, r in self._rounds.items()
                       if self.base.holder_lease_end(r.sent_at) <= now]:
            del self._rounds[number]

    def _try(self, name: str, state: _Name, now: float) -> list[Effect]:
        if state.lease_id is not None or state.in_flight or now < state.next_try:
            return []
        state.in_flight = True
        return [Grant(name, self.ttl, now)]

    def _keepalive(self, name: str, state: _Name, now: float) -> list[Effect]:
        if (state.lease_id is None or state.keepalive_in_flight
                or now < state.next_keepalive):
            return []
        state.keepalive_in_flight = True
        state.next_keepalive = now + self.timing.renew_every
        return [KeepAlive(name, state.lease_id, now)]

    def _rearm(self, state: _Name, now: float) -> None:
        end = state.end()
        if end is not None and end - now > state.remove_time:
            state.must_release_sent = False  # re-armed for the next shortfall

    def _check(self, name: str, state: _Name, now: float) -> list[Effect]:
        end = state.end()
        if not state.held:
            return []
        if end is None or now >= end:
            self._names[name] = _Name(state.remove_time, next_try=now + self.timing.renew_every)
            return [LeaseLost(name), *self._give_back(name, state, now)]
        if end - now <= state.remove_time and not state.must_release_sent:
            state.must_release_sent = True
            return [MustRelease(name, end - now)]
        return []

    def _drop_etcd(self, name: str, state: _Name, now: float) -> list[Effect]:
        """Forget the name's etcd lease here, revoke it there, try again a period later;
        failsafe grants stay (they may be what holds the name now)."""
        lease_id = state.lease_id
        state.lease_id = state.etcd_end = None
        state.created = state.in_flight = state.awaiting_local = False
        state.keepalive_in_flight = False
        state.next_try = now + self.timing.renew_every
        return [] if lease_id is None else [Revoke(name, lease_id)]

    def _give_back(self, name: str, state: _Name, now: float) -> list[Effect]:
        """Revoke the etcd lease and release failsafe/R at the voters that granted it
        (after the name was dropped here: the caller did)."""
        effects: list[Effect] = [] if state.lease_id is None else [Revoke(name, state.lease_id)]
        for rnd in self._rounds.values():
            rnd.voters.pop(name, None)
        self._last_round += 1
        voters = self.voters if state.asked_all else (self.node,)
        del now  # a release waits for nothing
        return [*effects, *(Send(v, Release(self._last_round, self.incarnation,
                                            (failsafe_name(name),), self.node, v))
                            for v in voters)]


def _holder_node(value: str | None) -> str | None:
    """The node named in an owner key's value; None when it is not ours to read."""
    try:
        node = json.loads(value or "").get("node")
    except (ValueError, AttributeError):
        return None
    return node if isinstance(node, str) else None
