"""Why a hierarchy that should be in service runs nowhere: the reason as data.

`engine.ownership.decide` and a failed takeover attempt each say why this node does not
take a hierarchy over (`Blocked`); the daemon keeps it with since when (`Stuck`), sends it
to its peers with its heartbeats, and `tutela status` shows every node's reasons.
Pure: times are wall-clock seconds handed in as `now` (they travel between nodes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

Reason = Literal[
    "address_answers",       # the ip kit's pre-check: the address answers elsewhere
    "no_quorum",             # no majority of the voters granted the lease
    "lease_wait",            # waiting for the last owner's grants to expire at the voters
    "fence_failed",          # fencing 'agent': the fence command failed
    "watchdog_unavailable",  # fencing 'watchdog': this node cannot arm its watchdog
    "failover_blocked",      # nodes[HOLDER].failover: false, and HOLDER is gone
    "failover_off",          # hierarchies[ROOT].failover: false; only HOLDER may start it
    "no_eligible_node",      # every candidate failed it or is gone
    "damped",                # held after repeated failovers (failover_damping)
    "maintenance",           # HOLDER was stopped with --leave-resources and may run it
    "dependency",            # a hierarchy it depends on is not up where it may run
    "unleased",              # HOLDER ran it without its lease and vanished: its removal
]
REASONS: frozenset[str] = frozenset(get_args(Reason))
DECIDED: frozenset[Reason] = frozenset(
    {"failover_blocked", "failover_off", "no_eligible_node", "damped", "maintenance",
     "dependency", "unleased"})
"""Reasons `decide` finds from what this node sees (the others come from an attempt)."""

RETRY_FIRST = 1.0
"""Seconds before the first retry of a takeover attempt that was refused."""
RETRY_MAX = 10.0
"""The longest wait between retries: how long a takeover can lag once the cause is gone
without any change the node sees (an owner powered off by hand)."""


@dataclass(frozen=True)
class Blocked:
    """Why this node does not take a vacant hierarchy over, as one decision found it."""

    reason: Reason
    holder: str | None = None
    """The node that holds it, ran it last, or alone may start it, if known."""
    detail: str = ""
    """The refusal, the fence command's error, the count of failovers."""
    left: float | None = None
    """Seconds until it ends by itself (a hold, a lease), if it does."""


@dataclass(frozen=True)
class Stuck:
    """A hierarchy this node sees running nowhere, why, and since when."""

    reason: Reason
    holder: str | None
    detail: str
    since: float
    """When this node first saw it stuck (wall clock); kept while the reason changes."""
    until: float | None = None
    """When the reason ends by itself (wall clock), if it does."""

    def same_cause(self, blocked: Blocked) -> bool:
        return (self.reason, self.holder, self.detail) == (
            blocked.reason, blocked.holder, blocked.detail)


def note(previous: Stuck | None, blocked: Blocked, now: float) -> Stuck:
    """The record after `blocked` was found at `now`: since when stays that of the episode."""
    until = None if blocked.left is None else now + blocked.left
    if previous is None:
        return Stuck(blocked.reason, blocked.holder, blocked.detail, now, until)
    return replace(previous, reason=blocked.reason, holder=blocked.holder,
                   detail=blocked.detail, until=until)


def retry_delay(attempts: int) -> float:
    """Seconds before trying again after `attempts` refused takeover attempts in a row:
    1, 2, 4, 8, then every 10 s (a retry costs a lease round and an ARP probe)."""
    return min(RETRY_FIRST * 2.0 ** max(attempts - 1, 0), RETRY_MAX)


