"""Configuration size on two lab nodes: a change too large to replicate is refused before it
is written anywhere; one just under the limit, larger than a piece, reaches the other node
in pieces, by push and by catch-up after the node was away; later changes keep working; a
node that cannot fetch a newer version says why in `tutela status`.

The 1.5 MB case is the one that jammed replication: committed on node1 alone, then never
fetched by node2, and every later change failed on both nodes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import all_alive, form_cluster, node_view, status, tutela
from tutela.lcd.size import CONFIG_LIMIT, MIB
from tutela.lcd.transfer import PIECE_BYTES

pytestmark = pytest.mark.lab
JUST_UNDER = CONFIG_LIMIT - 16 * 1024
"""A value that leaves the rest of a two-node configuration room under the limit."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("csize"), nodes=2, disks=0,
                root=tmp_path_factory.mktemp("csize"), tty=True) as built:
        try:
            form_cluster(built, "csize")
            tutela(built, "node1", "path", "add", "node2", built.tty_device("node1", "node2"),
                   built.tty_device("node2", "node1"), "--kind", "tty", "--priority", "3")
            wait_until(lambda: all_alive(built), timeout=15, what="every path ALIVE")
            yield built
        finally:
            for node in built.nodes:
                tutela(built, node, "stop", check=False)


def document(lab: Lab, node: str) -> dict[str, Any]:
    return yaml.safe_load(tutela(lab, node, "export").stdout)  # type: ignore[no-any-return]


def with_blob(data: dict[str, Any], size: int, tag: str = "web") -> dict[str, Any]:
    """`data` with resource `tag` carrying a value of `size` bytes."""
    resource = {"tag": tag, "kit": "process",
                "params": {"command": "sleep 1000", "env": {"BLOB": "x" * size}}}
    kept = [r for r in data.get("resources", []) if r["tag"] != tag]
    return {**data, "resources": [*kept, resource]}


def apply(lab: Lab, node: str, data: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return lab.exec(node, ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data),
                    check=False, timeout=120)


def set_quorum(lab: Lab, node: str, mode: str) -> None:
    data = document(lab, node)
    data.setdefault("settings", {})["quorum"] = mode
    done = apply(lab, node, data)
    assert done.returncode == 0, done.stderr


def snapshot(lab: Lab) -> dict[str, tuple[int, str]]:
    """Each node's generation and export."""
    return {node: (status(lab, node)["generation"], tutela(lab, node, "export").stdout)
            for node in lab.nodes}


def same_everywhere(lab: Lab) -> bool:
    return len({export for _, export in snapshot(lab).values()}) == 1


def test_a_change_too_large_to_replicate_is_refused_and_changes_nothing(lab: Lab) -> None:
    before = snapshot(lab)
    refused = apply(lab, "node1", with_blob(document(lab, "node1"), int(1.5 * MIB)))
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "resources[web].params.env.BLOB: is 1.5 MiB" in said, said
    assert "a configuration may be at most 768 KiB in all" in said, said
    assert snapshot(lab) == before
    assert status(lab, "node2")["config_fetch"] is None


def test_a_change_just_under_the_limit_reaches_the_other_node_in_pieces(lab: Lab) -> None:
    assert JUST_UNDER > 2 * PIECE_BYTES  # it travels in three pieces
    done = apply(lab, "node1", with_blob(document(lab, "node1"), JUST_UNDER))
    assert done.returncode == 0, done.stderr
    # The change returned: a majority (both nodes) took it.
    generations = {generation for generation, _ in snapshot(lab).values()}
    assert len(generations) == 1
    assert same_everywhere(lab)
    assert "x" * 1000 in tutela(lab, "node2", "export").stdout
    tutela(lab, "node2", "resource", "delete", "web")  # and back, from the other node
    assert same_everywhere(lab)


def test_later_changes_keep_working_on_both_nodes(lab: Lab) -> None:
    for node, tag in (("node2", "after2"), ("node1", "after1")):
        tutela(lab, node, "resource", "create", "process", tag, "-p", "command=sleep 1000")
        assert same_everywhere(lab)
    for node, tag in (("node1", "after2"), ("node2", "after1")):
        tutela(lab, node, "resource", "delete", tag)
        assert same_everywhere(lab)


def test_a_node_that_was_away_fetches_a_large_configuration(lab: Lab) -> None:
    """quorum 'none', so that node1 alone may change it while node2 is off."""
    set_quorum(lab, "node1", "none")
    lab.power_off("node2")
    wait_until(lambda: node_view(lab, "node1")["node2"]["state"] == "DEAD", timeout=10,
               what="node2 DEAD")
    done = apply(lab, "node1", with_blob(document(lab, "node1"), JUST_UNDER, "away"))
    assert done.returncode == 0, done.stderr
    wanted = status(lab, "node1")["generation"]
    lab.power_on("node2")  # its daemon comes back with the old generation
    wait_until(lambda: status(lab, "node2")["generation"] == wanted, timeout=30,
               what="node2 to catch up")
    assert same_everywhere(lab)
    assert status(lab, "node2")["config_fetch"] is None
    wait_until(lambda: all_alive(lab), timeout=15, what="every path ALIVE")
    data = document(lab, "node2")
    data["settings"]["quorum"] = "majority"
    data["resources"] = [r for r in data["resources"] if r["tag"] != "away"]
    assert apply(lab, "node2", data).returncode == 0
    assert same_everywhere(lab)


def test_a_node_that_cannot_fetch_says_why_and_catches_up_when_it_can(lab: Lab) -> None:
    """node2 hears node1 over the serial cable, but what it sends is lost: it sees node1's
    newer generation and cannot fetch it."""
    set_quorum(lab, "node1", "none")
    lab.cut("node2", net=1)
    lab.cut("node2", net=2)
    lab.cut("node2", net="tty", direction="out")
    try:
        wait_until(lambda: node_view(lab, "node1")["node2"]["state"] == "DEAD", timeout=10,
                   what="node2 DEAD for node1")
        wait_until(lambda: node_view(lab, "node2")["node1"]["state"] == "ALIVE", timeout=10,
                   what="node1 ALIVE for node2 (over the cable)")
        tutela(lab, "node1", "resource", "create", "process", "unseen",
               "-p", "command=sleep 1000")
        wanted = status(lab, "node1")["generation"]
        problem = wait_until(lambda: status(lab, "node2")["config_fetch"], timeout=30,
                             what="node2 to say why it cannot fetch")
        assert (problem["generation"], problem["from"]) == (wanted, "node1"), problem
        assert "node1 did not answer config.get" in problem["error"], problem
        assert "check the comm paths to node1" in problem["fix"], problem
        assert problem["attempts"] >= 1 and problem["since"], problem
        said = tutela(lab, "node2", "status").stdout
        assert f"cannot fetch configuration generation {wanted} from node1" in said, said
        assert status(lab, "node2")["generation"] < wanted
    finally:
        lab.heal_all()
    wait_until(lambda: status(lab, "node2")["generation"] == wanted, timeout=30,
               what="node2 to catch up once healed")
    assert status(lab, "node2")["config_fetch"] is None
    assert same_everywhere(lab)
    wait_until(lambda: all_alive(lab), timeout=15, what="every path ALIVE")
    tutela(lab, "node2", "resource", "delete", "unseen")
    set_quorum(lab, "node2", "majority")
    assert same_everywhere(lab)
