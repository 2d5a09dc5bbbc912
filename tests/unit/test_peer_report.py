"""The typed heartbeat report: one parse from the wire, one serialisation, tolerant of
peers of other tutela versions (a rolling upgrade)."""

from __future__ import annotations

import logging

import pytest

from tutela.engine.cluster_view import IN_SERVICE
from tutela.engine.node import RuntimeState
from tutela.engine.peer_report import PeerReport, parse, reported_tags, wire_states
from tutela.engine.stuck import Stuck
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import build_hierarchies
from tutela.model.states import ResourceState

NEW = PeerReport(
    generation=7, version=(7, 3), hears=frozenset({"b", "c"}), holds=frozenset({"app"}),
    failed=frozenset({"db"}),
    stuck={"web": Stuck("no_quorum", "b", "2 of 3", 1000.0, 1010.0)},
    failovers={"app": (5.0, 9.0)}, states={"app": "ISP", "ip": "ISP"},
    ran={"app": "2026-12-07T06:00:00+00:00"}, unleased={"web": 2.5})


def test_a_report_survives_the_wire() -> None:
    assert parse(NEW.to_wire()) == NEW


def test_a_heartbeat_without_the_bulky_part_keeps_the_last_one() -> None:
    light = NEW.to_wire(bulky=False)
    assert "states" not in light and "ran" not in light
    later = parse({**light, "holds": []}, previous=NEW)
    assert later.states == NEW.states and later.ran == NEW.ran
    assert later.holds == frozenset()  # the rest is what this heartbeat says


def test_an_old_format_payload_parses() -> None:
    """What a tutela of before `version`, `hears`, `stuck` and `failovers` sent."""
    old = {"generation": 4, "holds": ["app"], "failed": [], "states": {"app": "ISP"},
           "ran": {"app": "2026-12-01T00:00:00+00:00"}}
    report = parse(old)
    assert report == PeerReport(generation=4, holds=frozenset({"app"}),
                                states={"app": "ISP"},
                                ran={"app": "2026-12-01T00:00:00+00:00"})
    assert report.version == (0, 0) and report.hears is None


def test_the_last_untyped_format_parses() -> None:
    """What Cluster._heartbeat sent before PeerReport (holds in hierarchy order)."""
    untyped = {"generation": 3, "version": [3, 2], "hears": ["c", "b"], "holds": ["web", "app"],
               "failed": [], "ran": {"app": "2026-12-07T06:00:00+00:00"},
               "stuck": [["no_quorum", "b", "2 of 3", 1000, None, ["db"]]],
               "failovers": {"app": [9.0, 5.0]}, "states": {"app": "ISP"}}
    assert parse(untyped) == PeerReport(
        generation=3, version=(3, 2), hears=frozenset({"b", "c"}),
        holds=frozenset({"app", "web"}), stuck={"db": Stuck("no_quorum", "b", "2 of 3", 1000.0)},
        failovers={"app": (5.0, 9.0)}, states={"app": "ISP"},
        ran={"app": "2026-12-07T06:00:00+00:00"})


def test_the_seconds_left_unleased_are_rounded_up_on_the_wire() -> None:
    assert PeerReport(unleased={"app": 1.2341}).to_wire()["unleased"] == {"app": 1.235}


def test_the_wire_keys_are_those_older_peers_read() -> None:
    # `unleased` is new: an older peer does not read it, and then does not wait for a
    # re-adopting node's deadline (docs/failover.md: upgrade every node)
    assert set(NEW.to_wire()) == {"generation", "version", "hears", "holds", "failed",
                                  "stuck", "failovers", "states", "ran", "unleased"}
    assert NEW.to_wire()["version"] == [7, 3]


@pytest.mark.parametrize("key, value", [
    ("generation", "seven"), ("version", 7), ("version", ["a", 1]), ("hears", "b"),
    ("holds", {"app": 1}), ("failed", 3), ("stuck", "x"), ("stuck", [[1, 2]]),
    ("failovers", {"app": ["soon"]}), ("failovers", []), ("states", ["ISP"]), ("ran", 1),
    ("unleased", [1]), ("unleased", {"app": -1}), ("unleased", {"app": "nan"})])
