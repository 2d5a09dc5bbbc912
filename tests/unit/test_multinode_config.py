"""A multi-node hierarchy may not hold a resource that must run on one node at a time: apply
refuses it naming the resource and why (lcd.validate)."""

from __future__ import annotations

import pytest

from tutela.lcd.document import from_yaml
from tutela.lcd.validate import validate_config
from tutela.model.errors import ConfigError

DOCUMENT = """\
name: c
nodes: [{name: node1}, {name: node2}]
resources:
- {tag: vip, kit: ip, params: {address: 198.51.100.100/24}}
- {tag: web, kit: process, params: {command: sleep 100}, depends_on: [%s]}
hierarchies:
- root: web
  multi_node: true
  equivalencies: [{node: node1, priority: 1}, {node: node2, priority: 2}]
"""


def test_a_multi_node_hierarchy_with_an_address_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        validate_config(from_yaml(DOCUMENT % "vip"))
    [problem] = [str(p) for p in refused.value.problems]
    assert problem.startswith("hierarchies[web].multi_node: web runs on several nodes at "
                              "once, but its resource vip (ip) may not: a virtual address")
    assert "set multi_node: false" in problem


def test_a_multi_node_hierarchy_of_processes_is_taken() -> None:
    config = from_yaml(DOCUMENT % "")
    roots = {h.root for h in validate_config(config)}
    assert roots == {"vip", "web"} and config.hierarchy_settings("web").multi_node
