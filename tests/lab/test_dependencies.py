"""Dependencies between hierarchies on three lab nodes, under the split-brain checker:
`app` (a virtual address) needs `db` (a filesystem on the shared disk), both with the
equivalencies node1, node2, node3.

In order: a same_node dependency moves with its parent across a failover (node1 powered
off: both end on one surviving node, app after db); removing the parent takes the
same_node child out of service; an any_node dependency is restored first (app wanted in
service while db is out of service waits, its stuck reason naming db; db restored, app
comes up). The checker samples every node's addresses and mounts throughout: app's address
or db's filesystem on two nodes at once fails the module.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab

APP_ADDRESS = "198.51.100.111"
EQUIVALENCIES = [{"node": f"node{i}", "priority": i} for i in (1, 2, 3)]
IN_SERVICE = ("ISP", "ISU")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("dep"), nodes=3, disks=1,
                root=tmp_path_factory.mktemp("dep")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def mountpoint(lab: Lab) -> Iterator[Path]:
    """The cluster formed, db and app applied (out of service) with app needing db on the
    same node; the checker watches app's address and db's mount from here on."""
    form_cluster(lab, "dep")
    wait_until(lambda: all_alive(lab), timeout=30, what="the three nodes alive")
    mounted = lab.root / "mnt" / "db"
    subprocess.run(["mkfs.ext4", "-q", "-F", lab.disks[0]], check=True, timeout=120)
    document = yaml.safe_load(tutela(lab, "node1", "export").stdout)
    document["resources"] = [
        {"tag": "db", "kit": "filesystem",
         "params": {"device": lab.disks[0], "mountpoint": str(mounted), "fstype": "ext4"}},
        {"tag": "app", "kit": "ip", "params": {"address": f"{APP_ADDRESS}/24"}}]
    document["hierarchies"] = [
        {"root": "db", "equivalencies": EQUIVALENCIES},
        {"root": "app", "equivalencies": EQUIVALENCIES,
         "dependencies": [{"hierarchy": "db", "location": "same_node"}]}]
    path = lab.root / "dependencies.yaml"
    path.write_text(yaml.safe_dump(document))
    tutela(lab, "node1", "apply", "-f", str(path))
    with SplitBrainChecker(lab, APP_ADDRESS, str(mounted)) as checker:
        yield mounted
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def on(lab: Lab, mountpoint: Path) -> dict[str, list[str]]:
    """Physical truth: the nodes (not off) with db mounted, and with app's address."""
    up = [n for n in lab.nodes if lab.node_state(n) != "off"]
    return {"db": [n for n in up if any(m == str(mountpoint) for _, m in lab.mounts(n))],
            "app": [n for n in up if APP_ADDRESS in lab.addresses(n)]}


def hierarchy(lab: Lab, node: str, root: str) -> dict[str, Any]:
    return next(h for h in status(lab, node)["hierarchies"] if h["root"] == root)


def since(lab: Lab, node: str, root: str) -> str:
    """When `root` went into service on `node` (ISO UTC, milliseconds: they compare as text)."""
    [resource] = hierarchy(lab, node, root)["resources"]
    assert resource["state"] in IN_SERVICE, resource
    return str(resource["since"])


def test_both_start_on_node1_app_after_db(lab: Lab, mountpoint: Path) -> None:
    tutela(lab, "node1", "restore", "db")
    tutela(lab, "node1", "restore", "app")
    wait_until(lambda: on(lab, mountpoint) == {"db": ["node1"], "app": ["node1"]},
               timeout=30, what="db and app on node1")
    assert since(lab, "node1", "app") >= since(lab, "node1", "db")
    [entry] = hierarchy(lab, "node2", "app")["dependencies"]  # as a peer sees it
    assert entry | {"up_on": ["node1"], "met": True} == entry, entry


def test_same_node_dependency_follows_its_parent_across_a_failover(
        lab: Lab, mountpoint: Path) -> None:
    lab.power_off("node1")
    wait_until(lambda: (where := on(lab, mountpoint))["db"] != [] and where["app"] == where["db"],
               timeout=60, what="db and app together on one surviving node")
    [node] = on(lab, mountpoint)["db"]
    assert node in ("node2", "node3")
    wait_until(lambda: hierarchy(lab, node, "app")["resources"][0]["state"] in IN_SERVICE,
               timeout=10, what=f"app in service on {node} as its status says")
    assert since(lab, node, "app") >= since(lab, node, "db"), "app came up before db"
    lab.power_on("node1")  # its daemon starts with the lab node
    wait_until(lambda: all_alive(lab), timeout=30, what="node1 back in the cluster")
    assert on(lab, mountpoint) == {"db": [node], "app": [node]}  # switchback intelligent


def test_removing_the_parent_takes_the_same_node_child_out(lab: Lab,
                                                           mountpoint: Path) -> None:
    tutela(lab, "node1", "remove", "db")
    wait_until(lambda: on(lab, mountpoint) == {"db": [], "app": []}, timeout=30,
               what="app out of service with db")
    assert hierarchy(lab, "node1", "app")["dependencies"][0]["met"] is False


def test_an_any_node_dependency_is_restored_first(lab: Lab, mountpoint: Path) -> None:
    """app stays wanted in service (its target was not changed by db's removal): with an
    any_node dependency it waits for db, says why, and comes up once db is restored."""
    tutela(lab, "node1", "config", "set", "hierarchies.app.dependencies",
           "[{hierarchy: db, location: any_node}]")
    assert hierarchy(lab, "node1", "app")["dependencies"][0]["location"] == "any_node"
    wait_until(lambda: _waits_for_db(hierarchy(lab, "node1", "app")), timeout=20,
               what="app's stuck reason naming its dependency on db")
    assert on(lab, mountpoint) == {"db": [], "app": []}
    tutela(lab, "node1", "restore", "db")
    wait_until(lambda: on(lab, mountpoint)["app"] != [], timeout=30,
               what="app in service once db is")
    [app_node], [db_node] = on(lab, mountpoint)["app"], on(lab, mountpoint)["db"]
    wait_until(lambda: hierarchy(lab, app_node, "app")["resources"][0]["state"] in IN_SERVICE,
               timeout=10, what=f"app in service on {app_node} as its status says")
    # the lab's nodes share the host's clock, so times of two nodes compare
    assert since(lab, app_node, "app") >= since(lab, db_node, "db"), "app came up before db"


def _waits_for_db(app: dict[str, Any]) -> bool:
    stuck = (app.get("ownership") or {}).get("stuck", [])
    return any(entry.get("reason") == "dependency" and "needs db up on some node"
               in entry["message"] for entry in stuck)
