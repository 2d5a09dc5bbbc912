"""Why a hierarchy runs nowhere (engine.stuck), pure: records, retries, heartbeat form."""

from __future__ import annotations

from tutela.engine.stuck import (
    Blocked,
    Retries,
    Stuck,
    explain,
    from_payload,
    note,
    retry_delay,
    to_payload,
)

ANSWERS = Blocked("address_answers", "node1", "vip: address 198.51.100.100 already answers")


def test_a_refused_takeover_is_retried_less_and_less_often() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]


def test_since_when_is_that_of_the_episode_whatever_the_reason_becomes() -> None:
    waiting = note(None, Blocked("lease_wait", "node1", left=1.0), now=100.0)
    assert (waiting.since, waiting.until) == (100.0, 101.0)
    refused = note(waiting, ANSWERS, now=101.5)
    assert (refused.reason, refused.since, refused.until) == ("address_answers", 100.0, None)
    assert refused.same_cause(ANSWERS)
    assert not refused.same_cause(Blocked("address_answers", "node3", ANSWERS.detail))


def test_an_unprotected_service_says_what_to_do() -> None:
    record = note(None, ANSWERS, now=0.0)
    assert explain(record, "app", "none", now=5.0) == (
        "node1's tutelad does not answer but its service still answers (vip: address "
        "198.51.100.100 already answers): unprotected; fencing is none, so no node takes it "
        "over; restart tutelad on node1 or fence it by hand")
    assert "unprotected" not in explain(record, "app", "watchdog", now=5.0)


def test_a_hold_says_the_time_left_and_how_to_end_it() -> None:
    record = note(None, Blocked("damped", "node1", "3 failovers in 600s", left=250.0), 10.0)
    assert explain(record, "app", "watchdog", now=20.0) == (
        "failover held after 3 failovers in 600s: 240s left; 'tutela restore app' ends "
        "the hold")


def test_a_failed_fence_names_the_node_and_the_commands_error() -> None:
    record = note(None, Blocked("fence_failed", "node1", "exit 1: no route to BMC"), 0.0)
    text = explain(record, "app", "agent", now=1.0)
    assert text.startswith("fencing node1 failed (exit 1: no route to BMC)")


def test_records_travel_grouped_and_come_back_by_root() -> None:
    lost = Stuck("no_quorum", None, "no majority", since=100.2, until=None)
    records = {f"h{i}": lost for i in range(500)} | {"app": note(None, ANSWERS, 100.0)}
    payload = to_payload(records)
    assert len(payload) == 2  # a lost quorum strands 500 hierarchies: one entry for all
    back = from_payload(payload)
    assert back.keys() == records.keys()
    assert back["app"].holder == "node1" and back["h7"].reason == "no_quorum"


def test_what_does_not_parse_is_left_out() -> None:
    good = to_payload({"app": note(None, ANSWERS, 1.0)})
    assert from_payload([["no_such_reason", None, "", 1, None, ["x"]], ["short"], *good]
                        ).keys() == {"app"}
    assert from_payload({"not": "a list"}) == {}


def test_retries_wait_longer_each_time_and_start_over_after_a_reset() -> None:
    retries = Retries()
    assert retries.first("app") and not retries.waiting("app", 0.0)
    assert [retries.refused("app", now) for now in (0.0, 1.0, 3.0)] == [1.0, 2.0, 4.0]
    assert retries.waiting("app", 6.9) and not retries.waiting("app", 7.0)
    assert not retries.first("app")
    retries.refused("db", 0.0)
    retries.reset("app")
    assert retries.first("app") and not retries.waiting("app", 3.5)
    assert retries.waiting("db", 0.5)
    retries.reset()
    assert not retries.waiting("db", 0.5)


def test_a_dependency_not_met_says_which_and_that_it_starts_by_itself() -> None:
    record = note(None, Blocked("dependency", "node1", "needs db up on the same node"), 0.0)
    assert explain(record, "web", "watchdog", now=1.0) == (
        "waiting for its dependencies: it needs db up on the same node; it starts by itself "
        "once they are up ('tutela status' shows where they run)")
    assert from_payload(to_payload({"web": record}))["web"].reason == "dependency"
