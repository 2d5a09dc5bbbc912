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
from dataclasses import dataclass

from tutela.arbiter.holder import Acquired, LeaseLost, MustRelease, Refused
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
Effect = EtcdRequest | Acquired | MustRelease | LeaseLost | Refused


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


@dataclass
class _Name:
    """One wanted name: its etcd lease (once granted), its key, what is in flight."""

    remove_time: float
    lease_id: int | None = None
    end: float | None = None
    """The holder's end of the etcd lease (own clock), from its grant and keepalives."""
    created: bool = False
    """The owner key exists, bound to lease_id: the name is held until `end`."""
    in_flight: bool = False
    """A grant or create is under way (one at a time per name)."""
    keepalive_in_flight: bool = False
    next_keepalive: float = 0.0
    next_try: float = 0.0
    must_release_sent: bool = False


class EtcdLeaseHolder:
    """The etcd side of one holder process (node, incarnation) for the hierarchy leases.

    The engine may run a hierarchy only while `holds(name, now)` is true.
    """

    def __init__(self, node: str, cluster: str, prefix: str, ttl: int, timing: LeaseTiming,
                 *, incarnation: int) -> None:
        if not 1 <= ttl <= MAX_TTL:
            raise ValueError(f"etcd TTL must be within [1, {MAX_TTL}] s, got {ttl}")
        self.node = node
        self.cluster = cluster
        self.prefix = prefix
        self.ttl = ttl
        self.timing = timing
        """The holder length, renewal period and remove-time bound of `ttl`."""
        self.incarnation = incarnation
        self._names: dict[str, _Name] = {}

    @property
    def value(self) -> str:
        """What the owner key holds: who owns it (for refusals and operators)."""
        return json.dumps({"node": self.node, "incarnation": self.incarnation})

    # -- the engine's calls -----------------------------------------------------------

    def acquire_each(self, remove_times: Mapping[str, float], now: float) -> list[Effect]:
        """Want these names (each with its remove time); try now, then every renewal period."""
        for remove_time in remove_times.values():
            if not 0 <= remove_time < self.timing.holder_length:
                raise ValueError(f"remove time {remove_time} s must be within "
                                 f"[0, {self.timing.holder_length:.3f}) for this lease timing")
        effects: list[Effect] = []
        for name, remove_time in remove_times.items():
            state = self._names.setdefault(name, _Name(remove_time))
            state.remove_time = remove_time
            effects += self._try(name, state, now)
        return effects

    def release(self, names: Iterable[str], now: float) -> list[Effect]:
        """Stop wanting `names`: stop holding them here FIRST, then revoke their leases."""
        del now  # a release does not wait for anything
        effects: list[Effect] = []
        for name in names:
            state = self._names.pop(name, None)
            if state is not None and state.lease_id is not None:
                effects.append(Revoke(name, state.lease_id))
        return effects

    def holds(self, name: str, now: float) -> bool:
        state = self._names.get(name)
        return (state is not None and state.created and state.end is not None
                and now < state.end)

    def held(self, now: float) -> dict[str, float]:
        """For status and the watchdog: every name held now -> seconds left."""
        return {name: s.end - now for name, s in sorted(self._names.items())
                if self.holds(name, now) and s.end is not None}

    @property
    def wanted(self) -> tuple[str, ...]:
        return tuple(sorted(self._names))

    # -- answers from etcd --------------------------------------------------------------

    def on_granted(self, name: str, lease_id: int, ttl: int, sent_at: float,
                   now: float) -> list[Effect]:
        """etcd granted `lease_id` (of `ttl` s) to a Grant sent at `sent_at`: create the key."""
        state = self._names.get(name)
        if state is None or state.lease_id is not None:
            return [Revoke(name, lease_id)]  # released meanwhile, or a duplicate answer
        state.lease_id = lease_id
        state.end = self._end(sent_at, ttl)
        state.next_keepalive = sent_at + self.timing.renew_every
        return [Create(name, lease_id, owner_key(self.prefix, self.cluster, name), self.value)]

    def on_created(self, name: str, lease_id: int, holder: str | None,
                   now: float) -> list[Effect]:
        """The create transaction answered: `holder` None means the key is ours now;
        otherwise it names the owner key's value (another holder process)."""
        state = self._current(name, lease_id)
        if state is None:
            return []
        state.in_flight = False
        if holder is None and state.end is not None and now < state.end:
            state.created = True
            return [Acquired(name, state.end)]
        return [Refused(name, _holder_node(holder), float(self.ttl)), *self._drop(name, state, now)]

    def on_kept(self, name: str, lease_id: int, ttl: int, sent_at: float,
                now: float) -> list[Effect]:
        """A keepalive sent at `sent_at` answered with `ttl` (<= 0: the lease is gone)."""
        state = self._current(name, lease_id)
        if state is None:
            return []
        state.keepalive_in_flight = False
        if ttl <= 0:
            lost: list[Effect] = [LeaseLost(name)] if state.created else []
            return [*lost, *self._drop(name, state, now)]
        end = self._end(sent_at, ttl)
        if state.end is not None and end > state.end:
            state.end = end
            if end - now > state.remove_time:
                state.must_release_sent = False  # re-armed for the next shortfall
        return []

    def on_failed(self, request: EtcdRequest, now: float) -> list[Effect]:
        """`request` got no answer (etcd unreachable, no leader, timed out).

        A create's outcome is then unknown: its lease is revoked and the name tried afresh,
        never counted as held. A lost keepalive only leaves the lease end where it was."""
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
            return []
        state.in_flight = False
        return self._drop(name=request.name, state=state, now=now)

    # -- timers -------------------------------------------------------------------------

    def tick(self, now: float) -> list[Effect]:
        """Must-release and lease-lost, keepalives when due, and retries of names not held."""
        effects: list[Effect] = []
        for name in sorted(self._names):
            state = self._names[name]
            effects += self._check(name, state, now)
            if name in self._names:
                effects += self._keepalive(name, state, now) + self._try(name, state, now)
        return effects

    def next_deadline(self, now: float) -> float | None:
        """When `tick` next has something to do (may be <= now: tick at once)."""
        del now  # deadlines are absolute
        times = []
        for state in self._names.values():
            if state.lease_id is None:
                if not state.in_flight:
                    times.append(state.next_try)
                continue
            if not state.keepalive_in_flight:
                times.append(state.next_keepalive)
            if state.created and state.end is not None:
                times.append(state.end)
                if state.remove_time > 0 and not state.must_release_sent:
                    times.append(state.end - state.remove_time)
        return min(times, default=None)

    # -- internals ----------------------------------------------------------------------

    def _end(self, sent_at: float, ttl: int) -> float:
        """The holder's end after etcd answered a request sent at `sent_at`: counted on the
        shorter of the TTL asked for and the one etcd says (a longer one only delays a
        takeover; a shorter one is all the holder may rely on)."""
        if ttl >= self.ttl:
            return self.timing.holder_lease_end(sent_at)
        return etcd_timing(ttl, self.timing).holder_lease_end(sent_at)

    def _current(self, name: str, lease_id: int) -> _Name | None:
        state = self._names.get(name)
        return state if state is not None and state.lease_id == lease_id else None

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

    def _check(self, name: str, state: _Name, now: float) -> list[Effect]:
        if not state.created or state.end is None:
            return []
        if now >= state.end:
            return [LeaseLost(name), *self._drop(name, state, now)]
        remaining = state.end - now
        if remaining <= state.remove_time and not state.must_release_sent:
            state.must_release_sent = True
            return [MustRelease(name, remaining)]
        return []

    def _drop(self, name: str, state: _Name, now: float) -> list[Effect]:
        """Forget the name's etcd lease here, revoke it there, try again a period later."""
        lease_id = state.lease_id
        self._names[name] = _Name(state.remove_time,
                                  next_try=now + self.timing.renew_every)
        return [] if lease_id is None else [Revoke(name, lease_id)]


def _holder_node(value: str | None) -> str | None:
    """The node named in an owner key's value; None when it is not ours to read."""
    try:
        node = json.loads(value or "").get("node")
    except (ValueError, AttributeError):
        return None
    return node if isinstance(node, str) else None
