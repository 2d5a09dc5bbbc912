"""`settings.arbiter: etcd` against a real 3-member etcd cluster (Debian's etcd-server) in
lab namespaces (issue 17, item 4; docs/arbiter.md): the owner key in etcd, an etcd member
down changes nothing, an owner cut off from etcd keeps its hierarchy by failsafe rounds
while it reaches the other node and gives it up before the other node may take it once it
does not, etcd without quorum leaves the owner alone and lets nobody take over, and a
powered-off owner fails over; all under the split-brain checker, on one lab and one etcd
cluster. The GUI's overview (Debian's chromium) shows etcd's quorum and owner keys.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from browser import browser_in, sign_in, wait_for
from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import GREETING, WebService, create_web_service, fetch, owner
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela
from tutela.lab.etcd import EtcdCluster

pytestmark = pytest.mark.lab
CLUSTER = "ea"
KEY = f"/tutela/{CLUSTER}/owner/app"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("ea"), nodes=2, disks=1,
                root=tmp_path_factory.mktemp("ea")) as built:
        yield built


@pytest.fixture(scope="module")
def etcd(lab: Lab) -> Iterator[EtcdCluster]:
    with EtcdCluster(lab) as members:
        try:
            form_cluster(lab, CLUSTER)
            _use_etcd(lab, members)
            yield members
        finally:
            stop_daemons(lab)


def _use_etcd(lab: Lab, etcd: EtcdCluster) -> None:
    """Switch the arbiter to etcd and restart both daemons, which take it at start."""
    endpoints = "[" + ", ".join(etcd.endpoints) + "]"
    tutela(lab, "node1", "config", "set", "settings.etcd", f"{{endpoints: {endpoints}}}")
    tutela(lab, "node1", "config", "set", "settings.arbiter", "etcd")
    for node in lab.nodes:
        tutela(lab, node, "stop")
        tutela(lab, node, "start", "--timeout", "60")
    wait_until(lambda: all_alive(lab), timeout=30, what="both nodes alive on etcd")


@pytest.fixture(scope="module")
def service(lab: Lab, etcd: EtcdCluster) -> Iterator[WebService]:
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        yield web
    assert checker.violations == [], checker.violations


def test_owner_key_is_in_etcd(lab: Lab, etcd: EtcdCluster, service: WebService) -> None:
    assert owner(lab, service) == "node1"
    # extended to node2 just now: from then on node1 runs it under an etcd lease
    wait_until(lambda: _key_owner(lab, etcd) == "node1", timeout=10,
               what="node1's owner key in etcd")
    assert fetch(lab, service.url, timeout=2) == GREETING
    arbiter = status(lab, "node1")["arbiter"]  # what `tutela status` says of etcd
    assert (arbiter["kind"], arbiter["endpoints"], arbiter["quorum"], arbiter["owners"]) == (
        "etcd", etcd.endpoints, True, {"app": "node1"}), arbiter
    assert list(arbiter["held"]) == ["app"], arbiter


def test_the_gui_shows_etcd_as_the_arbiter(lab: Lab, etcd: EtcdCluster,
                                           service: WebService) -> None:
    """The overview's quorum is etcd's as this node reaches it, not the nodes' votes, and
    the arbiter's card lists the leases held here and the owner keys."""
    tutela(lab, "node1", "config", "set", "settings.api.enabled", "true")
    token = json.loads(tutela(lab, "node1", "api", "token", "create", "--role", "guest",
                              "--expires", "1h", "--json").stdout)["token"]
    url = json.loads(tutela(lab, "node1", "gui", "--json").stdout)["url"]
    with browser_in(lab, url) as driver:
        sign_in(driver, url, token, "overview")
        quorum = wait_for(driver, lambda: driver.find_element(By.ID, "quorum"))
        assert "etcd at " + etcd.endpoints[0] in quorum.text
        assert "held" in quorum.text and "voters" not in quorum.text
        arbiter = wait_for(driver, lambda: driver.find_element(By.ID, "arbiter"))
        assert f"app by {owner(lab, service)}" in arbiter.text
        assert "app (" in arbiter.text  # node1 holds app's lease, with the time left


