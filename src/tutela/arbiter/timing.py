"""Lease timing: duration, clock-drift bound, safety margin and every bound derived from them.

docs/leases.md proves the lease safe under exactly the conditions validated here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_DRIFT = 0.1
"""Clocks worse than 10 % off true rate are broken, not drifting; refuse to reason about them."""
RENEW_AT_LEAST_EVERY = 0.25
"""Seconds: a longer lease is still renewed four times a second, so that one lost round
costs the same 0.25 s whatever the lease, and a whole-second watchdog fits a lease of 1.61 s
instead of 2.2 s (docs/leases.md, "Watchdog")."""
WATCHDOG_SHORTEST_LEASE = 1.0
"""Seconds: the shortest lease a watchdog fences in time (`lease_duration: auto`'s floor,
the lab's fractional watchdog; a whole-second one needs 1.61 s). A shorter lease has no
watchdog to rely on: it needs a fence agent that cuts the old owner off before a takeover
(the fast profile, docs/leases.md "Fast profile")."""
FAST_PROFILE: dict[str, float | int | str] = {
    "heartbeat_interval": 0.05, "heartbeat_misses": 4, "lease_duration": 0.2,
    "fencing": "agent", "fence_command": "tutela-fence-port {node}"}
"""The fast profile's settings (docs/leases.md, "Fast profile"): failure detection in
0.2 s (as long as the lease, as the defaults' 1 s), a 0.2 s lease renewed every 0.05 s,
and the lab's network fence (a real site puts its switch's fence agent, e.g. fence_ifmib,
in fence_command)."""


@dataclass(frozen=True)
class LeaseTiming:
    """Timing of one cluster's leases; all values in seconds of a node's monotonic clock."""

    duration: float = 1.0
    """L: a voter's grant lasts L of the voter's own clock from the request's receipt."""
    drift: float = 0.01
    """rho: every clock advances at a rate within [1 - rho, 1 + rho] of true time."""
    margin: float = 0.05
    """m: taken off the holder's lease; must exceed min_margin (see docs/leases.md)."""

    @classmethod
    def for_duration(cls, duration: float, drift: float = 0.01) -> LeaseTiming:
        """The timing of a cluster whose lease is `duration`: the default margin, or twice
        the drift's minimum for leases so long that the default is too thin (above ~2.5 s
        at 1 % drift)."""
        return cls(duration, drift, max(cls.margin, 2 * min_margin(duration, drift)))

    def __post_init__(self) -> None:
        problems = timing_problems(self.duration, self.drift, self.margin)
        if problems:
            raise ValueError("invalid lease timing: " + "; ".join(problems))

    @property
    def renew_every(self) -> float:
        """The holder starts a renewal round this often: L/4, at most 0.25 s."""
        return min(self.duration / 4, RENEW_AT_LEAST_EVERY)

    @property
    def holder_length(self) -> float:
        """How long a won round lets the holder own the lease, in its clock: L(1-rho) - m."""
        return self.duration * (1 - self.drift) - self.margin

    @property
    def quiet_period(self) -> float:
        """A (re)started voter refuses every grant this long after its start: L(1+rho)."""
        return self.duration * (1 + self.drift)

    @property
    def min_margin(self) -> float:
        """The margin must be strictly above L rho (1-rho)/(1+rho) for holder < voter."""
        return min_margin(self.duration, self.drift)

    @property
    def max_remove_time(self) -> float:
        """The longest remove that survives one lost renewal round without must-release."""
        return self.holder_length - 2 * self.renew_every

    @property
    def watchdog_timeout(self) -> float:
        """W: the watchdog timeout an owner arms, and the time its self-fencing may take.

        Below max_remove_time, so one lost renewal round neither stops the pets nor starts
        a self-fence; 0.4 L (0.4 s by default) leaves a remove that long before the lease
        ends (docs/leases.md, "Watchdog")."""
        return min(0.4 * self.duration, self.max_remove_time)

    def holder_lease_end(self, sent_at: float) -> float:
        """The holder's lease end after a round it sent at `sent_at` (its clock) was won."""
        return sent_at + self.holder_length


def min_margin(duration: float, drift: float) -> float:
    return duration * drift * (1 - drift) / (1 + drift)


def timing_problems(duration: float, drift: float, margin: float) -> list[str]:
    """Why these values cannot be used (empty when they can); for config validation too."""
    if not all(math.isfinite(v) for v in (duration, drift, margin)):
        return ["duration, drift and margin must be finite numbers"]
    problems = []
    if duration <= 0:
        problems.append(f"duration must be positive (got {duration})")
    if not 0 <= drift < MAX_DRIFT:
        problems.append(f"drift must be within [0, {MAX_DRIFT}) (got {drift})")
    if problems:
        return problems
    if margin <= min_margin(duration, drift):
        problems.append(f"margin must exceed L*drift*(1-drift)/(1+drift) = "
                        f"{min_margin(duration, drift):.6g} s (got {margin})")
    # One renewal round may be lost and the next still land before the lease ends.
    if duration * (1 - drift) - margin < duration / 2:
        problems.append(f"margin leaves the holder less than two renewal periods "
                        f"(L(1-drift) - margin must be at least L/2; got margin {margin})")
    return problems
