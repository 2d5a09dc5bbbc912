"""Keys of `tutela config get/set` as data: each key and value, and the change it makes to
the document (in the words of `tutela apply`'s diff) or the problem it is refused with."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tutela.lcd.document import diff, parse_config
from tutela.lcd.keypath import get_value, parse_value, set_value, split_key
from tutela.model.errors import ConfigError

DOCUMENT = parse_config({
    "name": "c",
    "nodes": [{"name": "n1", "addresses": ["198.51.100.11/24"],
               "watchdog": {"device": "/dev/watchdog", "present": True, "min_timeout": 1}},
              {"name": "db1.example.com", "addresses": ["198.51.100.12/24"]}],
    "comm_paths": [{"nodes": ["n1", "db1.example.com"],
                    "addresses": ["198.51.100.11", "198.51.100.12"]}],
    "witnesses": [{"address": "198.51.100.250:7366"}],
    "resources": [
        {"tag": "vip", "kit": "ip", "params": {"address": "198.51.100.100/24"}},
        {"tag": "web", "kit": "process", "params": {"command": "sleep 100"},
         "depends_on": ["vip"]},
        {"tag": "batch", "kit": "process", "params": {"command": "sleep 1"}}],
    "hierarchies": [{"root": "web", "equivalencies": [{"node": "n1", "priority": 1},
                                                      {"node": "db1.example.com",
                                                       "priority": 2}]}],
}).model_dump(mode="json")


@pytest.mark.parametrize(("key", "value", "changes"), [
    ("settings.lease_duration", 1.61, ["~ settings.lease_duration: 'auto' -> 1.61"]),
    ("settings.lease_duration", "auto", []),
    ("settings.failover_damping.hold", 0, ["~ settings.failover_damping.hold: 300.0 -> 0.0"]),
    ("settings.failover_damping", {"failovers": 5},
     ["~ settings.failover_damping.failovers: 3 -> 5"]),  # a section set whole: the rest default
    ("hierarchies.web.switchback", "automatic",
     ["~ hierarchies[web].switchback: 'intelligent' -> 'automatic'"]),
    ("hierarchies.web.equivalencies[db1.example.com].priority", 3,
     ["~ hierarchies[web].equivalencies[db1.example.com].priority: 2 -> 3"]),
    ("hierarchies.batch.failover", False,  # a root without an entry: made with defaults
     ["+ hierarchies[batch].dependencies: []", "+ hierarchies[batch].equivalencies: []",
      "+ hierarchies[batch].failover: False", "+ hierarchies[batch].max_instances: None",
      "+ hierarchies[batch].min_instances: None", "+ hierarchies[batch].multi_node: False",
      "+ hierarchies[batch].root: 'batch'",
      "+ hierarchies[batch].start_policy: 'last'",
      "+ hierarchies[batch].switchback: 'intelligent'",
      "+ hierarchies[batch].target: 'out_of_service'"]),
    ("nodes.n1.failover", False, ["~ nodes[n1].failover: True -> False"]),
    ("nodes[db1.example.com].addresses", ["203.0.113.12/24"],
     ["~ nodes[db1.example.com].addresses: ['198.51.100.12/24'] -> ['203.0.113.12/24']"]),
    ("nodes.n1.addresses.0", "203.0.113.11/24",
     ["~ nodes[n1].addresses: ['198.51.100.11/24'] -> ['203.0.113.11/24']"]),
    ("resources.web.params.command", "sleep 200",
     ["~ resources[web].params.command: 'sleep 100' -> 'sleep 200'"]),
    ("resources[web].params.env", {"A": "1"}, ["+ resources[web].params.env.A: '1'"]),
    ("resources.web.params.env.A", "1",  # a new key of a free-form mapping, made with it
     ["+ resources[web].params.env.A: '1'"]),
    ("resources.web.timeouts.restore", 120, ["+ resources[web].timeouts.restore: 120.0"]),
    ("resources.web.depends_on", [], ["~ resources[web].depends_on: ['vip'] -> []"]),
    ("resources.db", {"kit": "process", "params": {"command": "sleep 9"}},  # a new entry
     ["+ resources[db].check_interval: 5.0", "+ resources[db].depends_on: []",
      "+ resources[db].kit: 'process'", "+ resources[db].params.command: 'sleep 9'",
      "+ resources[db].protected: True", "+ resources[db].recovery.attempts: 3",
      "+ resources[db].recovery.window: 300.0", "+ resources[db].tag: 'db'"]),
    ("comm_paths.0.priority", 2, ["~ comm_paths[0].priority: 1 -> 2"]),
    ("comm_paths[0].priority", 2, ["~ comm_paths[0].priority: 1 -> 2"]),
    ("witnesses", [], ["+ witnesses: []", "- witnesses[0].address: '198.51.100.250:7366'"]),
])
def test_set_changes_the_document(key: str, value: Any, changes: list[str]) -> None:
    before = copy.deepcopy(DOCUMENT)
    after = set_value(DOCUMENT, key, value)
    assert before == DOCUMENT  # a copy: the document in force is never touched
    assert diff(parse_config(DOCUMENT), parse_config(after)) == changes


@pytest.mark.parametrize(("key", "value", "field", "message", "fix"), [
    ("settings.lease", 2, "settings.lease", "settings has no key 'lease'",
     "use one of: port, heartbeat_interval, heartbeat_misses, lease_duration, quorum, "
     "quorum_loss_action, fencing, fence_command, failover_damping"),
    ("colour", "red", "colour", "the document has no key 'colour'",
     "use one of: format, name, settings, nodes, comm_paths, witnesses, disk_voter, "
     "resources, hierarchies, users"),
    ("settings.failover_damping.holdd", 0, "settings.failover_damping.holdd",
     "settings.failover_damping has no key 'holdd'", "use one of: failovers, window, hold"),
    ("resources.web.colour", "red", "resources[web].colour",
     "resources[web] has no key 'colour'", "use one of: tag, kit, params, depends_on,"),
    ("settings.port.number", 1, "settings.port",
     "settings.port is a single value (7365), not a section", "set settings.port itself"),
    ("nodes.n3.failover", False, "nodes[n3]", "nodes has no entry with name 'n3'",
     "use one of: n1, db1.example.com"),
    ("nodes.n1.watchdog", None, "nodes[n1].watchdog", "only the node itself writes",
     "recorded by n1 itself at every start of its tutelad"),
    ("nodes.n1.watchdog.present", True, "nodes[n1].watchdog", "only the node itself writes",
     "restart tutelad on n1"),
    ("nodes[db1.example.com].maintenance", None, "nodes[db1.example.com].maintenance",
     "only the node itself writes", "'tutela start' on db1.example.com ends it"),
    ("hierarchies.vip.switchback", "automatic", "hierarchies[vip]",
     "'vip' is not the root of a hierarchy", "use one of: web, batch"),
    ("hierarchies[web].equivalencies.db1.example.com.priority", 3,
     "hierarchies[web].equivalencies[db1]", "has no entry with node 'db1'",
     "use one of: n1, db1.example.com"),
    ("comm_paths.1.priority", 2, "comm_paths[1]", "comm_paths has no entry '1'",
     "use an index from 0 to 0"),
    ("users.0.role", "admin", "users[0]", "users has no entry with name '0'", "none yet"),
    ("settings..port", 1, "KEY", "an empty part at character 10", "a dotted path"),
    ("settings.", 1, "KEY", "a '.' at the end", "a dotted path"),
    ("nodes[n1", 1, "KEY", "a '[' without a name and a closing ']'", "a dotted path"),
    ("nodes[n1]x", 1, "KEY", "'x' at character 10", "a dotted path"),
    ("", 1, "KEY", "it has nothing", "a dotted path"),
])
def test_set_refuses_a_key(key: str, value: Any, field: str, message: str, fix: str) -> None:
    with pytest.raises(ConfigError) as refused:
        set_value(DOCUMENT, key, value)
    [problem] = refused.value.problems
    assert problem.field == field
    assert message in problem.message
    assert fix in problem.fix


@pytest.mark.parametrize(("key", "value", "field", "message"), [
    ("settings.lease_duration", -1, "settings.lease_duration",
     "must be 'auto' or seconds above 0 (got -1)"),
    ("settings.quorum", "most", "settings.quorum", "Input should be 'majority' or 'none'"),
    ("settings.fencing", "agent", "settings", "fencing 'agent' needs fence_command"),
    ("settings.failover_damping", [1, 2], "settings.failover_damping", "expected a mapping"),
    ("resources.web.check_interval", 0, "resources[web].check_interval", "greater than 0"),
    ("resources.db", {"tag": "other", "kit": "process"}, "resources[db]",
     "the entry's tag is 'other', but the key names 'db'"),
])
def test_validation_refuses_a_value(key: str, value: Any, field: str, message: str) -> None:
    """What the key allows, the document's validation then checks (as for apply)."""
    with pytest.raises(ConfigError) as refused:
        parse_config(set_value(DOCUMENT, key, value))
    assert any(p.field == field and message in p.message for p in refused.value.problems), \
        refused.value.problems


