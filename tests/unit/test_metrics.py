"""tutelad's metrics (docs/metrics.md): the exposition of a recorded reading, parsed back
with prometheus_client's own parser; failovers counted once; the setting checked."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tutela.daemon.metrics import FailoverTally, Reading, ReadingCollector
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
    heartbeat_lateness_max=0.012)


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
    }


def test_without_a_majority_the_node_is_not_quorate() -> None:
    lonely = Reading(**{**READING.__dict__, "votes": (3, 1, 2)})
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
