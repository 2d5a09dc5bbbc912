"""Dependencies between hierarchies that could never be met are refused before anything is
stored (lcd/validate.py), naming the dependency's field and the fix: `tutela apply` and
`tutela config set` both go through validate_config."""

from __future__ import annotations

from typing import Any

import pytest

from tutela.lcd.document import parse_config
from tutela.lcd.keypath import set_value
from tutela.lcd.validate import validate_config
from tutela.model.config import ClusterConfig
from tutela.model.errors import ConfigError

NODES = ("n1", "n2", "n3")


def document(*hierarchies: dict[str, Any]) -> dict[str, Any]:
    """Three nodes and three one-resource hierarchies (web, db, cache); `hierarchies` are
    their settings."""
    return {
        "name": "c",
        "nodes": [{"name": n} for n in NODES],
        "resources": [{"tag": tag, "kit": "process", "params": {"command": "sleep 100"}}
                      for tag in ("web", "db", "cache")],
        "hierarchies": list(hierarchies),
    }


def on(*nodes: str) -> list[dict[str, Any]]:
    return [{"node": node, "priority": i} for i, node in enumerate(nodes, 1)]


def needs(hierarchy: str, location: str = "same_node") -> dict[str, str]:
    return {"hierarchy": hierarchy, "location": location}


def problems(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as refused:
        validate_config(parse_config(data))
    return [(p.field, p.message, p.fix) for p in refused.value.problems]


def test_dependencies_that_can_be_met_are_accepted() -> None:
    config = parse_config(document(
        {"root": "web", "equivalencies": on("n1", "n2"),
         "dependencies": [needs("db"), needs("cache", "any_node")]},
        {"root": "db", "equivalencies": on("n2", "n3"),
         "dependencies": [needs("cache", "different_node")]},
        {"root": "cache", "equivalencies": on("n3", "n1", "n2"), "multi_node": True}))
    assert [h.root for h in validate_config(config)] == ["cache", "db", "web"]


def test_a_dependency_on_a_hierarchy_that_does_not_exist() -> None:
    [(field, message, fix)] = problems(document(
        {"root": "web", "equivalencies": on("n1"), "dependencies": [needs("dbx")]}))
    assert field == "hierarchies[web].dependencies[0].hierarchy"
    assert message == "'dbx' is not the root of a hierarchy"
    assert fix == "use one of: cache, db"


def test_a_dependency_on_itself() -> None:
    [(field, message, fix)] = problems(document(
        {"root": "web", "equivalencies": on("n1"),
         "dependencies": [needs("db", "any_node"), needs("web")]},
        {"root": "db", "equivalencies": on("n1")}))
    assert field == "hierarchies[web].dependencies[1].hierarchy"
    assert message == "web depends on itself"
    assert fix == "remove this dependency"


def test_a_cycle_is_named_whole() -> None:
    [(field, message, fix)] = problems(document(
        {"root": "web", "equivalencies": on("n1", "n2"), "dependencies": [needs("db")]},
        {"root": "db", "equivalencies": on("n1", "n2"),
         "dependencies": [needs("cache", "different_node")]},
        {"root": "cache", "equivalencies": on("n1", "n2"),
         "dependencies": [needs("web", "any_node")]}))
    assert field == "hierarchies[cache].dependencies[0].hierarchy"
    assert message == ("a cycle of dependencies: cache -> web -> db -> cache; none of them "
                       "could ever start")
    assert fix == "remove one of these dependencies"


def test_a_same_node_dependency_without_a_node_in_common() -> None:
    [(field, message, fix)] = problems(document(
        {"root": "web", "equivalencies": on("n1", "n2"), "dependencies": [needs("db")]},
        {"root": "db", "equivalencies": on("n3")}))
    assert field == "hierarchies[web].dependencies[0].hierarchy"
    assert message == ("same_node: web runs on n1, n2 and db on n3, never on the same node, "
                       "so web could never run")
    assert fix == ("give web and db a node in common in their equivalencies, or use "
                   "location any_node")


def test_a_different_node_dependency_with_one_node_between_them() -> None:
    [(field, message, fix)] = problems(document(
        {"root": "web", "equivalencies": on("n2"),
         "dependencies": [needs("db", "different_node")]},
        {"root": "db", "equivalencies": on("n2")}))
    assert field == "hierarchies[web].dependencies[0].hierarchy"
    assert message == "different_node: web and db can both run only on n2, so web could never run"
    assert fix == ("add another node to the equivalencies of web or db, or use location "
                   "same_node or any_node")


@pytest.mark.parametrize("multi_node", [False, True])
def test_a_clustered_hierarchy_on_one_without_equivalencies(multi_node: bool) -> None:
    [(field, message, fix)] = problems(document(
        {"root": "web", "equivalencies": on("n1", "n2"), "multi_node": multi_node,
         "dependencies": [needs("db", "any_node")]}))
    assert field == "hierarchies[web].dependencies[0].hierarchy"
    assert message.startswith("db has no equivalencies: it runs only on the node where it "
                              "was restored by hand")
    assert fix == ("give db equivalencies (tutela hierarchy extend db --to NODE --priority "
                   "N), or remove this dependency")


def test_hierarchies_without_equivalencies_may_depend_on_each_other() -> None:
    """Both local: they run where they are restored, so nothing rules a node out."""
    validate_config(parse_config(document({"root": "web", "dependencies": [needs("db")]})))


def test_every_problem_is_listed_at_once() -> None:
    fields = [field for field, _, _ in problems(document(
        {"root": "web", "equivalencies": on("n1"),
         "dependencies": [needs("web", "any_node"), needs("nope"), needs("db")]},
        {"root": "db", "equivalencies": on("n3")}))]
    assert fields == [f"hierarchies[web].dependencies[{i}].hierarchy" for i in range(3)]


def test_config_set_is_refused_the_same_way() -> None:
    """`tutela config set` parses the changed document and stores it through the same
    validation: the key of a dependency, set to a hierarchy that does not exist."""
    current = parse_config(document({"root": "web", "equivalencies": on("n1")},
                                    {"root": "db", "equivalencies": on("n1")}))
    changed = set_value(current.model_dump(mode="json"), "hierarchies.web.dependencies",
                        [needs("dbx")])
    config: ClusterConfig = parse_config(changed)
    with pytest.raises(ConfigError) as refused:
        validate_config(config)
    assert [p.field for p in refused.value.problems] == [
        "hierarchies[web].dependencies[0].hierarchy"]