@pytest.mark.parametrize(("key", "expected"), [
    ("settings.lease_duration", "auto"),
    ("settings.failover_damping", {"failovers": 3, "window": 600.0, "hold": 300.0}),
    ("hierarchies.web.equivalencies.n1.priority", 1),
    ("hierarchies.batch.switchback", "intelligent"),  # a root without an entry: defaults
    ("nodes[db1.example.com].watchdog", None),  # read, not written
    ("resources.vip.params", {"address": "198.51.100.100/24"}),
    ("witnesses.0.address", "198.51.100.250:7366"),
    ("comm_paths.0.nodes.1", "db1.example.com"),
])
def test_get(key: str, expected: Any) -> None:
    assert get_value(DOCUMENT, key) == expected


@pytest.mark.parametrize(("key", "field", "fix"), [
    ("resources.web.params.env", "resources[web].params.env", "use one of: command"),
    ("hierarchies.vip", "hierarchies[vip]", "use one of: web, batch"),
    ("settings.nothing", "settings.nothing", "use one of: port,"),
])
def test_get_names_what_there_is(key: str, field: str, fix: str) -> None:
    with pytest.raises(ConfigError) as refused:
        get_value(DOCUMENT, key)
    [problem] = refused.value.problems
    assert (problem.field, fix in problem.fix) == (field, True)


