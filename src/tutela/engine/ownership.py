"""Who runs a clustered hierarchy: the pure decision one node takes for one hierarchy.

Fed what this node sees (leases, alive nodes, what peers report); says acquire, restore,
give up, or wait. Votes, not this timing, decide who wins (DESIGN.md section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tutela.model.config import HierarchySettings

Decision = Literal["acquire", "restore", "give_up", "wait", "none"]
LAST_OWNER_GRACE = 2.0
"""Extra seconds the other candidates leave a vacant hierarchy to the alive node where it
last ran (the cold-start 'last' policy): more than that node's start-up settling."""


RANK_TICKS = 2.5
"""Decision ticks (heartbeat intervals) each lower-ranked candidate waits after a higher one
before trying itself: time for the higher one to notice and ask."""


def rank_step(heartbeat_interval: float) -> float:
    """The rank wait in seconds (0.5 s with the default 0.2 s heartbeats). Fixed seconds
    would let a lower rank overtake nodes that decide only once a second."""
    return RANK_TICKS * heartbeat_interval


@dataclass(frozen=True)
class View:
    """One node's view of one clustered hierarchy at one moment."""

    me: str
    settings: HierarchySettings
    alive: frozenset[str]
    """Nodes this node sees alive, itself included."""
    i_hold: bool
    in_service_here: bool
    failed_here: bool
    """A resource of it failed here beyond local recovery."""
    owner_elsewhere: str | None
    """An alive peer that reports holding the lease or running the hierarchy."""
    failed_on: frozenset[str]
    """Nodes that report it failed there; they are not candidates."""
    last_owner: str | None
    """The node that reports it ran the hierarchy last (cold start 'last' policy)."""
    vacant_for: float | None
    """Seconds this node has seen the hierarchy owned by nobody; None: not vacant."""
    failover_blocked_by: str | None = None
    """A vanished owner that blocks failover away from it (node setting failover: false)."""
    parts_in_service_here: bool = False
    """Some resource of it is in service here (the root or not)."""


def decide(view: View, step: float) -> Decision:
    if view.i_hold:
        return _as_owner(view)
    if view.parts_in_service_here and view.owner_elsewhere is not None:
        return "give_up"  # in service without the lease while another node runs it: get out
    if (view.settings.target != "in_service" or view.owner_elsewhere is not None
            or view.failover_blocked_by is not None):
        return "none"
    candidates = candidates_in_order(view)
    if view.me not in candidates:
        return "none"
    if view.vacant_for is None:
        return "wait"
    rank = candidates.index(view.me)
    wait = rank * step
    if rank > 0 and candidates[0] == view.last_owner:
        wait += LAST_OWNER_GRACE  # a cold start: it is alive and will take it back
    return "acquire" if view.vacant_for >= wait else "wait"


def _as_owner(view: View) -> Decision:
    if view.settings.target != "in_service" or view.failed_here:
        return "give_up"
    if view.settings.switchback == "automatic":
        best = candidates_in_order(view, cold=False)
        if best and best[0] != view.me:
            return "give_up"
    return "none" if view.in_service_here else "restore"


def candidates_in_order(view: View, cold: bool = True) -> list[str]:
    """Alive, eligible, not failed nodes by priority; at a cold start with the 'last'
    policy the node that ran it last goes first. With failover blocked only that node
    (or, if none is known, the highest-priority node) may start it."""
    settings = view.settings
    by_priority = [e.node for e in sorted(settings.equivalencies, key=lambda e: e.priority)]
    eligible = [n for n in by_priority if n in view.alive and n not in view.failed_on]
    first = view.last_owner if cold and settings.start_policy == "last" else None
    if first in eligible:
        eligible.remove(first)
        eligible.insert(0, first)
    if not settings.failover:
        allowed = first or (by_priority[0] if by_priority else None)
        return [n for n in eligible if n == allowed]
    return eligible
