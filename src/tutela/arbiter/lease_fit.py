"""Which lease a node's watchdog allows: the pure rule behind `settings.lease_duration: auto`.

A Linux watchdog counts whole seconds and cannot be set below its driver's minimum (softdog
1 s, iTCO 2 s); the lab's emulated one takes fractions (minimum 0). An owner arms it with
the timeout W the lease asks for (`LeaseTiming.watchdog_timeout`), which the device rounds
up. The lease is safe with any W (the owner pets only while more than W is left), but a W
above the lease's max remove time would make one lost renewal round stop the pets and start
a self-fence. So a lease fits a device when the rounded W is within the max remove time,
and `auto` is the shortest lease, in hundredths of a second and no shorter than the
default 1 s, that fits every node's device with REMOVE_ALLOWANCE to spare
(docs/failover.md, "Lease and watchdog").
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tutela.arbiter.timing import LeaseTiming

DEFAULT_LEASE = 1.0
"""Seconds: the lease `auto` gives nodes whose watchdogs take fractions of a second."""
REMOVE_ALLOWANCE = 0.04
"""Seconds of max remove time `auto` keeps beyond W: the late reply of a renewal round after
a lost one. The default 1 s lease with its 0.4 s W has exactly this."""
LONGEST_AUTO = 600.0
"""Seconds: `auto` gives up beyond this (no watchdog needs it; a broken report might)."""


def device_timeout(wanted: float, min_timeout: float) -> float:
    """The timeout a device with `min_timeout` (0: fractional) sets when asked for `wanted`."""
    if min_timeout <= 0:
        return wanted
    return float(max(math.ceil(min_timeout), math.ceil(wanted)))


def armed_timeout(timing: LeaseTiming, min_timeout: float) -> float:
    """W in effect on a node with that device: what arming for `timing` sets."""
    return device_timeout(timing.watchdog_timeout, min_timeout)


def fits(timing: LeaseTiming, min_timeout: float, allowance: float = 0.0) -> bool:
    """Whether a device with `min_timeout` can fence an owner of `timing`'s lease in time."""
    return armed_timeout(timing, min_timeout) + allowance <= timing.max_remove_time + 1e-9


def auto_lease(min_timeouts: Iterable[float], drift: float = LeaseTiming.drift) -> float:
    """The shortest lease (hundredths of a second, >= DEFAULT_LEASE) every device fits.
    ValueError if none up to LONGEST_AUTO does."""
    slowest = max(min_timeouts, default=0.0)
    hundredths = round(DEFAULT_LEASE * 100)
    while hundredths <= LONGEST_AUTO * 100:
        timing = LeaseTiming.for_duration(hundredths / 100, drift)
        if fits(timing, slowest, REMOVE_ALLOWANCE):
            return timing.duration
        hundredths += 1
    raise ValueError(f"no lease up to {LONGEST_AUTO:g}s fits a watchdog whose shortest "
                     f"timeout is {slowest:g}s")


def shortest_fitting(min_timeout: float, drift: float = LeaseTiming.drift) -> float:
    """The lease to name in an error: what `auto` would give for this one device."""
    return auto_lease([min_timeout], drift)