@pytest.mark.parametrize(("key", "parts"), [
    ("settings.lease_duration", ["settings", "lease_duration"]),
    ("nodes[db1.example.com].failover", ["nodes", "db1.example.com", "failover"]),
    ("comm_paths[0][1]", ["comm_paths", "0", "1"]),
    ("hierarchies[web].equivalencies.n1", ["hierarchies", "web", "equivalencies", "n1"]),
])
def test_split_key(key: str, parts: list[str]) -> None:
    assert split_key(key) == parts


@pytest.mark.parametrize(("text", "value"), [
    ("auto", "auto"), ("1.61", 1.61), ("3", 3), ("true", True), ("null", None), ("", None),
    ("[a, b]", ["a", "b"]), ("{hold: 0}", {"hold": 0}), ("'3'", "3"),
    ("2026-12-07", "2026-12-07"),  # a date stays a string (JSON has none)
    ("sleep 100", "sleep 100"),
])
def test_parse_value(text: str, value: Any) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize(("text", "message"), [
    ("[a", "not valid YAML"),
    ("!!binary aGk=", "not a value the document holds (a bytes)"),
    ("!!set {a: null}", "not a value the document holds (a set)"),
])
def test_a_bad_value_names_value_and_fix(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_value(text)
    [problem] = refused.value.problems
    assert problem.field == "VALUE" and message in problem.message and problem.fix
