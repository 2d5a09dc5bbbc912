"""Failover damping (engine.damping), pure: a history of failovers and `now` in, a hold out."""

from __future__ import annotations

import pytest

from tutela.engine.damping import Failovers, History, Hold, hold, recent, record, since
from tutela.model.config import ClusterSettings, FailoverDamping

DEFAULTS = ClusterSettings().failover_damping


def flap(rule: FailoverDamping, every: float, during: float) -> list[float]:
    """A hierarchy whose owner is lost every `every` seconds for `during` seconds: the
    times at which a node takes it over (those the hold lets through)."""
    history: History = ()
    taken = []
    now = 0.0
    while now < during:
        if hold(history, now, rule) is None:
            history = record(history, now, rule)
            taken.append(now)
        now += every
    return taken


def test_the_defaults_stop_a_flapping_link_after_three_failovers() -> None:
    # the test campaign's link: 26 failovers in 60 s without damping
    assert len(flap(DEFAULTS, every=60 / 26, during=60)) == 3


def test_the_first_failovers_of_a_real_failure_are_never_held() -> None:
    # a crash, then the next node failing the restore too, then a switchback: 3 moves
    history: History = ()
    for now in (0.0, 5.0, 40.0):
        assert hold(history, now, DEFAULTS) is None
        history = record(history, now, DEFAULTS)


def test_a_hold_ends_hold_seconds_after_the_last_failover_and_flapping_stays_damped() -> None:
    rule = FailoverDamping(failovers=3, window=600, hold=300)
    taken = flap(rule, every=2.0, during=1000)
    # after the hold the window still holds the first three: the next one is held again at
    # once; once they left the window two go through before the third starts a hold
    assert taken == [0.0, 2.0, 4.0, 304.0, 604.0, 606.0, 906.0]


def test_the_hold_says_how_many_and_until_when() -> None:
    rule = FailoverDamping(failovers=2, window=60, hold=30)
    history = record(record((), 100.0, rule), 110.0, rule)
    held = hold(history, 111.0, rule)
    assert held is not None and (held.failovers, held.until) == (2, 140.0)
    assert hold(history, 140.0, rule) is None


def test_failovers_further_apart_than_the_window_do_not_count() -> None:
    rule = FailoverDamping(failovers=2, window=60, hold=30)
    history = record(record((), 0.0, rule), 61.0, rule)
    assert history == (61.0,)  # the old one is forgotten when the new one is recorded
    assert hold((0.0, 61.0), 62.0, rule) is None
    assert recent((0.0, 30.0, 61.0), 70.0, rule) == (30.0, 61.0)


def test_hold_zero_turns_damping_off() -> None:
    rule = FailoverDamping(failovers=1, window=60, hold=0)
    assert len(flap(rule, every=1.0, during=10)) == 10


def test_an_administrator_clear_drops_the_failovers_before_it() -> None:
    rule = FailoverDamping(failovers=2, window=60, hold=30)
    history = (10.0, 12.0)
    assert hold(history, 13.0, rule) is not None
    assert hold(since(history, cleared_at=13.0), 13.0, rule) is None


@pytest.mark.parametrize("bad", [{"failovers": 0}, {"window": 0}, {"hold": -1}])
def test_bad_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        FailoverDamping.model_validate(bad)


RULE = FailoverDamping(failovers=2, window=600, hold=300)


def test_a_node_counts_its_takeovers_from_another_node_and_holds_after_the_rule() -> None:
    failovers = Failovers()
    assert failovers.taken_over("app", "node1", now=10.0, rule=RULE) is None
    held = failovers.taken_over("app", "node2", now=20.0, rule=RULE)
    assert held == Hold(failovers=2, until=320.0)
    assert failovers.hold("app", 319.0, RULE) == held
    assert failovers.report(["app", "db"]) == {"app": [10.0, 20.0]}


def test_starting_it_where_nobody_ran_it_is_no_failover() -> None:
    failovers = Failovers()
    for now in (1.0, 2.0, 3.0):
        assert failovers.taken_over("app", None, now, RULE) is None
    assert failovers.report(["app"]) == {}


def test_the_owners_report_is_adopted_less_what_an_administrator_cleared() -> None:
    failovers = Failovers()
    failovers.adopt("app", (10.0, 20.0))
    assert failovers.hold("app", 30.0, RULE) is not None
    failovers.clear("app", now=30.0)
    assert failovers.hold("app", 30.0, RULE) is None
    failovers.adopt("app", (10.0, 20.0))  # a heartbeat sent before the owner heard of it
    assert failovers.hold("app", 31.0, RULE) is None


def test_the_takeover_an_administrators_restore_brings_is_no_failover() -> None:
    failovers = Failovers()
    failovers.adopt("app", (10.0, 20.0))
    failovers.clear("app", now=30.0)
    assert failovers.taken_over("app", "node1", now=31.0, rule=RULE) is None
    assert failovers.report(["app"]) == {}
    assert failovers.taken_over("app", "node2", now=40.0, rule=RULE) is None  # counted
    assert failovers.report(["app"]) == {"app": [40.0]}


def test_an_order_is_spent_once_a_node_runs_it() -> None:
    failovers = Failovers()
    failovers.clear("app", now=1.0)
    failovers.running("app")
    failovers.taken_over("app", "node1", now=2.0, rule=RULE)
    assert failovers.report(["app"]) == {"app": [2.0]}
