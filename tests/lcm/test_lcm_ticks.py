"""The wall-clock grid that periodic timers (heartbeat rounds, decisions) fire on."""

from __future__ import annotations

import asyncio
import math
import time

from hypothesis import given
from hypothesis import strategies as st

from tutela.lcm.ticks import grid_delay, next_tick

walls = st.floats(min_value=0, max_value=4e9, allow_nan=False)
periods = st.sampled_from([0.05, 0.1, 0.2, 0.25, 1.0, 2.0])


@given(walls, periods, st.floats(min_value=0, max_value=2))
def test_the_delay_lands_on_the_grid_no_sooner_than_the_gap(wall: float, period: float,
                                                             gap_periods: float) -> None:
    min_gap = gap_periods * period
    delay = grid_delay(wall, period, min_gap)
    slack = 1e-6 * max(1.0, wall) / 1e3  # float rounding of a wall clock in seconds
    assert min_gap - slack <= delay < min_gap + period + slack
    ticks = (wall + delay) / period
    assert math.isclose(ticks, round(ticks), abs_tol=1e-6)


@given(walls, periods)
def test_two_timers_of_one_period_pick_the_same_tick(wall: float, period: float) -> None:
    # Two timers computed a moment apart share the tick, so one wake-up serves both.
    first = wall + grid_delay(wall, period, period / 2)
    second = wall + 1e-4 + grid_delay(wall + 1e-4, period, period / 2)
    assert math.isclose(first, second, abs_tol=1e-6) or abs(first - second) >= period - 1e-3


def test_next_tick_is_in_loop_time_on_the_wall_grid() -> None:
    """Clocks read before and after bracket the ones next_tick read, however long the
    thread was held up in between: the tick is 0.1-0.3 s on, at a multiple of 0.2 s of the
    wall clock (orderings, not a bound on elapsed time)."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop_before, wall_before = loop.time(), time.time()
        at = next_tick(0.2)
        loop_after, wall_after = loop.time(), time.time()
        assert loop_before + 0.1 - 1e-6 <= at <= loop_after + 0.3
        # The tick's wall time lies in [earliest, latest]: a multiple of 0.2 must be there.
        earliest, latest = at - loop_after + wall_before, at - loop_before + wall_after
        grid_point = math.ceil((earliest - 1e-6) / 0.2) * 0.2
        assert grid_point <= latest + 1e-6, (earliest, latest)

    asyncio.run(main())
