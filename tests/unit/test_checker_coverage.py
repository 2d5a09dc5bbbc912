"""The split-brain checker's coverage verdict alone (times given): it vouches for a window
only when it read every node often enough, and says what it missed otherwise."""

from __future__ import annotations

import os
import signal
import subprocess

from helpers import wait_until
from tutela.lab.checker import GAP_PERIODS, PERIOD, Coverage, SplitBrainChecker, exited


def test_enough_complete_samples_close_together_vouch_for_the_window() -> None:
    seen = Coverage(started=100.0, min_samples=3, max_gap=1.0)
    for now in (100.0, 100.5, 101.4, 102.0):
        seen.complete(now)
    assert seen.problems(102.5) == []
    assert (seen.samples, round(seen.longest_gap, 3)) == (4, 0.9)


def test_a_failed_read_is_a_problem_even_with_every_sample_in_time() -> None:
    seen = Coverage(started=0.0, min_samples=1, max_gap=1.0)
    seen.complete(0.1)
    seen.failed("could not read node2, which is not off: no such namespace")
    seen.complete(0.2)
    assert seen.problems(0.3) == ["could not read node2, which is not off: no such namespace"]


def test_too_few_samples_and_a_long_gap_are_problems() -> None:
    seen = Coverage(started=0.0, min_samples=2, max_gap=1.0)
    seen.complete(0.5)
    assert seen.problems(0.9) == ["only 1 complete sample(s), fewer than 2"]
    assert seen.problems(2.0) == ["only 1 complete sample(s), fewer than 2",
                                  "1.500s without a complete sample, more than max_gap 1s"]
    seen.complete(1.4)  # a gap counts once it ends, too
    assert round(seen.longest_gap, 3) == 0.9


def test_a_gap_is_not_split_by_asking_for_problems_midway() -> None:
    seen = Coverage(started=0.0, min_samples=1, max_gap=1.0)
    seen.complete(0.0)
    seen.problems(0.8)  # a look in the middle of a gap...
    seen.complete(1.6)  # ...does not hide that it lasted 1.6 s
    assert seen.problems(1.6) == ["1.600s without a complete sample, more than max_gap 1s"]


def test_many_failed_reads_are_counted_not_all_quoted() -> None:
    seen = Coverage(started=0.0, min_samples=0, max_gap=10.0)
    for i in range(8):
        seen.failed(f"read {i}")
    assert seen.problems(1.0) == [f"read {i}" for i in range(5)] + ["... and 3 more failed reads"]


def test_the_default_gap_bound_follows_the_period() -> None:
    def checker(**kwargs: float) -> SplitBrainChecker:
        return SplitBrainChecker(None, "198.51.100.100", "/mnt/x", **kwargs)  # type: ignore[arg-type]

    assert checker().gap_bound == PERIOD * GAP_PERIODS
    assert checker(period=0.02).gap_bound == 0.02 * GAP_PERIODS
    assert checker(period=0.02, max_gap=3.0).gap_bound == 3.0
    assert (checker().samples, checker().longest_gap, checker().blind) == (0, 0.0, [])


def test_a_dying_node_init_counts_as_exited_and_a_running_one_not() -> None:
    """A node powered off mid-read: its PID 1 is a zombie for a moment, /proc/PID/mounts
    answers EINVAL, and that is no blind read (nothing of it can hold a mount)."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert not exited(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        wait_until(lambda: exited(child.pid), timeout=10, what="the child to be a zombie")
    finally:
        child.kill()
        child.wait()
    assert exited(child.pid)  # reaped: gone