def test_a_malformed_field_gets_its_default_and_a_debug_line(
        key: str, value: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="tutela.peer_report"):
        report = parse({**NEW.to_wire(), key: value})
    default = getattr(PeerReport(), key)
    assert getattr(report, key) == default
    assert all(getattr(report, other) == getattr(NEW, other)
               for other in PeerReport.__dataclass_fields__ if other != key)
    if key != "stuck":  # stuck.from_payload leaves out what it cannot read, silently
        assert key in caplog.text


def test_a_witness_heartbeat_is_an_empty_report(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="tutela.peer_report"):
        assert parse({"interval": 0.2}) == PeerReport()
    assert len(caplog.records) == 1  # one line for everything missing


@pytest.mark.parametrize("bulky", [True, False])
def test_reading_a_payload_again_against_its_report_gives_that_report(bulky: bool) -> None:
    """The messenger keeps the report of a heartbeat whose bytes repeat the last one's
    instead of reading it again (lcm/messenger.py ReportReader): parse must allow that."""
    payload = NEW.to_wire(bulky)
    for previous in (None, NEW, PeerReport(states={"db": "OSS"})):
        once = parse(payload, previous)
        assert parse(payload, once) == once


def test_a_bulky_part_sent_again_unchanged_is_kept_not_converted_again() -> None:
    again = parse(NEW.to_wire(), previous=NEW)
    assert again.states is NEW.states and again.ran is NEW.ran
    changed = parse({**NEW.to_wire(), "states": {"app": "OSS"}}, previous=NEW)
    assert changed.states == {"app": "OSS"} and changed.ran is NEW.ran


def test_the_states_in_service_are_those_peers_read_as_in_service() -> None:
    """ResourceState.in_service on this node and cluster_view.IN_SERVICE on the heartbeat's
    states must agree, or a peer would read a node's hierarchy as running when it is not."""
    assert {state.value for state in ResourceState if state.in_service} == IN_SERVICE


def test_the_engine_states_go_out_as_their_plain_values() -> None:
    engine = {state.name.lower(): RuntimeState(state, "", "") for state in ResourceState}
    wire = wire_states(engine)
    assert wire == {tag: held.state.value for tag, held in engine.items()}
    assert {type(value) for value in wire.values()} == {str}  # not the enum: JSON as before


def test_a_heartbeat_carries_the_states_of_what_its_node_may_run_and_what_is_not_osu() -> None:
    """At 32 nodes a node is in the equivalencies of a tenth of the resources; the rest
    are OSU there and peers read them only if they are not (the states made every
    heartbeat of a 500-resource cluster ten times larger than it needs to be)."""
    config = ClusterConfig.model_validate({
        "name": "c", "nodes": [{"name": n} for n in ("a", "b", "c")],
        "resources": [{"tag": "web", "kit": "process", "params": {"command": "true"},
                       "depends_on": ["ip"]},
                      {"tag": "ip", "kit": "process", "params": {"command": "true"}},
                      {"tag": "db", "kit": "process", "params": {"command": "true"}},
                      {"tag": "local", "kit": "process", "params": {"command": "true"}}],
        "hierarchies": [{"root": "web", "equivalencies": [{"node": "a", "priority": 1},
                                                          {"node": "b", "priority": 2}]},
                        {"root": "db", "equivalencies": [{"node": "b", "priority": 1},
                                                         {"node": "c", "priority": 2}]}]})
    hierarchies = build_hierarchies(config.resources)
    assert reported_tags(config, hierarchies, "a") == {"web", "ip", "local"}
    assert reported_tags(config, hierarchies, "c") == {"db", "local"}
    here = {tag: RuntimeState(ResourceState.OSU, "", "") for tag in ("web", "ip", "db", "local")}
    always = reported_tags(config, hierarchies, "a")
    assert wire_states(here, always) == {"web": "OSU", "ip": "OSU", "local": "OSU"}
    here["db"] = RuntimeState(ResourceState.ISP, "", "")  # put in service here by hand
    assert wire_states(here, always)["db"] == "ISP"
