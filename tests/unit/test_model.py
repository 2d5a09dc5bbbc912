"""Model: configuration validation and the hierarchy graph."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tutela.model.config import ClusterConfig, Equivalency, HierarchySettings, Resource
from tutela.model.errors import ConfigError
from tutela.model.hierarchy import build_hierarchies, find_cycle


def res(tag: str, *children: str) -> Resource:
    return Resource(tag=tag, kit="generic", depends_on=children)


def test_chain_is_one_hierarchy_with_its_root() -> None:
    [hierarchy] = build_hierarchies([res("app", "fs"), res("fs", "ip"), res("ip")])
    assert hierarchy.root == "app"
    assert hierarchy.subtree("fs") == {"fs", "ip"}
    assert hierarchy.dependents("fs") == {"fs", "app"}


def test_independent_resources_are_separate_hierarchies() -> None:
    roots = [h.root for h in build_hierarchies([res("a"), res("b"), res("c", "b")])]
    assert roots == ["a", "c"]


def test_cycle_is_rejected_naming_the_cycle() -> None:
    with pytest.raises(ConfigError) as error:
        build_hierarchies([res("a", "b"), res("b", "c"), res("c", "a")])
    problem = error.value.problems[0]
    assert "a -> b -> c -> a" in problem.message
    assert problem.field == "resources[a].depends_on"


def test_unknown_child_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown resource 'nope'"):
        build_hierarchies([res("a", "nope")])


def test_two_roots_sharing_a_child_are_rejected() -> None:
    with pytest.raises(ConfigError, match="several roots"):
        build_hierarchies([res("a", "shared"), res("b", "shared"), res("shared")])


def test_diamond_has_one_root() -> None:
    [hierarchy] = build_hierarchies([res("app", "fs1", "fs2"), res("fs1", "disk"),
                                     res("fs2", "disk"), res("disk")])
    assert hierarchy.parents_of("disk") == ("fs1", "fs2")


def test_bad_tag_is_refused() -> None:
    with pytest.raises(ValidationError):
        Resource(tag="bad tag!", kit="ip")


def test_equivalency_priorities_are_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        HierarchySettings(root="app", equivalencies=(Equivalency(node="a", priority=1),
                                                     Equivalency(node="b", priority=1)))


def test_unknown_timeout_action_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown action"):
        Resource(tag="a", kit="ip", timeouts={"start": 3})


def test_config_is_immutable() -> None:
    config = ClusterConfig(name="c")
    with pytest.raises(ValidationError):
        config.name = "d"  # type: ignore[misc]


@given(st.dictionaries(st.sampled_from("abcdefgh"),
                       st.lists(st.sampled_from("abcdefgh"), max_size=3, unique=True)))
def test_find_cycle_agrees_with_a_topological_sort(graph: dict[str, list[str]]) -> None:
    nodes = set(graph) | {c for kids in graph.values() for c in kids}
    children = {n: graph.get(n, []) for n in nodes}
    remaining = dict(children)
    while True:  # Kahn-style: peel off nodes whose children are all gone
        leaves = [n for n, kids in remaining.items() if not set(kids) & set(remaining)]
        if not leaves:
            break
        for leaf in leaves:
            del remaining[leaf]
    cycle = find_cycle(children)
    assert (cycle is not None) == bool(remaining)
    if cycle:
        assert cycle[0] == cycle[-1]
        for parent, child in itertools.pairwise(cycle):
            assert child in children[parent]
