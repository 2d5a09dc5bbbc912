"""Who runs a clustered hierarchy: the pure decision one node takes for one hierarchy.

Fed what this node sees (leases, alive nodes, what peers report, where the hierarchies it
depends on are up); says acquire, restore, give up, or wait, and when nobody may take a
vacant hierarchy over, why (`Blocked`). Votes, not this timing, decide who wins (DESIGN.md
section 4). The timers behind `vacant_for` and the rest live in `engine.ownership_core`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tutela.engine.stuck import Blocked
from tutela.model.config import HierarchySettings

Decision = Literal["acquire", "restore", "give_up", "wait", "none"]
LAST_OWNER_GRACE = 2.0
"""Extra seconds the other candidates leave a vacant hierarchy to the alive node where it
last ran (the cold-start 'last' policy): more than that node's start-up settling."""


RANK_TICKS = 2.5
"""Decision ticks (heartbeat intervals) each lower-ranked candidate waits after a higher one
before trying itself: time for the higher one to notice and ask."""


def rank_step(heartbeat_interval: float, lease_outlives_detection: float = 0.0) -> float:
    """The rank wait in seconds (0.5 s with the default 0.2 s heartbeats). Fixed seconds
    would let a lower rank overtake nodes that decide only once a second.

    `lease_outlives_detection`: how much longer than the failure detector's timeout the
    last owner's grants may last (a 1.61 s lease against 1 s of heartbeats: 0.61 s). The
    higher rank cannot win the lease before they expire, so the lower one waits that much
    more; else both would ask at once and split the votes."""
    return RANK_TICKS * heartbeat_interval + max(0.0, lease_outlives_detection)


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
    previous_owner: str | None = None
    """The node last seen running it, if any (this node included)."""
    hold: Blocked | None = None
    """Failover damping holds it (reason 'damped'): no automatic failover until it ends."""
    allowed: frozenset[str] | None = None
    """The nodes where its dependencies are met (`engine.dependencies.placement`); None:
    it has no dependencies."""
    unmet: tuple[str, ...] = ()
    """Each dependency that rules nodes out, in plain words (for the log and `status`)."""
    unleased: Blocked | None = None
    """A vanished node ran it without its lease and may still (reason 'unleased'): nobody
    takes it over until that node's own deadline to take it out of service has passed."""


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    blocked: Blocked | None = None
    """Why nobody takes the vacant hierarchy over, as far as this node can tell; with
    give_up, reason 'dependency': the owner lets it go because a dependency is not met."""


def decide(view: View, step: float) -> Verdict:
    if view.i_hold:
        decision = _as_owner(view)
        if decision != "give_up" and _dependency_unmet_here(view):
            return Verdict("give_up", _dependency_blocked(view))  # removal: it went down
        return Verdict(decision)
    if view.parts_in_service_here and view.owner_elsewhere is not None:
        # in service without the lease while another node runs it: get out
        return Verdict("give_up")
    if view.settings.target != "in_service" or view.owner_elsewhere is not None:
        return Verdict("none")
    if view.failover_blocked_by is not None:
        return Verdict("none", Blocked("failover_blocked", view.failover_blocked_by))
    if view.unleased is not None:
        return Verdict("none", view.unleased)
    candidates = candidates_in_order(view)
    if view.me not in candidates:
        return Verdict("none", _nobody_may(view) if not candidates else None)
    if view.vacant_for is None:
        return Verdict("wait")
    if view.hold is not None and view.previous_owner not in (None, view.me):
        return Verdict("none", view.hold)  # a failover; back where it ran is none
    if view.parts_in_service_here:
        # No rank wait: running here without its lease, this node has only so long to win
        # it before it must take it out of service (OwnershipCore.unleased_report).
        return Verdict("acquire")
    rank = candidates.index(view.me)
    wait = rank * step
    if rank > 0 and candidates[0] == view.last_owner:
        wait += LAST_OWNER_GRACE  # a cold start: it is alive and will take it back
    return Verdict("acquire" if view.vacant_for >= wait else "wait")


def _dependency_unmet_here(view: View) -> bool:
    return view.allowed is not None and view.me not in view.allowed


def _dependency_blocked(view: View) -> Blocked:
    return Blocked("dependency", view.previous_owner, "; ".join(view.unmet))


def _nobody_may(view: View) -> Blocked | None:
    """Why no alive node is a candidate for a hierarchy that should be in service."""
    if view.vacant_for is None:
        return None
    if view.allowed is not None and candidates_in_order(view, placed=False):
        return _dependency_blocked(view)  # there are candidates, none where it may run
    settings = view.settings
    if not settings.failover:
        by_priority = sorted(settings.equivalencies, key=lambda e: e.priority)
        allowed = view.last_owner if settings.start_policy == "last" else None
        allowed = allowed or (by_priority[0].node if by_priority else None)
        if allowed not in view.failed_on:
            return Blocked("failover_off", allowed)
    failed = ", ".join(sorted(view.failed_on))
    gone = ", ".join(sorted({e.node for e in settings.equivalencies} - view.alive))
    why = "; ".join(part for part in (failed and f"it failed on {failed}",
                                      gone and f"{gone} not alive") if part)
    return Blocked("no_eligible_node", view.previous_owner, why or "no candidate node")


def _as_owner(view: View) -> Decision:
    if view.settings.target != "in_service" or view.failed_here:
        return "give_up"
    if view.settings.switchback == "automatic" and view.hold is None:
        best = candidates_in_order(view, cold=False)
        if best and best[0] != view.me:
            return "give_up"
    return "none" if view.in_service_here else "restore"


def candidates_in_order(view: View, cold: bool = True, placed: bool = True) -> list[str]:
    """Alive, eligible, not failed nodes where its dependencies are met (`placed`), by
    priority; at a cold start with the 'last' policy the node that ran it last goes first.
    With failover blocked only that node (or, if none is known, the highest-priority node)
    may start it."""
    settings = view.settings
    by_priority = [e.node for e in sorted(settings.equivalencies, key=lambda e: e.priority)]
    eligible = [n for n in by_priority if n in view.alive and n not in view.failed_on
                and (not placed or view.allowed is None or n in view.allowed)]
    first = view.last_owner if cold and settings.start_policy == "last" else None
    if first in eligible:
        eligible.remove(first)
        eligible.insert(0, first)
    if not settings.failover:
        allowed = first or (by_priority[0] if by_priority else None)
        return [n for n in eligible if n == allowed]
    return eligible
