"""Who acquires, restores or gives up a clustered hierarchy: engine.ownership.decide, pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tutela.engine.ownership import (
    LAST_OWNER_GRACE,
    Verdict,
    View,
    candidates_in_order,
    decide,
    rank_step,
)
from tutela.engine.stuck import Blocked
from tutela.model.config import Equivalency, HierarchySettings

STEP = 0.5


def view(me: str, **changes: Any) -> View:
    settings = HierarchySettings(
        root="app", target="in_service",
        equivalencies=(Equivalency(node="node1", priority=1),
                       Equivalency(node="node2", priority=2),
                       Equivalency(node="node3", priority=3)))
    settings = settings.model_copy(update=changes.pop("settings", {}))
    base = View(me=me, settings=settings, alive=frozenset({"node1", "node2", "node3"}),
                i_hold=False, in_service_here=False, failed_here=False, owner_elsewhere=None,
                failed_on=frozenset(), last_owner=None, vacant_for=0.0)
    return replace(base, **changes)


def test_the_highest_priority_node_acquires_at_once() -> None:
    assert decide(view("node1"), STEP).decision == "acquire"


def test_lower_ranks_wait_their_turn_then_acquire() -> None:
    assert decide(view("node2", vacant_for=0.2), STEP).decision == "wait"
    assert decide(view("node2", vacant_for=0.5), STEP).decision == "acquire"
    assert decide(view("node3", vacant_for=0.9), STEP).decision == "wait"


def test_nobody_acquires_what_another_node_runs() -> None:
    assert decide(view("node1", owner_elsewhere="node2"), STEP).decision == "none"


def test_dead_and_failed_nodes_are_skipped() -> None:
    v = view("node3", alive=frozenset({"node3", "node2"}), failed_on=frozenset({"node2"}))
    assert candidates_in_order(v) == ["node3"]
    assert decide(v, STEP).decision == "acquire"


def test_cold_start_puts_the_node_where_it_last_ran_first() -> None:
    assert candidates_in_order(view("node3", last_owner="node3")) == ["node3", "node1", "node2"]
    assert decide(view("node3", last_owner="node3"), STEP).decision == "acquire"
    assert decide(view("node1", last_owner="node3", vacant_for=0.2), STEP).decision == "wait"


def test_priority_start_policy_ignores_where_it_last_ran() -> None:
    v = view("node3", last_owner="node3", settings={"start_policy": "priority"})
    assert candidates_in_order(v)[0] == "node1"


def test_hierarchy_failover_off_lets_only_the_last_or_first_node_start_it() -> None:
    off = {"failover": False}
    assert candidates_in_order(view("node2", settings=off)) == ["node1"]
    assert candidates_in_order(view("node2", settings=off, last_owner="node2")) == ["node2"]
    gone = view("node2", settings=off, alive=frozenset({"node2", "node3"}))
    assert decide(gone, STEP).decision == "none"


def test_a_node_blocking_failover_away_from_it_stops_every_takeover() -> None:
    v = view("node2", alive=frozenset({"node2", "node3"}), failover_blocked_by="node1")
    assert decide(v, STEP).decision == "none"


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "none"),
    ({"in_service_here": False}, "restore"),
    ({"failed_here": True}, "give_up"),
    ({"settings": {"target": "out_of_service"}}, "give_up"),
])
def test_the_owner(changes: dict[str, Any], expected: str) -> None:
    base: dict[str, Any] = {"i_hold": True, "in_service_here": True, "vacant_for": None}
    assert decide(view("node2", **(base | changes)), STEP).decision == expected


def test_automatic_switchback_hands_it_back_to_the_best_node() -> None:
    owner = {"i_hold": True, "in_service_here": True, "vacant_for": None}
    automatic = view("node2", settings={"switchback": "automatic"}, last_owner="node2",
                     **owner)
    assert decide(automatic, STEP).decision == "give_up"
    intelligent = view("node2", last_owner="node2", **owner)
    assert decide(intelligent, STEP).decision == "none"


def test_others_leave_a_cold_start_to_the_alive_last_owner_for_a_grace() -> None:
    assert decide(view("node1", last_owner="node3", vacant_for=0.6), STEP).decision == "wait"
    assert decide(view("node1", last_owner="node3", vacant_for=LAST_OWNER_GRACE + 0.5),
                  STEP).decision == "acquire"
    gone = view("node1", last_owner="node3", alive=frozenset({"node1", "node2"}))
    assert decide(gone, STEP).decision == "acquire"  # the last owner is not there: no grace


def test_in_service_without_the_lease_while_another_runs_it_gets_out() -> None:
    v = view("node2", owner_elsewhere="node1", parts_in_service_here=True, vacant_for=None)
    assert decide(v, STEP).decision == "give_up"
    assert decide(view("node2", owner_elsewhere="node1", vacant_for=None), STEP).decision == "none"


def test_rank_wait_follows_the_decision_tick() -> None:
    # 0.5 s with the default heartbeats; nodes deciding once a second get 2.5 s, so the
    # second-ranked does not overtake a first-ranked one that has not had its tick yet
    assert rank_step(0.2) == pytest.approx(0.5)
    # a 1.61 s lease outlives 1 s of missed heartbeats: the lower rank waits that out too
    assert rank_step(0.2, 1.61 - 1.0) == pytest.approx(1.11)
    assert rank_step(0.2, 1.0 - 1.0) == rank_step(0.2, -0.5) == pytest.approx(0.5)
    assert decide(view("node2", vacant_for=1.0), rank_step(1.0)).decision == "wait"
    assert decide(view("node2", vacant_for=2.5), rank_step(1.0)).decision == "acquire"


HOLD = Blocked("damped", "node1", "3 failovers in 600s", left=250.0)


def test_a_held_hierarchy_is_not_failed_over_and_the_verdict_says_why() -> None:
    gone = frozenset({"node2", "node3"})
    held = view("node2", alive=gone, previous_owner="node1", hold=HOLD)
    assert decide(held, STEP) == Verdict("none", HOLD)
    assert decide(view("node2", alive=gone, previous_owner="node1"), STEP).decision == "acquire"


def test_a_hold_lets_the_node_where_it_ran_start_it_again() -> None:
    back = view("node1", previous_owner="node1", hold=HOLD)
    assert decide(back, STEP).decision == "acquire"


def test_a_hold_stops_an_automatic_switchback() -> None:
    owner = {"i_hold": True, "in_service_here": True, "vacant_for": None}
    held = view("node2", settings={"switchback": "automatic"}, hold=HOLD, **owner)
    assert decide(held, STEP).decision == "none"


def test_blocked_failover_names_the_node_that_blocks_it() -> None:
    v = view("node2", alive=frozenset({"node2", "node3"}), failover_blocked_by="node1")
    assert decide(v, STEP).blocked == Blocked("failover_blocked", "node1")


def test_failover_off_names_the_only_node_that_may_start_it() -> None:
    v = view("node2", settings={"failover": False}, alive=frozenset({"node2", "node3"}))
    assert decide(v, STEP).blocked == Blocked("failover_off", "node1")


def test_no_eligible_node_says_where_it_failed_and_who_is_gone() -> None:
    v = view("node2", alive=frozenset({"node2"}), failed_on=frozenset({"node2"}),
             previous_owner="node1")
    assert decide(v, STEP).blocked == Blocked(
        "no_eligible_node", "node1", "it failed on node2; node1, node3 not alive")


def test_nothing_is_blocked_while_it_runs_or_another_candidate_may_take_it() -> None:
    assert decide(view("node2", owner_elsewhere="node1"), STEP).blocked is None
    assert decide(view("node2", vacant_for=0.1), STEP).blocked is None  # rank wait
    failed_here = view("node2", failed_on=frozenset({"node2"}))
    assert decide(failed_here, STEP) == Verdict("none")
    out = view("node2", settings={"target": "out_of_service"}, alive=frozenset({"node2"}),
               failed_on=frozenset({"node2"}))
    assert decide(out, STEP).blocked is None


def test_candidates_are_narrowed_to_where_the_dependencies_are_met() -> None:
    v = view("node2", allowed=frozenset({"node2", "node3"}),
             unmet=("needs db up on the same node",))
    assert candidates_in_order(v) == ["node2", "node3"]
    assert decide(v, STEP).decision == "acquire"


def test_nobody_allowed_says_which_dependency() -> None:
    v = view("node2", allowed=frozenset(), unmet=("needs db up on some node",),
             previous_owner="node1")
    assert decide(v, STEP) == Verdict("none", Blocked("dependency", "node1",
                                                      "needs db up on some node"))


def test_an_owner_whose_dependency_went_down_gives_it_up_and_says_which() -> None:
    owner = {"i_hold": True, "in_service_here": True, "vacant_for": None}
    v = view("node2", allowed=frozenset({"node1"}), unmet=("needs db up on the same node",),
             previous_owner="node2", **owner)
    assert decide(v, STEP) == Verdict("give_up", Blocked("dependency", "node2",
                                                         "needs db up on the same node"))
    failed = replace(v, failed_here=True)
    assert decide(failed, STEP) == Verdict("give_up")  # failed here says more
