"""Lease timing: the derived bounds and the validation that keeps them safe.

The central inequality: a holder's lease, at worst, ends before any voter's grant can.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tutela.arbiter.timing import LeaseTiming, min_margin, timing_problems


def test_defaults_and_derived_values() -> None:
    t = LeaseTiming()
    assert (t.duration, t.drift, t.margin) == (1.0, 0.01, 0.05)
    assert t.renew_every == 0.25
    assert t.holder_length == pytest.approx(0.94)
    assert t.quiet_period == pytest.approx(1.01)
    assert t.min_margin == pytest.approx(0.01 * 0.99 / 1.01)
    assert t.max_remove_time == pytest.approx(0.44)
    assert t.holder_lease_end(10.0) == pytest.approx(10.94)


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"duration": 0}, "duration must be positive"),
    ({"duration": -1}, "duration must be positive"),
    ({"drift": 0.1}, "drift must be within"),
    ({"drift": -0.01}, "drift must be within"),
    ({"margin": 0.0}, "margin must exceed"),
    ({"margin": 0.0098}, "margin must exceed"),  # just below L rho (1-rho)/(1+rho)
    ({"margin": 0.6}, "less than two renewal periods"),
    ({"duration": math.nan}, "finite"),
    ({"margin": math.inf}, "finite"),
])
def test_invalid_timing_is_refused(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        LeaseTiming(**kwargs)


def test_drift_zero_needs_only_a_positive_margin() -> None:
    assert LeaseTiming(drift=0.0, margin=1e-6).min_margin == 0.0
    assert timing_problems(1.0, 0.0, 0.0)


def test_problems_are_listed_for_config_validation() -> None:
    assert timing_problems(1.0, 0.01, 0.05) == []
    assert len(timing_problems(-1.0, 0.5, 0.05)) == 2


def _timing(duration: float, drift: float, share: float) -> LeaseTiming:
    """A valid timing whose margin sits `share` of the way through its allowed range."""
    low, high = min_margin(duration, drift), duration * (0.5 - drift)
    return LeaseTiming(duration, drift, low + share * (high - low))


valid_timings = st.builds(_timing, st.floats(0.01, 100.0), st.floats(0.0, 0.0999),
                          st.floats(0.001, 0.999))


@given(valid_timings)
def test_holder_lease_always_ends_before_every_voter_grant(t: LeaseTiming) -> None:
    """Worst case in TRUE time: the holder's clock slowest (its lease lasts longest), the
    voter's clock fastest (its grant lasts shortest) and the request arrives instantly."""
    holder_true_length = t.holder_length / (1 - t.drift)
    voter_true_length = t.duration / (1 + t.drift)
    assert holder_true_length < voter_true_length


@given(valid_timings)
def test_quiet_period_outlasts_any_lease_granted_before_a_restart(t: LeaseTiming) -> None:
    """A lease backed by a grant made before the restart lasts at most holder_length/(1-rho)
    true seconds from its round's send; the quiet period lasts at least Q/(1+rho) >= L."""
    assert t.quiet_period / (1 + t.drift) >= t.holder_length / (1 - t.drift)
