"""The LifeKeeper and Serviceguard commands (docs/compat.md) driving a three-node lab
cluster: the web service hierarchy app -> data -> vip may run on node1 (priority 1) and
node2; node3 may not. Serviceguard's package is the hierarchy, its global switching the
hierarchy's failover setting. Under the split-brain checker throughout."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from terminal import ANSI, on_terminal
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import GREETING, WebService, create_web_service, fetch
from tutela.lab.driver import all_alive, form_cluster, stop_daemons, tutela

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("compat"), nodes=3, disks=1,
                root=tmp_path_factory.mktemp("compat")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def service(lab: Lab) -> Iterator[WebService]:
    form_cluster(lab, "shop")
    wait_until(lambda: all_alive(lab), timeout=30, what="cluster formed")
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    wait_until(lambda: "owner=node1" in line_view(lab, "node2"), timeout=20,
               what="node2 to see app running on node1")
    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        yield web
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def run(lab: Lab, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """A command on `node`, shown as an administrator would see it."""
    result = lab.exec(node, list(argv), check=False, timeout=180)
    print(f"\n{node}# {' '.join(argv)}   (exit {result.returncode})\n{result.stdout}"
          f"{result.stderr}")
    return result


def line_view(lab: Lab, node: str) -> str:
    return lab.exec(node, ["cmviewcl", "-f", "line", "-p", "app"], check=False).stdout


def runs_on(lab: Lab, web: WebService) -> list[str]:
    return [n for n in lab.nodes if web.vip in lab.addresses(n)]


def failover_setting(lab: Lab) -> str:
    return tutela(lab, "node3", "config", "get", "hierarchies.app.failover").stdout.strip()


def test_cmviewcl_shows_the_package_up_on_its_node(lab: Lab, service: WebService) -> None:
    table = run(lab, "node2", "cmviewcl").stdout
    assert "app            up               running          enabled     node1" in table
    verbose = run(lab, "node2", "cmviewcl", "-v").stdout
    assert "Primary      up           enabled      node1          (current)" in verbose
    line = run(lab, "node3", "cmviewcl", "-v", "-f", "line").stdout.splitlines()
    assert {"package:app|status=up", "package:app|autorun=enabled", "package:app|owner=node1",
            "package:app|node:node2|switching=enabled", "node:node3|status=up"} <= set(line)
    unknown = run(lab, "node2", "cmviewcl", "-p", "shop-db")
    assert unknown.returncode == 1
    assert "Unable to find package shop-db in cluster shop" in unknown.stderr


def test_cmhaltpkg_halts_it_and_disables_global_switching(lab: Lab,
                                                           service: WebService) -> None:
    assert run(lab, "node2", "cmhaltpkg", "app").returncode == 0
    assert runs_on(lab, service) == []
    assert failover_setting(lab) == "false"
    view = line_view(lab, "node1")
    assert "status=down\nstate=halted\nautorun=disabled\nowner=\n" in view
    again = run(lab, "node2", "cmhaltpkg", "app")
    assert again.returncode == 1 and "is not running on any node" in again.stderr


def test_cmrunpkg_on_a_node_not_eligible_fails(lab: Lab, service: WebService) -> None:
    refused = run(lab, "node1", "cmrunpkg", "-n", "node3", "app")
    assert refused.returncode == 1
    assert "Unable to run package app on node node3: node node3 is not configured to run " \
           "it (its nodes: node1, node2)" in refused.stderr
    assert runs_on(lab, service) == []


def test_cmrunpkg_runs_it_on_the_node_named(lab: Lab, service: WebService) -> None:
    """Started on node2 itself (tutela restore --on), not on node1, which has priority 1,
    and then moved: only node2 restored it, as the event journals say."""
    refused = run(lab, "node1", "tutela", "restore", "app", "--on", "node3", "--json")
    assert refused.returncode == 2 and json.loads(refused.stdout)["error"]["field"] == "--on"
    since = datetime.datetime.now(datetime.UTC).isoformat()
    assert run(lab, "node1", "cmrunpkg", "-n", "node2", "app").returncode == 0
    assert runs_on(lab, service) == ["node2"]
    events = json.loads(tutela(lab, "node1", "events", "--hierarchy", "app", "--since",
                               since, "--json").stdout)["events"]
    restores = {(e["node"], e["kind"]) for e in events if e["kind"].startswith("restore.")}
    assert restores == {("node2", "restore.started"), ("node2", "restore.finished")}, events
    assert fetch(lab, service.url) == GREETING
    assert "autorun=disabled\nowner=node2\n" in line_view(lab, "node3")
    running = run(lab, "node1", "cmrunpkg", "app")
    assert running.returncode == 1 and "already running on node node2" in running.stderr


def test_cmmodpkg_e_enables_global_switching_again(lab: Lab, service: WebService) -> None:
    assert run(lab, "node3", "cmmodpkg", "-e", "app").returncode == 0
    assert failover_setting(lab) == "true"
    assert "autorun=enabled\nowner=node2\n" in line_view(lab, "node1")


def test_perform_action_removes_and_restores_here(lab: Lab, service: WebService) -> None:
    assert run(lab, "node2", "perform_action", "-t", "app", "-a", "remove").returncode == 0
    assert runs_on(lab, service) == []
    assert run(lab, "node1", "perform_action", "-t", "app", "-a", "restore").returncode == 0
    assert runs_on(lab, service) == ["node1"]
    assert fetch(lab, service.url) == GREETING


def test_lcdstatus_q_lists_the_hierarchy_and_the_comm_paths(lab: Lab,
                                                           service: WebService) -> None:
    rows = [line.split() for line in run(lab, "node1", "lcdstatus", "-q").stdout.splitlines()]
    assert ["node1", "app", "app", "ISP", "1", "node1"] in rows
    assert ["node1", "vip", "198.51.100.100", "ISP", "1", "node1"] in rows
    paths = [r for r in rows if len(r) == 5 and r[1] == "TCP"]
    assert {(r[0], r[3]) for r in paths} == {("node2", "ALIVE"), ("node3", "ALIVE")}
    backup = [line.split() for line in run(lab, "node1", "lcdstatus", "-e").stdout.splitlines()]
    assert ["BACKUP", "TAG", "ID", "STATE", "PRIO", "PRIMARY"] in backup
    assert ["node2", "app", "app", "ISP", "1", "node1"] in backup
    assert "SHARED equivalency with resource app on machine node2, priority = 2" in run(
        lab, "node1", "lcdstatus").stdout


def test_lkstop_and_lkstart_on_one_node(lab: Lab, service: WebService) -> None:
    refused = run(lab, "node1", "cmhaltnode")
    assert refused.returncode == 1 and "running: app on node1" in refused.stderr
    assert run(lab, "node3", "lkstop").returncode == 0
    wait_until(lambda: "node:node3|status=down" in lab.exec(
        "node1", ["cmviewcl", "-f", "line", "-l", "node"]).stdout, timeout=20,
        what="node1 to see node3 down")
    run(lab, "node1", "cmviewcl")
    assert run(lab, "node3", "lkstart").returncode == 0
    wait_until(lambda: all_alive(lab), timeout=30, what="node3 back")
    assert runs_on(lab, service) == ["node1"]


def test_cmmodpkg_n_turns_node_switching_off_and_on(lab: Lab, service: WebService) -> None:
    assert run(lab, "node1", "cmmodpkg", "-d", "-n", "node2", "app").returncode == 0
    assert "node:node2|" not in run(lab, "node3", "cmviewcl", "-v", "-f", "line",
                                    "-p", "app").stdout
    refused = run(lab, "node1", "cmrunpkg", "-n", "node2", "app")
    assert refused.returncode == 1 and "already running on node node1" in refused.stderr
    assert run(lab, "node1", "cmmodpkg", "-e", "-n", "node2", "app").returncode == 0
    view = run(lab, "node3", "cmviewcl", "-v", "-f", "line", "-p", "app").stdout
    assert "node:node2|switching=enabled\nnode:node2|order=2\n" in view
    assert runs_on(lab, service) == ["node1"]


def test_lkstop_f_leaves_the_package_running_in_maintenance(lab: Lab,
                                                           service: WebService) -> None:
    assert run(lab, "node1", "lkstop", "-f").returncode == 0
    wait_until(lambda: "state=maintenance\nautorun=enabled\nowner=node1\n" in line_view(
        lab, "node2"), timeout=20, what="node2 to see app left running on node1")
    table = run(lab, "node2", "cmviewcl").stdout.splitlines()
    assert ["node1", "down", "halted"] in [line.split() for line in table]
    assert runs_on(lab, service) == ["node1"]
    assert fetch(lab, service.url) == GREETING
    assert run(lab, "node1", "lkstart").returncode == 0
    wait_until(lambda: "state=running\nautorun=enabled\nowner=node1\n" in line_view(
        lab, "node2"), timeout=20, what="app protected on node1 again")
    assert runs_on(lab, service) == ["node1"]


def test_cmhaltcl_refuses_while_a_package_runs(lab: Lab, service: WebService) -> None:
    refused = run(lab, "node3", "cmhaltcl")
    assert refused.returncode == 1 and "running: app on node1" in refused.stderr
    assert all_alive(lab)


def test_cmhaltnode_f_and_cmrunnode_on_one_node(lab: Lab, service: WebService) -> None:
    elsewhere = run(lab, "node3", "cmrunnode", "node1")
    assert elsewhere.returncode == 1 and "run cmrunnode (or tutela start) on node1" in (
        elsewhere.stderr)
    assert run(lab, "node3", "cmhaltnode", "-f").returncode == 0
    wait_until(lambda: "node:node3|status=down" in lab.exec(
        "node1", ["cmviewcl", "-f", "line", "-l", "node"]).stdout, timeout=20,
        what="node1 to see node3 down")
    assert run(lab, "node3", "cmrunnode", "node3").returncode == 0
    wait_until(lambda: all_alive(lab), timeout=30, what="node3 back")
    assert runs_on(lab, service) == ["node1"]


def test_restore_and_apply_show_progress_on_a_terminal(lab: Lab, service: WebService) -> None:
    """`tutela restore` and `tutela apply` typed on node1's terminal (a pty): a bar of the
    hierarchy's resources in service, then of the nodes that hold the new generation
    (docs/cli.md, Progress); the answer stays when the bar is gone."""
    assert run(lab, "node1", "tutela", "remove", "app").returncode == 0
    environment = lab.environment("node1")
    status, text = on_terminal(lab.exec_argv("node1", ["tutela", "restore", "app"]),
                               environment)
    plain = ANSI.sub("", text)
    print(plain)
    assert status == 0 and "restoring app" in plain and "/3 in service" in plain, text
    where = runs_on(lab, service)  # where its rules put it (start_policy last)
    assert len(where) == 1 and f"in service on {where[0]}: app" in plain
    document = yaml.safe_load(tutela(lab, "node1", "export").stdout)
    settings = next(h for h in document["hierarchies"] if h["root"] == "app")
    settings["start_policy"] = "priority" if settings.get("start_policy", "last") == "last" \
        else "last"
    status, text = on_terminal(lab.exec_argv("node1", ["tutela", "apply", "-f", "-"]),
                               environment, stdin=yaml.safe_dump(document) + "\x04")
    plain = ANSI.sub("", text)
    print(plain)
    assert status == 0 and "applying <stdin>" in plain, text
    assert "/3 nodes at the new generation" in plain and "applied 1 change(s)" in plain