def explain(stuck: Stuck, root: str, fencing: str, now: float) -> str:
    """One sentence for `tutela status` and the log: what holds it and what to do."""
    holder, detail = stuck.holder, stuck.detail
    left = f"{max(stuck.until - now, 0.0):.0f}s" if stuck.until is not None else "?"
    if stuck.reason == "address_answers":
        return _address_answers(holder, detail, fencing)
    if stuck.reason == "no_quorum":
        last = f"; {holder} ran it last" if holder else ""
        return f"no quorum: {detail}{last}"
    if stuck.reason == "lease_wait":
        return f"waiting out {holder or 'the last owner'}'s lease ({left} at most)"
    if stuck.reason == "fence_failed":
        return (f"fencing {holder} failed ({detail}); no node takes it over until {holder} "
                f"is fenced: fix the fence command, or power {holder} off by hand")
    if stuck.reason == "watchdog_unavailable":
        return f"not taking it over: {detail}"
    if stuck.reason == "failover_blocked":
        return (f"{holder} ran it and is gone, but failover away from {holder} is blocked; "
                f"confirm a takeover with 'tutela switchover {root} --to NODE'")
    if stuck.reason == "failover_off":
        return (f"failover is off for {root}: only {holder} may start it, and {holder} is "
                f"not alive")
    if stuck.reason == "maintenance":  # detail: the node that sees it, to take it over
        return (f"{holder} is stopped for maintenance (tutela stop --leave-resources) and "
                f"may still run it, unprotected: no node takes it over. If {holder} is down "
                f"for good, make sure it is off (power it off or fence it), then confirm "
                f"the takeover with 'tutela switchover {root} --to {detail}'")
    if stuck.reason == "dependency":  # detail: each dependency not met, in plain words
        return (f"waiting for its dependencies: it {detail}; it starts by itself once they "
                f"are up ('tutela status' shows where they run)")
    if stuck.reason == "unleased":
        return (f"{holder} ran it without its lease (re-adopted after a restart, or just "
                f"extended) and is gone: waiting {left} at most for it to take it out of "
                "service, as it does when it cannot win the lease")
    if stuck.reason == "no_eligible_node":
        return f"no eligible node: {detail}; 'tutela restore {root}' clears the failures"
    return (f"failover held after {detail}: {left} left; 'tutela restore {root}' "
            "ends the hold")


def _address_answers(holder: str | None, detail: str, fencing: str) -> str:
    if holder is None:
        return f"its address still answers elsewhere ({detail}); not taking it over"
    if fencing == "none":
        return (f"{holder}'s tutelad does not answer but its service still answers "
                f"({detail}): unprotected; fencing is none, so no node takes it over; "
                f"restart tutelad on {holder} or fence it by hand")
    return (f"{holder} does not answer but its address still does ({detail}); not "
            "taking it over until it lets go")


def to_payload(stuck: dict[str, Stuck]) -> list[list[Any]]:
    """For heartbeats: records that are the same for many hierarchies (a lost quorum
    strands all of them) go once, with their roots: [reason, holder, detail, since, until,
    roots]."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for root, record in sorted(stuck.items()):
        key = (record.reason, record.holder, record.detail, round(record.since),
               None if record.until is None else round(record.until))
        groups.setdefault(key, []).append(root)
    return [[*key, roots] for key, roots in groups.items()]


def from_payload(payload: Any) -> dict[str, Stuck]:
    """A peer's heartbeat's records by root; what does not parse is left out (a peer of
    another version)."""
    found: dict[str, Stuck] = {}
    for entry in payload if isinstance(payload, list) else ():
        try:
            reason, holder, detail, since, until, roots = entry
            if reason not in REASONS:
                continue
            record = Stuck(reason, holder, str(detail), float(since),
                           None if until is None else float(until))
        except (TypeError, ValueError):
            continue
        found.update(dict.fromkeys(map(str, roots), record))
    return found


@dataclass
class Retries:
    """Refused takeover attempts per hierarchy and when to try again: later each time
    (`retry_delay`), at once after `reset`. `now` is the caller's monotonic clock."""

    attempts: dict[str, int] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)

    def refused(self, root: str, now: float) -> float:
        """One more refusal; the seconds until the next attempt."""
        attempts = self.attempts[root] = self.attempts.get(root, 0) + 1
        delay = retry_delay(attempts)
        self.due[root] = now + delay
        return delay

    def waiting(self, root: str, now: float) -> bool:
        return now < self.due.get(root, 0.0)

    def first(self, root: str) -> bool:
        """No attempt refused since the last reset."""
        return root not in self.attempts

    def reset(self, root: str | None = None) -> None:
        """Try `root` (None: every hierarchy) again at once, as a first attempt."""
        for table in (self.attempts, self.due):
            if root is None:
                table.clear()
            else:
                table.pop(root, None)
