"""The watchdog rule: pet only with more than W of every lease left; disarm only when idle."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tutela.arbiter.timing import LeaseTiming
from tutela.arbiter.watchdog import watchdog_action

W = 0.4


def test_pets_while_every_lease_has_more_than_the_timeout_left() -> None:
    assert watchdog_action([10.9, 11.0], now=10.0, timeout=W, still_in_service=True) == "pet"


def test_starves_when_any_lease_is_closer_to_its_end_than_the_timeout() -> None:
    assert watchdog_action([10.3, 11.0], now=10.0, timeout=W, still_in_service=True) == "starve"


def test_keeps_starving_while_a_hierarchy_without_lease_is_still_in_service() -> None:
    assert watchdog_action([], now=10.0, timeout=W, still_in_service=True) == "starve"


def test_disarms_when_nothing_is_held_and_nothing_runs() -> None:
    assert watchdog_action([], now=10.0, timeout=W, still_in_service=False) == "disarm"


@given(ends=st.lists(st.floats(0, 100), min_size=1, max_size=5), now=st.floats(0, 100),
       in_service=st.booleans())
def test_a_pet_always_leaves_the_reset_before_every_lease_end(
        ends: list[float], now: float, in_service: bool) -> None:
    """The safety argument: petting at `now` makes the watchdog fire at now + W at the
    latest (if no pet follows), which must come before each lease ends."""
    if watchdog_action(ends, now, W, in_service) == "pet":
        assert all(now + W < end for end in ends)


def test_the_default_timeout_survives_one_lost_renewal_round() -> None:
    timing = LeaseTiming()
    assert timing.watchdog_timeout == 0.4
    assert timing.watchdog_timeout <= timing.max_remove_time
    # right after a won round the holder has holder_length left; two renewal periods
    # later (one round lost) it still has more than W, so it keeps petting
    assert timing.holder_length - 2 * timing.renew_every > timing.watchdog_timeout
