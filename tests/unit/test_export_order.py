"""`tutela export` is the same bytes on every node at the same generation: the keys of
free-form mappings come out in a fixed order (params as the kit declares them, timeouts as
the actions, others sorted), whatever order they were given in and however a replicated
copy ordered them; model fields keep their declared order."""

from __future__ import annotations

import json
from typing import Any

from tutela.lcd.document import from_yaml, to_yaml
from tutela.model.config import ClusterConfig


def _config(params: dict[str, Any], timeouts: dict[str, float]) -> ClusterConfig:
    return ClusterConfig.model_validate({
        "name": "c",
        "nodes": [{"name": "node1", "addresses": ["198.51.100.11/24"]}],
        "resources": [
            {"tag": "vip", "kit": "ip", "params": {"address": "198.51.100.100/24"}},
            {"tag": "web", "kit": "process", "params": params, "timeouts": timeouts,
             "depends_on": ["vip"], "check_interval": 1.0}],
    })


WEB = {"command": "sleep 100", "cwd": "/srv", "probe_tcp": "198.51.100.100:8080",
       "env": {"LANG": "C", "HOME": "/srv", "A": "1"}}


def test_params_given_in_another_order_export_the_same_bytes() -> None:
    given = _config(WEB, {"restore": 5.0, "remove": 7.0})
    other = _config({"env": {"A": "1", "HOME": "/srv", "LANG": "C"},
                     "probe_tcp": "198.51.100.100:8080", "cwd": "/srv", "command": "sleep 100"},
                    {"remove": 7.0, "restore": 5.0})
    assert to_yaml(given) == to_yaml(other)


def test_a_copy_with_its_keys_sorted_on_the_wire_exports_the_same_bytes() -> None:
    made_here = _config(WEB, {"restore": 5.0, "remove": 7.0})
    replicated = ClusterConfig.model_validate_json(
        json.dumps(made_here.model_dump(mode="json"), sort_keys=True))
    assert to_yaml(replicated) == to_yaml(made_here)


def test_model_fields_keep_their_order_and_the_export_reads_back() -> None:
    config = _config(WEB, {"restore": 5.0})
    text = to_yaml(config)
    keys = [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert keys[:2] == ["format", "name"]
    assert keys.index("nodes") < keys.index("resources")
    web = text[text.index("- tag: web"):]
    assert web.index("kit:") < web.index("params:") < web.index("depends_on:")
    assert from_yaml(text) == config


def test_params_in_the_kits_order_timeouts_in_the_actions_order_env_sorted() -> None:
    text = to_yaml(_config({"probe_tcp": "198.51.100.100:8080", "env": {"B": "2", "A": "1"},
                            "command": "sleep 100", "cwd": "/srv"},
                           {"quick_check": 3.0, "remove": 7.0, "restore": 5.0}))
    web = text[text.index("- tag: web"):]
    # as ProcessParams declares them, as `tutela kit show process` lists them
    assert web.index("command:") < web.index("cwd:") < web.index("env:") \
        < web.index("probe_tcp:")
    assert web.index("A: '1'") < web.index("B: '2'")
    assert web.index("restore: 5.0") < web.index("remove: 7.0") < web.index("quick_check: 3.0")