def test_an_etcd_member_down_changes_nothing(lab: Lab, etcd: EtcdCluster,
                                             service: WebService) -> None:
    """The first endpoint, which every node asks first, is killed: the calls go to the
    others, the lease is kept alive, nothing moves."""
    etcd.stop_member(1)
    try:
        _assert_stays(lab, service, "node1", seconds=4)
    finally:
        etcd.start_member(1)
    etcd.wait_healthy(etcd.members, timeout=60)


def test_owner_cut_off_from_etcd_keeps_it_by_failsafe_then_gives_up_alone(
        lab: Lab, etcd: EtcdCluster, service: WebService) -> None:
    """node1 reaches no etcd member but node2: both voters grant its failsafe rounds, so it
    keeps the app and node2 creates no key. Cut from node2 as well, node1 takes the app out
    of service before its failsafe grant at node2's voter ends, and node2 takes over only
    then (the checker sees no moment with two holders)."""
    cut = [lab.node_address("node1", net) for net in (1, 2)]
    etcd.cut_off(cut)
    try:
        _assert_stays(lab, service, "node1", seconds=6)  # three etcd TTLs
        lab.cut("node1", peer="node2")
        try:
            wait_until(lambda: owner(lab, service) == "node2", timeout=30,
                       what="node2 to take over from the isolated node1")
            assert _key_owner(lab, etcd) == "node2"
            wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=15,
                       what="the client to reach the app on node2")
        finally:
            lab.heal("node1", peer="node2")
    finally:
        etcd.heal()
    wait_until(lambda: all_alive(lab), timeout=30, what="node1 back")


def test_quorum_lost_leaves_the_owner_alone_and_blocks_takeovers(
        lab: Lab, etcd: EtcdCluster, service: WebService) -> None:
    """Two of three members down: the owner keeps the app by failsafe rounds (both nodes
    up); powered off, nobody can take it (no key can be created, node1's voter holds the
    failsafe grant until it ends, then etcd has no quorum); the quorum back, node1 does."""
    assert owner(lab, service) == "node2"
    etcd.stop_member(2)
    etcd.stop_member(3)
    try:
        _assert_stays(lab, service, "node2", seconds=6)  # three etcd TTLs
        arbiter = status(lab, "node2")["arbiter"]  # held by failsafe rounds
        assert not arbiter["quorum"] and list(arbiter["held"]) == ["app"], arbiter
        assert "NOT REACHED" in tutela(lab, "node2", "status").stdout
        lab.power_off("node2")
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert owner(lab, service) is None
            time.sleep(0.2)
    finally:
        etcd.start_member(2)
        etcd.start_member(3)
    etcd.wait_healthy(etcd.members, timeout=60)
    wait_until(lambda: owner(lab, service) == "node1", timeout=60,
               what="node1 to take over once etcd has its quorum back")
    assert _key_owner(lab, etcd) == "node1"


def test_powered_off_owner_fails_over(lab: Lab, etcd: EtcdCluster,
                                      service: WebService) -> None:
    lab.power_on("node2")
    wait_until(lambda: all_alive(lab), timeout=60, what="node2 back")
    assert owner(lab, service) == "node1"
    started = time.monotonic()
    lab.power_off("node1")
    wait_until(lambda: owner(lab, service) == "node2", timeout=30,
               what="node2 to take over from the powered-off node1")
    took = time.monotonic() - started
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=15,
               what="the client to reach the app on node2")
    assert _key_owner(lab, etcd) == "node2"
    print(f"etcd arbiter: node power-off failover in {took:.2f} s")


def _assert_stays(lab: Lab, service: WebService, node: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert owner(lab, service) == node
        assert fetch(lab, service.url, timeout=1) == GREETING
        time.sleep(0.2)


def _key_owner(lab: Lab, etcd: EtcdCluster) -> str | None:
    """The node named by the owner key in etcd (read from the client host)."""
    done = lab.client_exec(["etcdctl", "--endpoints", ",".join(etcd.endpoints), "get",
                            "--print-value-only", KEY], check=False)
    with contextlib.suppress(ValueError):
        return str(json.loads(done.stdout)["node"])
    return None
