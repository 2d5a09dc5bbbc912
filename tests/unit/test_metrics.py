"""tutelad's metrics (docs/metrics.md): the exposition of a recorded reading, parsed back
with prometheus_client's own parser; failovers counted once; the setting checked."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tutela.daemon.metrics import (
    DURATION_BUCKETS,
    Buckets,
    FailoverTally,
    Observed,
    Reading,
    ReadingCollector,
)
from tutela.journal.events import Event
from tutela.lcd.document import from_yaml
from tutela.model.config import metrics_endpoint
from tutela.model.errors import ConfigError

READING = Reading(
    generation=7,
    nodes=(("node1", "member", True), ("node2", "member", False),
           ("witness1", "witness", True)),
    paths=(("node2", "tcp/198.51.100.11-198.51.100.12", "tcp", False),
           ("node2", "tcp/203.0.113.11-203.0.113.12", "tcp", True)),
    resources=(("vip", "node1", "ip", "ISP"), ("app", "node1", "process", "ISP"),
               ("vip", "node2", "ip", "OSU")),
    resources_total=2,
    lease_holders=(("app", "node1"),),
    failovers={"app": 3},
    votes=(3, 2, 2),
    watchdog_armed=True,
    heartbeat_lateness_max=0.012,
    local_recoveries={"app": 2})


def samples(reading: Reading) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value of the text a scrape of `reading` gets."""
    collector = ReadingCollector()
    collector.reading = reading
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_recorded_reading_scrapes_to_these_samples() -> None:
    got = samples(READING)
    assert got == {
        ("tutela_config_generation", frozenset()): 7,
        ("tutela_nodes", frozenset({("name", "node1"), ("type", "member"),
                                    ("status", "alive")})): 1,
        ("tutela_nodes", frozenset({("name", "node2"), ("type", "member"),
                                    ("status", "dead")})): 1,
        ("tutela_nodes", frozenset({("name", "witness1"), ("type", "witness"),
                                    ("status", "alive")})): 1,
        ("tutela_nodes_configured", frozenset()): 2,
        ("tutela_comm_path_up", frozenset({("peer", "node2"), ("kind", "tcp"), (
            "path", "tcp/198.51.100.11-198.51.100.12")})): 0,
        ("tutela_comm_path_up", frozenset({("peer", "node2"), ("kind", "tcp"), (
            "path", "tcp/203.0.113.11-203.0.113.12")})): 1,
        ("tutela_resources", frozenset({("id", "vip"), ("node", "node1"), ("kit", "ip"),
                                        ("status", "ISP")})): 1,
        ("tutela_resources", frozenset({("id", "app"), ("node", "node1"),
                                        ("kit", "process"), ("status", "ISP")})): 1,
        ("tutela_resources", frozenset({("id", "vip"), ("node", "node2"), ("kit", "ip"),
                                        ("status", "OSU")})): 1,
        ("tutela_resources_configured", frozenset()): 2,
        ("tutela_lease_holder", frozenset({("hierarchy", "app"), ("node", "node1")})): 1,
        ("tutela_failovers_total", frozenset({("hierarchy", "app")})): 3,
        ("tutela_quorate", frozenset()): 1,
        ("tutela_quorum_votes", frozenset({("type", "expected_votes")})): 3,
        ("tutela_quorum_votes", frozenset({("type", "total_votes")})): 2,
        ("tutela_quorum_votes", frozenset({("type", "quorum")})): 2,
        ("tutela_watchdog_armed", frozenset()): 1,
        ("tutela_heartbeat_lateness_max_seconds", frozenset()): 0.012,
        ("tutela_local_recoveries_total", frozenset({("resource", "app")})): 2,
    }


def test_histograms_scrape_with_cumulative_buckets() -> None:
    lateness = Buckets((0.01, 0.1))
    for late in (0.002, 0.01, 0.05, 3.0):
        lateness.observe(late)
    restore = Buckets(DURATION_BUCKETS)
    restore.observe(1.5)
    got = samples(dataclasses.replace(READING, heartbeat_lateness=lateness.value(),
                                      restore_durations={"app": restore.value()}))
    assert {le: got[("tutela_heartbeat_lateness_seconds_bucket", frozenset({("le", le)}))]
            for le in ("0.01", "0.1", "+Inf")} == {"0.01": 2, "0.1": 3, "+Inf": 4}
    assert got[("tutela_heartbeat_lateness_seconds_count", frozenset())] == 4
    assert got[("tutela_heartbeat_lateness_seconds_sum", frozenset())] == pytest.approx(3.062)
    app = {("hierarchy", "app")}
    assert got[("tutela_restore_duration_seconds_bucket", frozenset(app | {("le", "1.0")}))] \
        == 0
    assert got[("tutela_restore_duration_seconds_bucket", frozenset(app | {("le", "2.5")}))] \
        == 1
    assert got[("tutela_restore_duration_seconds_sum", frozenset(app))] == 1.5


