"""A configuration that gives a list or mapping field something else is refused in plain
words: what was expected, what was given, and an example of the field written right."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from tutela.lcd.document import from_yaml, parse_config
from tutela.lcd.validate import validate_config
from tutela.model.config import COLLECTION_EXAMPLES, ClusterConfig
from tutela.model.errors import ConfigError


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        from_yaml("name: c\n" + text)
    return [str(problem) for problem in refused.value.problems]


@pytest.mark.parametrize(("text", "expected"), [
    ("resources:\n  web: {kit: process}\n",
     "resources: expected a list, got a mapping (web) (fix: write it like resources: [{tag:"),
    ("resources:\n- web\n",
     "resources[0]: expected each entry to be a mapping, got 'web' (fix: write it like "
     "resources: [{tag:"),
    ("resources:\n- {tag: web, kit: process, depends_on: vip}\n",
     "resources[web].depends_on: expected a list, got 'vip' (fix: write it like "
     "depends_on: [vip, data])"),
    ("resources:\n- {tag: web, kit: process, params: [a, b]}\n",
     "resources[web].params: expected a mapping, got a list of 2 items (fix: write it like "
     "params: {"),
    ("nodes:\n- {name: n1, addresses: 198.51.100.1/24}\n",
     "nodes[n1].addresses: expected a list, got '198.51.100.1/24' (fix: write it like "
     "addresses: [198.51.100.11/24"),
    ("comm_paths:\n- {nodes: [n1, n2, n3], addresses: [a, b]}\n",
     "comm_paths[0].nodes: expected at most 2 items, got 3 (fix: write it like "
     "nodes: [node1, node2])"),
    ("comm_paths:\n- {nodes: [n1], addresses: [a, b]}\n",
     "comm_paths[0].nodes: too few items: a list of 1 item (fix: write it like "
     "nodes: [node1, node2])"),
    ("settings: [a]\n",
     "settings: expected a mapping, got a list of 1 item (fix: write it like settings: {"),
    ("hierarchies:\n- {root: web, equivalencies: {node: n1, priority: 1}}\n",
     "hierarchies[web].equivalencies: expected a list, got a mapping (node, priority) "
     "(fix: write it like equivalencies: [{node: node1, priority: 1}"),
    ("resources:\n- {tag: web, kit: process, depends_on: [a, a]}\n",
     "resources[web].depends_on: a child is listed twice (fix: correct the value)"),
])
def test_a_wrongly_shaped_field_is_named_with_an_example(text: str, expected: str) -> None:
    assert any(problem.startswith(expected) for problem in _problems(text)), _problems(text)


def test_every_example_is_valid_yaml_of_the_right_shape() -> None:
    import yaml

    for path, example in COLLECTION_EXAMPLES.items():
        written = example.split(" (")[0]  # an example may end with a remark in parentheses
        value = yaml.safe_load(written)[path.rsplit(".", 1)[-1]]
        assert isinstance(value, list | dict), path


def _collection_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Paths (without list indices) of every list or mapping field below `model`."""
    found = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = _without_none(field.annotation)
        origin = typing.get_origin(annotation)
        items = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if origin in (tuple, list, dict) or _is_model(annotation):
            found.append(path)
        for inner in [annotation, *items]:
            if _is_model(inner):
                found += _collection_fields(inner, f"{path}.")
    return found


def _without_none(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def test_every_list_or_mapping_field_has_an_example() -> None:
    missing = set(_collection_fields(ClusterConfig)) - set(COLLECTION_EXAMPLES)
    assert not missing, f"add an example to COLLECTION_EXAMPLES in model/config.py: {missing}"


@pytest.mark.parametrize(("params", "expected"), [
    ({"kit": "ip", "params": {"address": "198.51.100.1/24", "ping_list": {"a": 1}}},
     "resources[v].params.ping_list: expected a list, got a mapping (a) "
     "(fix: see: tutela kit show ip)"),
    ({"kit": "process", "params": {"command": "x", "env": ["A=1"]}},
     "resources[v].params.env: expected a mapping, got a list of 1 item "
     "(fix: see: tutela kit show process)"),
])
def test_a_wrongly_shaped_kit_parameter_is_named_plainly(params: dict[str, Any],
                                                        expected: str) -> None:
    config = parse_config({"name": "c", "resources": [{"tag": "v", **params}]})
    with pytest.raises(ConfigError) as refused:
        validate_config(config)
    assert [str(problem) for problem in refused.value.problems] == [expected]
