"""Failover damping: a hierarchy that keeps failing over is held where it is for a while.

Pure: a hierarchy's history is the tuple of its recent automatic failovers (wall-clock
seconds, since the history travels between nodes in heartbeats), and every function is
handed `now` on the same clock. The rule (`settings.failover_damping`): after `failovers`
failovers within `window` seconds, no node takes it over automatically until `hold` seconds
after the last of them (docs/failover.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class Failovers:
    """One node's knowledge of the recent failovers of every hierarchy: what it recorded
    itself, what the owners report, what an administrator cleared. Every call is handed
    `now` (wall clock) and the rule in force."""

    history: dict[str, History] = field(default_factory=dict)
    cleared_at: dict[str, float] = field(default_factory=dict)
    """Root -> when an administrator cleared its hold (`tutela restore`)."""
    ordered: set[str] = field(default_factory=set)
    """Roots an administrator's restore set going: their next takeover is an order, not a
    failover."""

    def adopt(self, root: str, reported: History) -> None:
        """The owner's report of `root`'s failovers, less those before a clear."""
        self.history[root] = since(reported, self.cleared_at.get(root, 0.0))

    def clear(self, root: str, now: float) -> None:
        """An administrator's restore: the hold ends, and the takeover it brings is no
        failover."""
        self.cleared_at[root] = now
        self.history.pop(root, None)
        self.ordered.add(root)

    def running(self, root: str) -> None:
        """A node runs it: a clear's order is spent."""
        self.ordered.discard(root)

    def taken_over(self, root: str, previous: str | None, now: float,
                   rule: FailoverDamping) -> Hold | None:
        """This node took `root` over from `previous` (None: from nobody it knows): a
        failover, unless an administrator ordered it. The hold it starts, if any."""
        ordered = root in self.ordered
        self.running(root)
        if previous is None or ordered:
            return None
        self.history[root] = record(since(self.history.get(root, ()),
                                          self.cleared_at.get(root, 0.0)), now, rule)
        return hold(self.history[root], now, rule)

    def hold(self, root: str, now: float, rule: FailoverDamping) -> Hold | None:
        return hold(self.history.get(root, ()), now, rule)

    def report(self, roots: list[str]) -> dict[str, list[float]]:
        """For heartbeats: the failovers of `roots` (those held here) that have any."""
        return {root: list(self.history[root]) for root in roots if self.history.get(root)}
