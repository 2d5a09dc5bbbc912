"""Replay protection: incarnations, the seq window, reordering across paths; drop counters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.lcm.frame import REASONS, FrameRejected, Sealer, open_frame
from tutela.lcm.replay import WINDOW, DropCounters, ReplayGuard

KEY = bytes(range(32))


def rejected(guard: ReplayGuard, sender: str, incarnation: int, seq: int) -> str:
    with pytest.raises(FrameRejected) as caught:
        guard.accept(sender, incarnation, seq)
    found: str = caught.value.reason
    return found


def test_identical_frame_twice_is_a_replay() -> None:
    frame = Sealer(KEY, "demo", "alpha", 1).seal("beta", "ping", {})
    guard = ReplayGuard()
    env = open_frame(KEY, frame, "demo", "beta")
    assert guard.accept(env.sender, env.incarnation, env.seq) is True
    again = open_frame(KEY, frame, "demo", "beta")
    assert rejected(guard, again.sender, again.incarnation, again.seq) == "replay"


def test_first_frame_and_new_incarnation_are_reported() -> None:
    guard = ReplayGuard()
    assert guard.accept("alpha", 1, 5) is True
    assert guard.accept("alpha", 1, 6) is False
    assert guard.accept("alpha", 2, 1) is True  # the peer restarted: seqs begin again
    assert guard.known("alpha") == (2, 1)


def test_lower_incarnation_is_stale() -> None:
    guard = ReplayGuard()
    guard.accept("alpha", 3, 1)
    assert rejected(guard, "alpha", 2, 100) == "stale-incarnation"


def test_senders_are_independent() -> None:
    guard = ReplayGuard()
    guard.accept("alpha", 1, 1)
    guard.accept("gamma", 1, 1)
    assert rejected(guard, "alpha", 1, 1) == "replay"
    assert guard.known("gamma") == (1, 1)


def test_reordered_within_the_window_accepted_once() -> None:
    guard = ReplayGuard()
    for seq in (10, 12, 11, 9, 14):
        guard.accept("alpha", 1, seq)
    for seq in (9, 10, 11, 12, 14):
        assert rejected(guard, "alpha", 1, seq) == "replay"
    guard.accept("alpha", 1, 13)  # never seen, still inside the window


def test_older_than_the_window_is_rejected() -> None:
    guard = ReplayGuard()
    guard.accept("alpha", 1, 1)
    guard.accept("alpha", 1, 1 + WINDOW)
    assert rejected(guard, "alpha", 1, 1) == "replay"
    guard.accept("alpha", 1, 2)  # the oldest seq still inside
    guard.accept("alpha", 1, 10**12)  # a big jump clears the window
    assert rejected(guard, "alpha", 1, 10**12 - WINDOW) == "replay"
    guard.accept("alpha", 1, 10**12 - WINDOW + 1)


def test_forget() -> None:
    guard = ReplayGuard()
    guard.accept("alpha", 5, 1)
    guard.forget("alpha")
    guard.forget("never-seen")
    assert guard.known("alpha") is None
    assert guard.accept("alpha", 1, 1) is True  # a re-added node starts afresh


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(0)


@given(st.lists(st.integers(1, 3000), max_size=200), st.integers(1, 64))
def test_window_matches_a_reference(seqs: list[int], window: int) -> None:
    """Accepted iff never accepted before and within `window` of the highest seen so far."""
    guard = ReplayGuard(window)
    accepted: set[int] = set()
    for seq in seqs:
        fresh = seq not in accepted and (not accepted or seq > max(accepted) - window)
        try:
            guard.accept("alpha", 1, seq)
        except FrameRejected as error:
            assert error.reason == "replay"
            assert not fresh
        else:
            assert fresh
            accepted.add(seq)


@settings(deadline=None)
@given(st.permutations(range(1, 100)), st.integers(0, 3))
def test_frames_over_several_paths_each_accepted_once(order: list[int], copies: int) -> None:
    # Every frame delivered 1 + copies times, the copies in any order within the window.
    guard = ReplayGuard()
    deliveries = order + order[: copies * 10]
    accepted = []
    for seq in deliveries:
        try:
            guard.accept("alpha", 1, seq)
            accepted.append(seq)
        except FrameRejected as error:
            assert error.reason == "replay"
    assert sorted(accepted) == list(range(1, 100))


def test_drop_counters() -> None:
    counters = DropCounters()
    assert counters.snapshot() == dict.fromkeys(REASONS, 0)
    counters.count("bad-mac")
    counters.count("bad-mac")
    counters.count("replay", 3)
    counters.count("wrong-sender")
    snap = counters.snapshot()
    assert snap["bad-mac"] == 2
    assert snap["replay"] == 3
    assert snap["wrong-sender"] == 1
    assert list(snap)[: len(REASONS)] == list(REASONS)


def test_seen_asks_without_recording() -> None:
    guard = ReplayGuard()
    assert not guard.seen("alpha", 1, 5)  # nothing from alpha yet
    guard.accept("alpha", 1, 5)
    guard.accept("alpha", 1, 7)
    assert guard.seen("alpha", 1, 5) and guard.seen("alpha", 1, 7)
    assert not guard.seen("alpha", 1, 6)  # a gap within the window: not yet accepted
    assert not guard.seen("alpha", 1, 8) and not guard.seen("alpha", 2, 5)
    assert not guard.seen("alpha", 1, 7 - WINDOW)  # out of the window: accept says why
    guard.accept("alpha", 1, 6)  # seen() recorded nothing
