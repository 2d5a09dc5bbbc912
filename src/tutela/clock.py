"""The clock of every interval a node's safety depends on: leases, their renewals, the
watchdog's pets, the ownership timers around them.

CLOCK_BOOTTIME, not CLOCK_MONOTONIC (Python's `time.monotonic`): on Linux the monotonic
clock stops while the machine is suspended, and a holder resuming from a suspend would find
by it as much lease left as when it stopped, although the voters' grants ran out meanwhile
and another node may own its hierarchies (the simulation's `clock-stop` family shows the two
owners; docs/leases.md "Clocks"). The boot-time clock counts the suspend, so the resumed
holder sees its lease ended and self-fences at its next tick. Both clocks are monotonic and
run at the same rate otherwise; intervals may be taken from either, but values from the two
must never be compared: the cluster's code takes every point in time from `now()`.
"""

from __future__ import annotations

import time


def now() -> float:
    """Seconds since boot, suspends included; never steps back."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)
