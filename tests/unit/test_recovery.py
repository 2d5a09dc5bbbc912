"""Local recovery policy: N attempts within a window, then give up."""

from __future__ import annotations

from tutela.engine.recovery import RecoveryTracker
from tutela.model.config import RecoveryPolicy


def test_gives_up_after_attempts_within_window() -> None:
    tracker = RecoveryTracker(RecoveryPolicy(attempts=2, window=60))
    assert tracker.on_failure(0.0) == "recover"
    assert tracker.on_failure(10.0) == "recover"
    assert tracker.on_failure(20.0) == "give_up"


def test_old_attempts_leave_the_window() -> None:
    tracker = RecoveryTracker(RecoveryPolicy(attempts=2, window=60))
    assert tracker.on_failure(0.0) == "recover"
    assert tracker.on_failure(10.0) == "recover"
    assert tracker.on_failure(61.0) == "recover"  # the attempt at 0 s has left the window
    assert tracker.attempts_in_window == 2


def test_zero_attempts_fails_at_once() -> None:
    assert RecoveryTracker(RecoveryPolicy(attempts=0)).on_failure(0.0) == "give_up"
