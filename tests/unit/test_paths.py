"""Comm paths as each node sees them, and the paths a joining node gets."""

from __future__ import annotations

from tutela.lcm.paths import path_name, paths_between, paths_for
from tutela.model.config import ClusterConfig, CommPath, Node


def node(name: str, *addresses: str) -> Node:
    return Node(name=name, addresses=addresses)


def test_joining_node_gets_a_path_on_every_shared_network() -> None:
    old = node("a", "198.51.100.11/24", "203.0.113.11/24")
    new = node("b", "203.0.113.12/24", "198.51.100.12/24", "192.0.2.5/24")
    paths = paths_between(old, new)
    assert [(p.addresses, p.priority) for p in paths] == [
        (("203.0.113.11", "203.0.113.12"), 1), (("198.51.100.11", "198.51.100.12"), 2)]


def test_both_ends_name_a_path_alike_and_one_end_dials() -> None:
    tcp = CommPath(nodes=("a", "b"), addresses=("198.51.100.11", "198.51.100.12"))
    tty = CommPath(kind="tty", nodes=("a", "b"), devices=("/dev/ttyS0", "/dev/ttyS1"),
                   priority=3)
    config = ClusterConfig(name="c", nodes=(node("a"), node("b")), comm_paths=(tcp, tty))
    from_a, from_b = paths_for(config, "a"), paths_for(config, "b")
    assert [p.name for p in from_a] == [p.name for p in from_b] == [
        "tcp/198.51.100.11-198.51.100.12", "tty/a:/dev/ttyS0-b:/dev/ttyS1"]
    assert from_a[0].dials and not from_b[0].dials
    assert (from_b[1].local, from_b[1].remote) == ("/dev/ttyS1", "/dev/ttyS0")
    assert path_name(tcp) == from_a[0].name


def test_paths_of_other_nodes_are_not_mine() -> None:
    path = CommPath(nodes=("b", "c"), addresses=("198.51.100.12", "198.51.100.13"))
    config = ClusterConfig(name="c", nodes=(node("a"), node("b"), node("c")),
                           comm_paths=(path,))
    assert paths_for(config, "a") == []
