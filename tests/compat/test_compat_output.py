"""The LifeKeeper and Serviceguard formats (docs/compat.md) from a recorded status: a three-
node lab cluster 'shop' whose hierarchy app -> data -> vip runs on node1 and may run on
node2 (priority 2), as node2 reports it (recorded/, by `tutela status --json` and `tutela
export` on node2). The outputs are compared with golden files (TUTELA_UPDATE_GOLDEN=1
rewrites them, for review)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from helpers import check_goldens
from tutela.compat.serviceguard import known_package
from tutela.compat.view import (
    cluster_view,
    cmviewcl_line,
    cmviewcl_table,
    lcdstatus_detailed,
    lcdstatus_short,
)
from tutela.lcd.document import from_yaml
from tutela.model.config import ClusterConfig, HierarchySettings

HERE = Path(__file__).parent
RECORDED, GOLDEN = HERE / "recorded", HERE / "golden"


@pytest.fixture
def status() -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads((RECORDED / "status-node2.json").read_text())
    return recorded


@pytest.fixture
def config() -> ClusterConfig:
    return from_yaml((RECORDED / "cluster.yaml").read_text(), "cluster.yaml")


def halted_without_switching(status: dict[str, Any], config: ClusterConfig
                             ) -> tuple[dict[str, Any], ClusterConfig]:
    """The same cluster after cmhaltpkg app: out of service everywhere, failover false."""
    halted = copy.deepcopy(status)
    for hierarchy in halted["hierarchies"]:
        for resource in hierarchy["resources"]:
            for there in resource["elsewhere"].values():
                there["state"] = "OSU"
    settings = [HierarchySettings.model_validate({**h.model_dump(), "failover": False,
                                                  "target": "out_of_service"})
                for h in config.hierarchies]
    return halted, config.model_copy(update={"hierarchies": tuple(settings)})


def test_every_format_matches_its_golden(status: dict[str, Any], config: ClusterConfig
                                         ) -> None:
    view = cluster_view(status, config)
    outputs = {
        "cmviewcl.txt": cmviewcl_table(view, False, None, (), ()),
        "cmviewcl-v.txt": cmviewcl_table(view, True, None, (), ()),
        "cmviewcl-v-p-app.txt": cmviewcl_table(view, True, None, (), ("app",)),
        "cmviewcl-l-node.txt": cmviewcl_table(view, False, "node", (), ()),
        "cmviewcl-f-line.txt": cmviewcl_line(view, False, None, (), ()),
        "cmviewcl-v-f-line.txt": cmviewcl_line(view, True, None, (), ()),
        "cmviewcl-v-f-line-p-app.txt": cmviewcl_line(view, True, None, (), ("app",)),
        "lcdstatus.txt": lcdstatus_detailed(status, config),
        "lcdstatus-q.txt": lcdstatus_short(status, config, backup=False),
        "lcdstatus-e.txt": lcdstatus_short(status, config, backup=True),
    }
    check_goldens([(GOLDEN / name, text) for name, text in outputs.items()])


def test_a_package_runs_on_the_node_that_has_its_root_in_service(
        status: dict[str, Any], config: ClusterConfig) -> None:
    package = cluster_view(status, config).package("app")
    assert package is not None
    assert (package.status, package.state, package.autorun, package.owner) == (
        "up", "running", "enabled", "node1")
    assert [(n.name, n.node_type, n.current) for n in package.nodes] == [
        ("node1", "Primary", True), ("node2", "Alternate", False)]


def test_a_halted_package_without_switching_is_unowned_and_autorun_disabled(
        status: dict[str, Any], config: ClusterConfig) -> None:
    view = cluster_view(*halted_without_switching(status, config))
    table = cmviewcl_table(view, False, None, (), ())
    assert "UNOWNED_PACKAGES" in table
    assert table.splitlines()[-1].split() == ["app", "down", "halted", "disabled", "unowned"]
    line = cmviewcl_line(view, False, None, (), ("app",))
    assert "status=down\nstate=halted\nautorun=disabled\nowner=\n" in line


def test_a_failed_root_elsewhere_makes_the_package_failed(status: dict[str, Any],
                                                          config: ClusterConfig) -> None:
    halted, _ = halted_without_switching(status, config)
    halted["hierarchies"][0]["resources"][0]["elsewhere"]["node1"]["state"] = "OSF"
    package = cluster_view(halted, config).package("app")
    assert package is not None and (package.status, package.state) == ("down", "failed")


def test_a_node_not_heard_is_down_and_one_in_maintenance_halted(
        status: dict[str, Any], config: ClusterConfig) -> None:
    changed = copy.deepcopy(status)
    by_name = {n["name"]: n for n in changed["nodes"]}
    by_name["node3"]["state"] = "DEAD"
    by_name["node1"]["state"] = "DEAD"
    by_name["node1"]["maintenance"] = {"since": "2026-12-07T07:00:00+00:00",
                                       "hierarchies": ["app"]}
    view = cluster_view(changed, config)
    assert [(n.name, n.status, n.state) for n in view.nodes] == [
        ("node1", "down", "halted"), ("node2", "up", "running"), ("node3", "down", "unknown")]
    lines = cmviewcl_line(view, False, "node", ("node3",), ())
    assert lines == "name=node3\nstatus=down\nstate=unknown\n"


def test_an_unknown_package_exits_1_naming_the_packages(
        status: dict[str, Any], config: ClusterConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        known_package(cluster_view(status, config), "db")
    assert exited.value.code == 1
    assert "Unable to find package db in cluster shop (its packages: app)" in (
        capsys.readouterr().err)


def test_a_package_left_running_by_a_maintenance_stop_is_in_maintenance(
        status: dict[str, Any], config: ClusterConfig) -> None:
    """lkstop -f on node1: its heartbeats stop (stale), its record says app runs there."""
    stopped = copy.deepcopy(status)
    node1 = next(n for n in stopped["nodes"] if n["name"] == "node1")
    node1["state"] = "DEAD"
    node1["maintenance"] = {"since": "2026-12-07T07:00:00+00:00", "hierarchies": ["app"]}
    for resource in stopped["hierarchies"][0]["resources"]:
        resource["elsewhere"]["node1"]["stale"] = True
    view = cluster_view(stopped, config)
    table = cmviewcl_table(view, False, None, (), ())
    assert ["node1", "down", "halted"] in [line.split() for line in table.splitlines()]
    assert ["app", "up", "maintenance", "enabled", "node1"] in [
        line.split() for line in table.splitlines()]
