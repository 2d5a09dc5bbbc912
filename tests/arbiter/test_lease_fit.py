"""The rule behind `lease_duration: auto`: which lease a watchdog can fence in time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tutela.arbiter.lease_fit import (
    REMOVE_ALLOWANCE,
    armed_timeout,
    auto_lease,
    device_timeout,
    fits,
)
from tutela.arbiter.timing import LeaseTiming

# (shortest timeouts of the nodes' watchdogs, the lease auto gives, W armed on the slowest)
AUTO = [
    ([], 1.0, 0.4),            # no node yet: the default
    ([0.0], 1.0, 0.4),         # the lab's emulated watchdog takes fractions
    ([0.0, 0.0, 0.0], 1.0, 0.4),
    ([1.0], 1.61, 1.0),        # softdog, most servers' iTCO v3 / SP5100: whole seconds
    ([0.0, 1.0], 1.61, 1.0),   # the slowest node sets it
    ([2.0], 2.62, 2.0),        # iTCO v1/v2 take 2 s at the shortest
    ([1.0, 2.0, 1.0], 2.62, 2.0),
]


@pytest.mark.parametrize(("min_timeouts", "lease", "watchdog"), AUTO)
def test_auto_is_the_shortest_lease_every_watchdog_fits(
        min_timeouts: list[float], lease: float, watchdog: float) -> None:
    assert auto_lease(min_timeouts) == lease
    timing = LeaseTiming.for_duration(lease)
    slowest = max(min_timeouts, default=0.0)
    assert armed_timeout(timing, slowest) == watchdog
    assert fits(timing, slowest, REMOVE_ALLOWANCE)
    shorter = LeaseTiming.for_duration(round(lease - 0.01, 2))
    assert lease == 1.0 or not fits(shorter, slowest, REMOVE_ALLOWANCE)


def test_the_old_default_lease_cannot_be_fenced_by_a_whole_second_watchdog() -> None:
    assert not fits(LeaseTiming.for_duration(1.0), 1.0)
    assert fits(LeaseTiming.for_duration(1.0), 0.0)


@pytest.mark.parametrize(("wanted", "min_timeout", "armed"), [
    (0.4, 0.0, 0.4), (0.4, 1.0, 1.0), (1.2, 1.0, 2.0), (0.64, 2.0, 2.0), (3.0, 1.0, 3.0)])
def test_a_linux_device_rounds_up_to_whole_seconds_and_its_minimum(
        wanted: float, min_timeout: float, armed: float) -> None:
    assert device_timeout(wanted, min_timeout) == armed


def test_renewals_stay_four_a_second_for_long_leases() -> None:
    assert LeaseTiming.for_duration(1.0).renew_every == 0.25
    assert LeaseTiming.for_duration(0.4).renew_every == 0.1
    assert LeaseTiming.for_duration(1.61).renew_every == 0.25
    assert LeaseTiming.for_duration(30.0).renew_every == 0.25


@given(st.lists(st.integers(min_value=0, max_value=30).map(float), max_size=5))
def test_auto_always_fits_with_one_lost_round_to_spare(min_timeouts: list[float]) -> None:
    timing = LeaseTiming.for_duration(auto_lease(min_timeouts))
    for shortest in min_timeouts:
        # The watchdog fires before the lease ends, and one lost renewal round neither
        # stops the pets nor starts a self-fence.
        assert armed_timeout(timing, shortest) + REMOVE_ALLOWANCE <= (
            timing.holder_length - 2 * timing.renew_every + 1e-9)