def event(at: str, kind: str, subject: str, correlation: str = "",
          dead: tuple[str, ...] = ()) -> Event:
    return Event(f"2026-12-07T08:00:{at}+00:00", "node2", kind, subject, "info", "",
                 correlation, {"dead": list(dead)} if dead else {})


def test_a_takeover_from_a_dead_holder_times_a_failover_and_its_restore() -> None:
    observed = Observed(last_holder={"app": "node1"})
    for record in (event("00.000", "node.down", "node1"),
                   event("01.500", "lease.won", "app", "app/1", dead=("node1",)),
                   event("01.600", "restore.started", "app", "app/1"),
                   event("03.100", "restore.finished", "app", "app/1"),
                   event("05.000", "recovery.local", "vip"),
                   event("06.000", "recovery.local", "vip")):
        observed.record(record)
    assert observed.failovers["app"].total == pytest.approx(3.1)
    assert observed.restores["app"].total == pytest.approx(1.5)
    assert observed.local_recoveries == {"vip": 2}


def test_a_switchover_and_a_failed_restore_time_no_failover() -> None:
    observed = Observed(last_holder={"app": "node1"})
    for record in (event("00.000", "node.down", "node3"),  # not the holder
                   event("01.000", "lease.won", "app", "app/1", dead=("node3",)),
                   event("01.100", "restore.started", "app", "app/1"),
                   event("02.000", "restore.finished", "app", "app/1"),
                   event("03.000", "node.down", "node1"),
                   event("04.000", "lease.won", "app", "app/2", dead=("node1", "node3")),
                   event("04.100", "restore.started", "app", "app/2"),
                   event("05.000", "restore.failed", "app", "app/2")):
        observed.record(record)
    assert observed.failovers == {}
    assert observed.restores["app"].counts[DURATION_BUCKETS.index(1.0)] == 1
    assert sum(observed.restores["app"].counts) == 1


def test_without_a_majority_the_node_is_not_quorate() -> None:
    lonely = dataclasses.replace(READING, votes=(3, 1, 2))
    assert samples(lonely)[("tutela_quorate", frozenset())] == 0


def test_before_the_first_reading_a_scrape_is_empty() -> None:
    assert list(ReadingCollector().collect()) == []


def test_a_failover_reported_by_several_nodes_and_rounds_counts_once() -> None:
    tally = FailoverTally()
    assert tally.count([{"app": [100.0]}, {"app": (100.0,)}]) == {"app": 1}
    assert tally.count([{"app": [100.0, 250.0]}, {"db": [90.0]}]) == {"app": 2, "db": 1}
    assert tally.count([]) == {"app": 2, "db": 1}  # forgotten histories keep their count


@pytest.mark.parametrize(("text", "endpoint"), [
    ("198.51.100.11:9665", ("198.51.100.11", 9665)),
    ("198.51.100.11", ("198.51.100.11", 9665)),
    ("0.0.0.0:9100", ("0.0.0.0", 9100)),
])
def test_a_metrics_address_is_an_ipv4_address_and_a_port(text: str,
                                                        endpoint: tuple[str, int]) -> None:
    assert metrics_endpoint(text) == endpoint


@pytest.mark.parametrize("text", ["node1:9665", "198.51.100.11:", "198.51.100.11:0",
                                  "198.51.100.11:65536", "[::1]:9665"])
def test_a_bad_metrics_address_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        from_yaml(f"name: c\nnodes:\n- {{name: n1, metrics_address: '{text}'}}\n")
    assert [str(p) for p in refused.value.problems] == [
        f"nodes[n1].metrics_address: {text!r} is not an IPv4 address with an optional port, "
        "e.g. 198.51.100.11:9665 (0.0.0.0 for every address) (fix: correct the value)"]
