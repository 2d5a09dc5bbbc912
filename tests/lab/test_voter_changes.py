"""Changes of the voters on a three-node lab cluster with a witness (docs/cluster.md, "One
configuration on every node"; docs/leases.md, "Configuration replication and changes of the
voters"): two at once are refused, one at a time works (a node removed, joined again, a
witness removed while a node is off), and every node ends on the same version.

The tests run in order on one cluster, each starting where the one before ended.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab, LabCommandError
from tutela.lab.driver import (
    FORM_TIMEOUT,
    WITNESS_PORT,
    all_alive,
    form_cluster_with_witness,
    node_view,
    status,
    tutela,
    witness_alive,
    witness_lab,
)

pytestmark = pytest.mark.lab
SETTLE = 30.0
"""Seconds the nodes may take to agree on a version or to see each other, on a machine
many lab tests share."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with witness_lab(unique_lab_name("voter"), tmp_path_factory.mktemp("voter"), nodes=3,
                     disks=0) as (built, _):
        form_cluster_with_witness(built, "voters")
        yield built


def versions(lab: Lab, observers: list[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """Each observer's view of every node's version (generation, epoch)."""
    return {observer: {n["name"]: tuple(n["version"]) for n in status(lab, observer)["nodes"]}
            for observer in observers}


def one_version(lab: Lab, members: list[str], running: list[str]) -> tuple[int, int] | None:
    """The version that every running node holds and sees every running node hold, when
    each lists exactly `members` as the cluster's nodes; else None."""
    try:
        views = versions(lab, running)
    except LabCommandError:  # a daemon still starting
        return None
    seen = {view.get(node) for view in views.values() for node in running}
    agree = all(sorted(view) == sorted(members) for view in views.values())
    return seen.pop() if agree and len(seen) == 1 else None


def wait_one_version(lab: Lab, members: list[str], running: list[str] | None = None
                     ) -> tuple[int, int]:
    """Wait for `one_version` of the running nodes (by default every member)."""
    up = running or members
    version = wait_until(lambda: one_version(lab, members, up), timeout=SETTLE,
                         what=f"{', '.join(up)} on one version with the nodes "
                              f"{', '.join(members)}")
    assert version is not None  # wait_until returns only a truthy value
    return version


def without_nodes(document: str, gone: set[str]) -> str:
    """The exported configuration without the nodes `gone` and their comm paths."""
    data = yaml.safe_load(document)
    data["nodes"] = [n for n in data["nodes"] if n["name"] not in gone]
    data["comm_paths"] = [p for p in data["comm_paths"] if not gone & set(p["nodes"])]
    return yaml.safe_dump(data)


def apply(lab: Lab, node: str, document: str, *options: str
          ) -> subprocess.CompletedProcess[str]:
    return lab.exec(node, ["tutela", "apply", "-f", "-", *options], check=False,
                    timeout=120, input=document)


def test_apply_removing_two_nodes_at_once_is_refused(lab: Lab) -> None:
    before = versions(lab, lab.nodes)
    document = without_nodes(tutela(lab, "node1", "export").stdout, {"node2", "node3"})
    for options in (("--dry-run",), ()):
        refused = apply(lab, "node1", document, *options)
        # Exit 2: a change that is not allowed, nothing changed (docs/cli.md, exit codes).
        assert refused.returncode == 2, (options, refused.stdout, refused.stderr)
        assert "removes node2, removes node3" in refused.stderr, refused.stderr
        assert "change one at a time" in refused.stderr, refused.stderr
    assert versions(lab, lab.nodes) == before


def test_remove_a_stopped_node(lab: Lab) -> None:
    remove_node3(lab)


def remove_node3(lab: Lab) -> None:
    """Stop node3's tutelad, remove it on node1; node1 and node2 end on one version."""
    tutela(lab, "node3", "stop")
    removed = json.loads(tutela(lab, "node1", "node", "remove", "node3", "--json").stdout)
    version = wait_one_version(lab, ["node1", "node2"])
    assert version[0] == removed["generation"]
    for node in ("node1", "node2"):
        assert "node3" not in tutela(lab, node, "export").stdout


def test_the_removed_node_joins_again(lab: Lab) -> None:
    before = replays(lab)
    started = join_node3_anew(lab)
    assert started.returncode == 0, started.stderr
    wait_one_version(lab, lab.nodes)
    wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=SETTLE,
               what="every node and the witness ALIVE")
    # the peers forgot the removed run's replay window: none of the new run's frames
    # (a fresh state directory starts at seq 1 again) is taken for a replay
    assert replays(lab) - before == 0


def replays(lab: Lab) -> int:
    """Frames node1 and node2 dropped as replays so far."""
    return sum(status(lab, node)["dropped_frames"].get("replay", 0)
               for node in ("node1", "node2"))


def join_node3_anew(lab: Lab) -> subprocess.CompletedProcess[str]:
    """docs/cluster.md: move node3's state directory away, join with a fresh token from
    node1, start; the result of `tutela start`."""
    state = lab.state_dir("node3")
    state.rename(state.with_name(f"{state.name}.removed-{time.monotonic_ns()}"))
    token = json.loads(tutela(lab, "node1", "node", "token", "--json").stdout)["token"]
    tutela(lab, "node3", "join", lab.node_address("node1"), "--token", token)
    return tutela(lab, "node3", "start", "--timeout", str(FORM_TIMEOUT), check=False)


def test_a_hierarchy_moves_to_the_joined_node_and_fails_over_with_its_vote(lab: Lab) -> None:
    """The hierarchy's lease is counted over node1, node2, node3 and the witness: 3 of 4
    votes. node3 takes it by switchover; when its owner node1 is powered off, node2 or
    node3 takes it over only with node3's vote (node2, node3 and the witness)."""
    tutela(lab, "node1", "resource", "create", "process", "app", "-p", "command=sleep 1000")
    for node, priority in (("node2", "2"), ("node3", "3")):
        tutela(lab, "node1", "hierarchy", "extend", "app", "--to", node,
               "--priority", priority)
    tutela(lab, "node1", "restore", "app")
    for node in ("node3", "node1"):
        tutela(lab, "node1", "switchover", "app", "--to", node)
        wait_in_service(lab, node)
    lab.power_off("node1")
    wait_until(lambda: [app_state(lab, n) for n in ("node2", "node3")].count("ISP") == 1,
               timeout=SETTLE, what="app taken over by node2 or node3")
    lab.power_on("node1")
    wait_one_version(lab, lab.nodes)
    tutela(lab, "node1", "remove", "app")  # out of service before the next test's power-off
    wait_until(lambda: all(app_state(lab, n) == "OSU" for n in lab.nodes), timeout=SETTLE,
               what="app out of service everywhere")


def wait_in_service(lab: Lab, node: str) -> None:
    wait_until(lambda: app_state(lab, node) == "ISP", timeout=SETTLE,
               what=f"app in service on {node}")


def app_state(lab: Lab, node: str) -> str | None:
    return next((r["state"] for h in status(lab, node)["hierarchies"] for r in h["resources"]
                 if r["tag"] == "app"), None)


def test_remove_the_witness_while_a_node_is_off(lab: Lab) -> None:
    wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=SETTLE,
               what="every node and the witness ALIVE")
    lab.power_off("node2")
    wait_until(lambda: node_view(lab, "node1")["node2"]["state"] == "DEAD", timeout=SETTLE,
               what="node2 DEAD")
    removed = json.loads(tutela(lab, "node1", "witness", "remove",
                                    f"{lab.client_address()}:{WITNESS_PORT}", "--json").stdout)
    assert wait_one_version(lab, lab.nodes, ["node1", "node3"])[0] == removed["generation"]
    lab.power_on("node2")
    version = wait_one_version(lab, lab.nodes)
    assert version[0] == removed["generation"]
    for node in lab.nodes:
        assert status(lab, node)["witnesses"] == []


def test_a_node_restarted_before_its_removal_is_heard_when_it_joins_again(lab: Lab) -> None:
    """The same removal and join as above, but node3's tutelad was restarted before (as any
    node in service for a while has been): its last run had a higher incarnation than the
    first run of the fresh state directory that joins."""
    tutela(lab, "node3", "stop")
    tutela(lab, "node3", "start", "--timeout", str(FORM_TIMEOUT))
    remove_node3(lab)
    started = join_node3_anew(lab)  # heard although its incarnation is lower than before
    assert started.returncode == 0, started.stderr
    wait_one_version(lab, lab.nodes)
