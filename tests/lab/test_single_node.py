"""One lab node protecting app (process) -> data (filesystem) -> vip (ip), checked physically.

Everything goes through the `tutela` CLI on the node; the checks read the kernel's truth:
addresses per network namespace, mounts per mount namespace, and the client's view.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.demo import GREETING, WebService, app_pid, create_web_service, fetch
from tutela.lab.driver import status, tutela

pytestmark = pytest.mark.lab


class Node:
    """The CLI on one lab node."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab, self.name = lab, name

    def tutela(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return tutela(self.lab, self.name, *args, check=check)

    def states(self) -> dict[str, str]:
        return {r["tag"]: r["state"] for h in status(self.lab, self.name)["hierarchies"]
                for r in h["resources"]}

    def reason(self, tag: str) -> str:
        return next(r["reason"] for h in status(self.lab, self.name)["hierarchies"]
                    for r in h["resources"] if r["tag"] == tag)

    def app_pid(self) -> int:
        return app_pid(self.lab, self.name)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("single"), nodes=2, disks=1,
                root=tmp_path_factory.mktemp("lab")) as built:
        yield built


@pytest.fixture(scope="module")
def service(lab: Lab) -> Iterator[WebService]:
    tutela(lab, "node1", "init", "--cluster", "single")
    tutela(lab, "node1", "start")
    try:
        yield create_web_service(lab, "node1", check_interval=0.5, recovery_attempts=2)
    finally:
        tutela(lab, "node1", "stop", check=False)


@pytest.fixture
def node1(lab: Lab, service: WebService) -> Node:
    return Node(lab, "node1")


def test_hierarchy_in_service_where_and_only_where_it_should_be(
        lab: Lab, node1: Node, service: WebService) -> None:
    assert node1.states() == {"app": "ISP", "data": "ISP", "vip": "ISP"}
    assert service.vip in lab.addresses("node1")
    assert service.vip not in lab.addresses("node2")
    disk, mountpoint = service.disk, str(service.mountpoint)
    assert (disk, mountpoint) in lab.mounts("node1")
    assert all(m != mountpoint for _, m in lab.mounts("node2"))
    assert mountpoint not in Path("/proc/self/mounts").read_text()
    assert fetch(lab, service.url) == GREETING


def test_status_tree_shows_the_hierarchy(node1: Node) -> None:
    text = node1.tutela("status").stdout
    assert text.index("app") < text.index("data") < text.index("vip")
    assert text.count("ISP") == 3


def test_tutelad_runs_real_time_and_its_applications_do_not(lab: Lab, node1: Node) -> None:
    """tutelad's event loop is SCHED_RR so heartbeats and lease rounds keep their times on
    a saturated node; the applications it starts are ordinary."""
    def policies(pid: int) -> list[str]:
        lines = lab.exec("node1", ["chrt", "--all-tasks", "--pid", str(pid)]).stdout
        return [line.split(": ")[1] for line in lines.splitlines() if "policy" in line]

    daemon = policies(status(lab, "node1")["daemon_pid"])
    assert daemon[0] == "SCHED_RR|SCHED_RESET_ON_FORK"
    assert policies(node1.app_pid()) == ["SCHED_OTHER"]


def test_killed_app_is_recovered_locally(lab: Lab, node1: Node, service: WebService) -> None:
    old_pid = node1.app_pid()
    lab.exec("node1", ["kill", "-9", str(old_pid)])
    wait_until(lambda: "recovered" in node1.reason("app") and node1.app_pid() != old_pid,
               timeout=20, what="local recovery of app")
    assert node1.states()["app"] == "ISP"
    wait_until(lambda: fetch(lab, service.url) == GREETING, timeout=10,
               what="the client to reach the recovered app")


def test_restarted_daemon_readopts_without_restarting(
        lab: Lab, node1: Node, service: WebService) -> None:
    app_pid = node1.app_pid()
    daemon_pid = status(lab, "node1")["daemon_pid"]
    lab.exec("node1", ["kill", "-9", str(daemon_pid)])  # a crash: no orderly stop
    wait_until(lambda: node1.tutela("status", check=False).returncode == 3, timeout=10,
               what="the daemon to be gone")
    node1.tutela("start")
    assert node1.states() == {"app": "ISP", "data": "ISP", "vip": "ISP"}
    assert "re-adopted" in node1.reason("app")
    assert node1.app_pid() == app_pid
    node1.tutela("stop", "--leave-resources")
    assert fetch(lab, service.url) == GREETING  # still served while unprotected
    node1.tutela("start")
    assert node1.app_pid() == app_pid
    assert node1.states()["app"] == "ISP"


def test_unrecoverable_app_goes_osf(lab: Lab, node1: Node, service: WebService) -> None:
    lab.exec("node1", ["rm", str(service.marker)])
    lab.exec("node1", ["kill", "-9", str(node1.app_pid())])
    wait_until(lambda: node1.states()["app"] == "OSF", timeout=30, what="app to go OSF")
    assert "gave up after 2 attempt(s)" in node1.reason("app")
    assert node1.states()["data"] == "ISP"
    log = node1.tutela("log", "-n", "200").stdout
    assert "local recovery attempt 2 of 2" in log


def test_remove_takes_everything_out_top_down(lab: Lab, node1: Node,
                                              service: WebService) -> None:
    node1.tutela("remove", "vip")
    assert node1.states() == {"app": "OSU", "data": "OSU", "vip": "OSU"}
    assert service.vip not in lab.addresses("node1")
    assert all(m != str(service.mountpoint) for _, m in lab.mounts("node1"))
