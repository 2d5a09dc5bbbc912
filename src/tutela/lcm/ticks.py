"""A wall-clock grid for periodic work: every timer fires on a multiple of its period.

Timers of one daemon, and the heartbeats of every node with a synchronised clock, so fire
together: each wake-up of an idle process costs more than the work it does (0.1-0.3 ms on a VM).
"""

from __future__ import annotations

import asyncio
import math
import time


def grid_delay(wall: float, period: float, min_gap: float) -> float:
    """Seconds from `wall` to the first multiple of `period` at least `min_gap` after it.

    `min_gap` keeps a timer that woke a little before its grid point from firing twice.
    """
    if period <= 0:
        raise ValueError("period must be positive")
    return math.ceil((wall + min_gap) / period) * period - wall


def next_tick(period: float) -> float:
    """Loop time of the next grid point of `period`, at least half a period from now.

    Successive rounds so stay between half and one and a half periods apart, and a round that
    was late (a stalled loop) is not followed by a burst.
    """
    loop = asyncio.get_running_loop()
    return loop.time() + grid_delay(time.time(), period, period / 2)
