"""Real-server watchdogs with default settings (issue 12, item 1): in the lab's kernel mode
every node's watchdog counts whole seconds like softdog, so `lease_duration: auto` gives
1.61 s; the cluster fails over with no setting changed, under the split-brain checker. A
node joined without a watchdog device is shown as unable to take part in failover and
`hierarchy extend` refuses it with the fix; an explicit lease its peers' watchdogs cannot
fence is refused and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import GREETING, WebService, create_web_service, fetch, owner
from tutela.lab.driver import FORM_TIMEOUT, all_alive, status, stop_daemons, tutela

pytestmark = pytest.mark.lab

MISSING_DEVICE = "/dev/tutela-test-no-watchdog"
"""node3's TUTELA_WATCHDOG_DEVICE: a path that does not exist (a host without a watchdog)."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("la"), nodes=3, disks=1, root=tmp_path_factory.mktemp("la"),
                watchdog="kernel") as built:
        try:
            _form(built)
            yield built
        finally:
            stop_daemons(built)


def _form(lab: Lab) -> None:
    """node1 and node2 with their (kernel-mode) watchdogs, node3 without one."""
    tutela(lab, "node1", "init", "--cluster", "la")
    tutela(lab, "node1", "start")
    for node in ("node2", "node3"):
        token = json.loads(tutela(lab, "node1", "node", "token", "--json").stdout)["token"]
        device = [f"TUTELA_WATCHDOG_DEVICE={MISSING_DEVICE}"] if node == "node3" else []
        lab.exec(node, ["env", *device, "tutela", "join", lab.node_address("node1"),
                        "--token", token])
        lab.exec(node, ["env", *device, "tutela", "start", "--timeout", str(FORM_TIMEOUT)])
    wait_until(lambda: all_alive(lab), timeout=30, what="every node alive")


@pytest.fixture(scope="module")
def service(lab: Lab) -> Iterator[WebService]:
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        yield web
    assert checker.violations == [], checker.violations


def _nodes(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in view["nodes"]}


def test_auto_gives_the_lease_whole_second_watchdogs_fit(lab: Lab) -> None:
    view = status(lab, "node2")
    assert view["lease"]["setting"] == "auto"
    assert view["lease"]["duration"] == view["lease"]["configured"] == 1.61
    assert "whole seconds, 1s at the shortest" in view["lease"]["why"]
    nodes = _nodes(view)
    assert nodes["node1"]["watchdog"] == {"device": lab.watchdog_path("node1"),
                                          "present": True, "min_timeout": 1.0}
    assert nodes["node1"]["fencing_problem"] is None
    assert not nodes["node3"]["watchdog"]["present"]
    text = tutela(lab, "node1", "status").stdout
    assert "lease 1.61s (auto: " in text
    assert "node3 cannot take part in failover: node3 has no watchdog device" in text


def test_extend_refuses_a_node_without_a_watchdog(lab: Lab, service: WebService) -> None:
    before = status(lab, "node1")["generation"]
    result = tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node3", check=False)
    assert result.returncode == 2, result
    assert f"nodes[node3].watchdog: node3 has no watchdog device ({MISSING_DEVICE}" in (
        result.stderr)
    for option in ("modprobe softdog", "'agent'", "'none'"):
        assert option in result.stderr
    assert status(lab, "node1")["generation"] == before


def test_an_explicit_lease_the_watchdogs_cannot_fence_is_refused(lab: Lab) -> None:
    before = status(lab, "node1")["generation"]
    data = yaml.safe_load(tutela(lab, "node1", "export").stdout)
    data.setdefault("settings", {})["lease_duration"] = 1.0
    result = lab.exec("node1", ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data),
                      check=False)
    assert result.returncode == 2, result
    assert "settings.lease_duration: 1s is too short for node1's watchdog" in result.stderr
    assert "set it to 'auto' or to 1.61 or more" in result.stderr
    assert status(lab, "node1")["generation"] == before


def test_apply_keeps_the_recorded_watchdogs(lab: Lab) -> None:
    data = yaml.safe_load(tutela(lab, "node1", "export").stdout)
    for node in data["nodes"]:
        node.pop("watchdog", None)
    data["nodes"][0]["failover"] = False  # a real change, so that apply commits
    lab.exec("node1", ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data))
    nodes = _nodes(status(lab, "node2"))
    assert nodes["node1"]["watchdog"]["present"] and not nodes["node3"]["watchdog"]["present"]
    data["nodes"][0]["failover"] = True
    lab.exec("node1", ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data))


def test_a_restart_with_a_watchdog_records_it(lab: Lab, service: WebService) -> None:
    """The fix status names: give node3 a watchdog and restart tutelad there."""
    tutela(lab, "node3", "stop")
    tutela(lab, "node3", "start", "--timeout", str(FORM_TIMEOUT))  # the lab's own device
    wait_until(lambda: _nodes(status(lab, "node1"))["node3"]["fencing_problem"] is None,
               timeout=30, what="node3's watchdog recorded")
    assert _nodes(status(lab, "node1"))["node3"]["watchdog"]["present"]
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node3", "--priority", "3")


def test_the_owner_fails_over_with_default_settings(lab: Lab, service: WebService) -> None:
    assert owner(lab, service) == "node1"
    lab.power_off("node1")
    wait_until(lambda: owner(lab, service) == "node2", timeout=30, what="node2 takes over")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what="the client to reach it")
