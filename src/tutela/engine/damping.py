"""Failover damping: a hierarchy that keeps failing over is held where it is for a while.

Pure: a hierarchy's history is the tuple of its recent automatic failovers (wall-clock
seconds, since the history travels between nodes in heartbeats), and every function is
handed `now` on the same clock. The rule (`settings.failover_damping`): after `failovers`
failovers within `window` seconds, no node takes it over automatically until `hold` seconds
after the last of them (docs/failover.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from tutela.model.config import FailoverDamping

History = tuple[float, ...]
"""When a hierarchy failed over (wall-clock seconds), oldest first."""


@dataclass(frozen=True)
class Hold:
    """A hierarchy held after repeated failovers."""

    failovers: int
    """Failovers within the window that ends at the last of them."""
    until: float
    """When the hold ends (the history's clock)."""


def record(history: History, now: float, rule: FailoverDamping) -> History:
    """The history with a failover at `now`, less those that no longer count."""
    return (*recent(history, now, rule), now)


def recent(history: History, now: float, rule: FailoverDamping) -> History:
    """The failovers within the window that ends at `now`."""
    return tuple(t for t in history if now - t < rule.window)


def hold(history: History, now: float, rule: FailoverDamping) -> Hold | None:
    """The hold in force at `now`, if any: the last failover was at least the
    `failovers`-th within `window`, and `hold` seconds have not passed since it."""
    if rule.hold <= 0 or len(history) < rule.failovers:
        return None
    last = history[-1]
    counted = sum(1 for t in history if last - t < rule.window)
    if counted < rule.failovers or now >= last + rule.hold:
        return None
    return Hold(counted, last + rule.hold)


def since(history: History, cleared_at: float) -> History:
    """The failovers after an administrator cleared the hold (`tutela restore`)."""
    return tuple(t for t in history if t > cleared_at)
