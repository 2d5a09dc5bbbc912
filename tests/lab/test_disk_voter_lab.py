"""Two lab nodes and a shared-disk voter, no witness (issue 13 item 6): the disk's vote lets
the survivor take over when its peer is powered off, keeps a node cut from its peer (but not
from the disk) holding what it holds, and is no help to a node that loses both the disk and
its peer, which gives everything up. Under the split-brain checker throughout.

The disk voter's area lies on a disk of its own that each node sees through its own loop
device (tests/disk_views.py), so that one node can lose the disk while the other keeps it;
`tutela disk init` names each node's path with --node-device, as a LUN with different paths
on different servers would be configured.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from disk_views import cut, mend, shared_disk
from helpers import unique_lab_name, wait_until
from tutela.lab import Lab, LabCommandError
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import GREETING, WebService, create_web_service, fetch, owner
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
SAMPLES = 20
"""Looks at the owner, a tenth of a second apart: two seconds in which nothing may move."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("dv"), nodes=2, disks=1,
                root=tmp_path_factory.mktemp("dv")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def views(lab: Lab) -> Iterator[dict[str, str]]:
    """Each node's loop device onto the disk voter's disk."""
    with shared_disk(Path(lab.root), len(lab.nodes)) as devices:
        yield dict(zip(lab.nodes, devices, strict=True))
        for device in devices:
            mend(device)  # detach works on a cut view too; mended, nothing is left odd


@pytest.fixture(scope="module")
def service(lab: Lab, views: dict[str, str]) -> Iterator[WebService]:
    form_cluster(lab, "dv")
    _refused(lab, ["disk", "init", "/dev/tutela-no-such-lun", "--yes"],
             "disk_voter.device: /dev/tutela-no-such-lun: no such device on this node")
    _refused(lab, ["disk", "init", views["node1"]], "confirm with --yes")
    result = tutela(lab, "node1", "disk", "init", views["node1"],
                    "--node-device", f"node2={views['node2']}", "--yes", "--json")
    assert json.loads(result.stdout)["slots"] == ["node1", "node2"], result.stdout
    wait_until(lambda: all(_disk(lab, node)["state"] == "ok" for node in lab.nodes),
               timeout=30, what="both nodes to write and read the disk voter's area")
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        yield web
    assert checker.violations == [], checker.violations


def _refused(lab: Lab, args: list[str], message: str) -> None:
    """`tutela disk init` refuses (exit 2) with `message`, and the cluster has no disk voter."""
    result = tutela(lab, "node1", *args, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert status(lab, "node1")["disk_voter"] is None


def _disk(lab: Lab, node: str) -> dict[str, Any]:
    view: dict[str, Any] | None = status(lab, node).get("disk_voter")
    assert view is not None, f"{node} has no disk voter in its status"
    return view


def _disk_ok(lab: Lab, node: str) -> bool:
    try:
        return bool(_disk(lab, node)["state"] == "ok")
    except LabCommandError:  # a daemon still starting
        return False


def test_the_disk_is_a_voter_of_both_nodes(lab: Lab, service: WebService) -> None:
    assert owner(lab, service) == "node1"
    for node in lab.nodes:
        disk = _disk(lab, node)
        assert disk["voter"].startswith("disk@")
        assert disk["slot"] == lab.nodes.index(node)
    wait_until(lambda: "app" in _disk(lab, "node1")["claims"], timeout=10,
               what="node1's slot to claim app")
    shown = tutela(lab, "node2", "disk", "show").stdout
    assert "slot 0 node1: claims" in shown and "app" in shown, shown
    again = tutela(lab, "node1", "disk", "init", lab.disks[0], "--yes", check=False)
    assert again.returncode == 2 and "'tutela disk remove' first" in again.stderr


def test_a_node_cut_from_its_peer_but_not_the_disk_keeps_what_it_holds(
        lab: Lab, service: WebService) -> None:
    """node1 keeps its own vote and the disk's, writing its slot every round; node2 never
    sees node1's claim unchanged for the window, so it never takes over."""
    assert owner(lab, service) == "node1"
    lab.cut("node2", peer="node1")
    try:
        wait_until(lambda: {n["name"]: n for n in status(lab, "node2")["nodes"]}["node1"][
            "state"] == "DEAD", timeout=10, what="node2 to lose node1")
        for _ in range(SAMPLES):
            assert owner(lab, service) == "node1"
            assert fetch(lab, service.url, timeout=0.5) == GREETING
        assert service.vip not in lab.addresses("node2")
    finally:
        lab.heal("node2", peer="node1")
    wait_until(lambda: all_alive(lab), timeout=20, what="healed")


def test_a_node_that_loses_the_disk_and_its_peer_gives_everything_up(
        lab: Lab, service: WebService, views: dict[str, str]) -> None:
    """node1 has one vote of three: its lease ends and it takes app out of service; node2,
    with its own vote and the disk's, takes over once node1's claim stood still for W."""
    assert owner(lab, service) == "node1"
    cut(views["node1"])
    lab.cut("node1")
    try:
        wait_until(lambda: not any(m == str(service.mountpoint) for _, m in lab.mounts("node1"))
                   and service.vip not in lab.addresses("node1"), timeout=20,
                   what="node1 to give the address and the mount up")
        wait_until(lambda: owner(lab, service) == "node2", timeout=30,
                   what="node2 to take over with the disk's vote")
        wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=20,
                   what="the client to reach it on node2")
        assert _disk(lab, "node1")["state"] == "failing"
    finally:
        lab.heal("node1")
        mend(views["node1"])
    wait_until(lambda: all_alive(lab) and _disk_ok(lab, "node1"), timeout=30,
               what="node1 back with the disk")


def test_the_survivor_takes_over_with_the_disks_vote(lab: Lab, service: WebService) -> None:
    """The owner is powered off; the survivor's own vote and the disk's are a majority."""
    holder = owner(lab, service)
    assert holder is not None
    survivor = next(n for n in lab.nodes if n != holder)
    lab.power_off(holder)
    wait_until(lambda: owner(lab, service) == survivor, timeout=30,
               what=f"{survivor} to take over")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=20,
               what="the client to reach it")
    assert "app" in _disk(lab, survivor)["claims"]
