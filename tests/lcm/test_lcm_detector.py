"""Failure detector: path and node states, event times, the detection bound, properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.lcm.detector import Event, EventKind, FailureDetector, PathId

A1: PathId = ("alpha", "tcp:198.51.100.11-198.51.100.12")
A2: PathId = ("alpha", "tty:/dev/ttyS0")
B1: PathId = ("beta", "tcp:203.0.113.11-203.0.113.12")


def detector(*paths: PathId) -> FailureDetector:
    d = FailureDetector(0.2, 5)
    for path in paths:
        d.add_path(path, 0.0)
    return d


def ev(kind: EventKind, path: PathId, at: float, node_event: bool = False) -> Event:
    return Event(kind, path[0], None if node_event else path[1], at)


# --- unit tests -------------------------------------------------------------------------

def test_defaults_give_one_second() -> None:
    assert FailureDetector(0.2, 5).timeout == pytest.approx(1.0)
    with pytest.raises(ValueError):
        FailureDetector(0, 5)
    with pytest.raises(ValueError):
        FailureDetector(0.2, 0)


def test_new_timing_counts_from_the_last_heartbeat() -> None:
    d = detector(A1)
    d.heard(A1, 10.0)
    assert d.next_deadline() == pytest.approx(11.0)
    d.set_timing(0.2, 70)  # an applied change (an imported MEMBER_TIMEOUT of 14 s)
    assert d.next_deadline() == pytest.approx(24.0)
    assert d.tick(12.0) == []
    d.set_timing(0.2, 5)
    assert d.tick(12.0) == [ev("path-down", A1, 11.0), ev("node-down", A1, 11.0, True)]
    with pytest.raises(ValueError):
        d.set_timing(0.2, 0)


def test_new_paths_are_dead_until_heard() -> None:
    d = detector(A1)
    assert d.path_state(A1) == "DEAD"
    assert d.node_state("alpha") == "DEAD"
    assert d.last_heard(A1) is None
    assert d.next_deadline() is None
    assert d.tick(100.0) == []  # never heard: no event, ever


def test_node_without_paths_is_dead() -> None:
    d = detector()
    assert d.node_state("nobody") == "DEAD"
    assert d.paths_of("nobody") == ()
    assert d.path_state(("nobody", "x")) == "DEAD"


def test_first_heartbeat_brings_path_and_node_up() -> None:
    d = detector(A1, A2)
    assert d.heard(A1, 1.0) == [ev("path-up", A1, 1.0), ev("node-up", A1, 1.0, True)]
    assert d.heard(A2, 1.1) == [ev("path-up", A2, 1.1)]
    assert d.heard(A1, 1.2) == []
    assert d.node_state("alpha") == "ALIVE"
    assert d.last_heard(A1) == 1.2
    assert d.alive_nodes() == {"alpha"}


def test_path_down_time_is_the_moment_of_death_not_the_tick() -> None:
    d = detector(A1)
    d.heard(A1, 2.0)
    assert d.next_deadline() == pytest.approx(3.0)
    assert d.tick(2.99) == []
    assert d.tick(7.0) == [ev("path-down", A1, 3.0), ev("node-down", A1, 3.0, True)]
    assert d.next_deadline() is None


def test_dead_exactly_at_the_deadline() -> None:
    d = detector(A1)
    d.heard(A1, 0.0)
    deadline = d.next_deadline()
    assert deadline is not None
    assert [e.kind for e in d.tick(deadline)] == ["path-down", "node-down"]


def test_node_dies_with_its_last_path() -> None:
    d = detector(A1, A2, B1)
    d.heard(A1, 0.0)
    d.heard(A2, 0.5)
    d.heard(B1, 0.5)
    assert d.tick(1.2) == [ev("path-down", A1, 1.0)]
    assert d.node_state("alpha") == "ALIVE"
    assert d.tick(1.6) == [ev("path-down", A2, 1.5), ev("node-down", A2, 1.5, True),
                           ev("path-down", B1, 1.5), ev("node-down", B1, 1.5, True)]


def test_late_heartbeat_reports_the_death_it_ended() -> None:
    # tick() was not called in time: heard() still reports the outage, then the recovery.
    d = detector(A1)
    d.heard(A1, 0.0)
    assert d.heard(A1, 1.5) == [ev("path-down", A1, 1.0), ev("node-down", A1, 1.0, True),
                                ev("path-up", A1, 1.5), ev("node-up", A1, 1.5, True)]


def test_remove_last_alive_path_kills_the_node() -> None:
    d = detector(A1, A2)
    d.heard(A1, 0.0)
    assert d.remove_path(A2) == []  # was DEAD: the node does not change
    assert d.remove_path(A1, 0.5) == [ev("node-down", A1, 0.5, True)]
    assert d.paths_of("alpha") == ()
    assert d.node_state("alpha") == "DEAD"
    assert d.remove_path(A1) == []


def test_remove_without_now_uses_the_latest_time() -> None:
    d = detector(A1, A2)
    d.heard(A1, 0.0)
    d.heard(A2, 0.3)
    assert d.remove_path(A1) == []
    assert d.remove_path(A2) == [ev("node-down", A2, 0.3, True)]


def test_adding_a_known_path_changes_nothing() -> None:
    d = detector(A1)
    d.heard(A1, 0.0)
    d.add_path(A1, 0.5)
    assert d.path_state(A1) == "ALIVE"
    assert d.paths_of("alpha") == (A1,)


def test_adding_a_path_to_a_live_node_emits_nothing() -> None:
    d = detector(A1)
    d.heard(A1, 0.0)
    d.add_path(A2, 0.1)
    assert d.node_state("alpha") == "ALIVE"
    assert d.paths_of("alpha") == (A1, A2)
    assert d.heard(A2, 0.2) == [ev("path-up", A2, 0.2)]


def test_unknown_path_is_ignored() -> None:
    d = detector(A1)
    assert d.heard(("ghost", "tcp:x"), 1.0) == []
    assert d.node_state("ghost") == "DEAD"


def test_time_never_goes_back() -> None:
    d = detector(A1)
    d.heard(A1, 5.0)
    d.heard(A1, 4.0)  # a stale stamp counts as the latest time
    assert d.last_heard(A1) == 5.0
    assert d.next_deadline() == pytest.approx(6.0)


# --- properties -------------------------------------------------------------------------

PATHS: list[PathId] = [A1, A2, B1, ("gamma", "tcp:1"), ("gamma", "tcp:2"), ("gamma", "tty:3")]
Schedule = list[tuple[float, PathId]]


@st.composite
def schedules(draw: st.DrawFn) -> tuple[FailureDetector, Schedule]:
    d = FailureDetector(draw(st.sampled_from([0.05, 0.1, 0.2, 0.25, 1.0])),
                        draw(st.integers(1, 6)))
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=len(PATHS),
                          unique=True))
    for path in paths:
        d.add_path(path, 0.0)
    beats = draw(st.lists(st.tuples(st.integers(0, 1000).map(lambda t: t / 100),
                                    st.sampled_from(paths)), max_size=60))
    return d, sorted(beats)


def simulate(d: FailureDetector, beats: Schedule, delay: float) -> list[tuple[float, Event]]:
    """Heartbeats in time order; tick() whenever next_deadline() + delay comes first.

    Returns each event with the time of the call that reported it.
    """
    log: list[tuple[float, Event]] = []
    pending = list(beats)
    while True:
        deadline = d.next_deadline()
        if deadline is not None and (not pending or deadline + delay < pending[0][0]):
            now = deadline + delay
            events = d.tick(now)
            assert any(e.kind == "path-down" for e in events), "next_deadline() was too early"
            log += [(now, e) for e in events]
        elif pending:
            now, path = pending.pop(0)
            log += [(now, e) for e in d.heard(path, now)]
        else:
            return log
        assert_nodes_consistent(d)


def assert_nodes_consistent(d: FailureDetector) -> None:
    for node in {p[0] for p in PATHS}:
        paths = d.paths_of(node)
        all_dead = all(d.path_state(p) == "DEAD" for p in paths)
        assert (d.node_state(node) == "DEAD") == all_dead


def reference(d: FailureDetector, beats: Schedule) -> list[Event]:
    """The events the definition gives, computed from the whole schedule at once."""
    changes: list[tuple[float, int, PathId]] = []  # (time, 0 = down / 1 = up, path)
    for path in {p for _, p in beats}:
        times = [t for t, p in beats if p == path]
        changes.append((times[0], 1, path))
        for before, after in itertools.pairwise(times):
            if before + d.timeout <= after:  # the detector's own expression
                changes += [(before + d.timeout, 0, path), (after, 1, path)]
        changes.append((times[-1] + d.timeout, 0, path))
    events: list[Event] = []
    alive: set[PathId] = set()
    for at, up, (node, name) in sorted(changes):
        node_was_alive = any(p[0] == node for p in alive)
        (alive.add if up else alive.discard)((node, name))
        events.append(Event("path-up" if up else "path-down", node, name, at))
        if node_was_alive != any(p[0] == node for p in alive):
            events.append(Event("node-up" if up else "node-down", node, None, at))
    return events


def key(e: Event) -> tuple[float, str, str, str]:
    return e.at, e.node, e.kind, e.path or ""


@settings(max_examples=100, deadline=None)
@given(schedules(), st.sampled_from([0.0, 0.0, 0.01, 0.3, 2.0]))
def test_events_match_the_definition_whenever_tick_runs(
        setup: tuple[FailureDetector, Schedule], delay: float) -> None:
    d, beats = setup
    log = simulate(d, beats, delay)
    events = [e for _, e in log]
    assert sorted(events, key=key) == sorted(reference(d, beats), key=key)
    # Reported in time order, and each death no later than `delay` after it happened.
    assert [e.at for e in events] == sorted(e.at for e in events)
    for reported, event in log:
        assert event.at <= reported
        if event.kind == "path-down":
            assert reported - event.at <= delay + 1e-9


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([0.05, 0.2, 1.0]), st.integers(1, 6),
       st.lists(st.floats(0.0, 0.99), min_size=1, max_size=80))
def test_no_false_death_while_heartbeats_keep_coming(interval: float, misses: int,
                                                     gaps: list[float]) -> None:
    d = FailureDetector(interval, misses)
    d.add_path(A1, 0.0)
    beats: Schedule = []
    now = 0.0
    for gap in gaps:
        now += gap * interval * misses
        beats.append((now, A1))
    log = simulate(d, beats, 0.0)
    downs = [e for _, e in log if e.kind in ("path-down", "node-down")]
    assert [e.at for e in downs] == [now + d.timeout] * 2  # only after the last heartbeat


@settings(max_examples=50, deadline=None)
@given(schedules(), st.lists(st.floats(0, 12), max_size=30))
def test_node_dead_iff_all_paths_dead_at_any_tick_time(
        setup: tuple[FailureDetector, Schedule], ticks: list[float]) -> None:
    d, beats = setup
    calls = sorted([(t, None) for t in ticks] + [(t, p) for t, p in beats],
                   key=lambda c: c[0])
    for now, path in calls:
        if path is None:
            d.tick(now)
        else:
            d.heard(path, now)
        assert_nodes_consistent(d)
        assert d.alive_nodes() == {n for n, _ in PATHS if d.node_state(n) == "ALIVE"}
