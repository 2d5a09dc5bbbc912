"""A multi-node hierarchy on three lab nodes (docs/failover.md, "Multi-node hierarchies"):
a small HTTP server on every node at once, each instance checked for real by a client
request to its node's address; a clustered hierarchy (a virtual IP under its lease) in the
same cluster stays on one node under the split-brain checker throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
PORT = 8081
VIP = "198.51.100.100"
WAIT = 30.0
"""Seconds for a step that takes about a second on an idle machine (detection 1 s, a
process start), on a loaded 2-core one."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("mn"), nodes=3, disks=0,
                root=tmp_path_factory.mktemp("mn")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Iterator[SplitBrainChecker]:
    """web (multi-node: a process on every node) and vip (clustered, on node1), both in
    service, under the split-brain checker until the module ends."""
    form_cluster(lab, "mn")
    wait_until(lambda: all_alive(lab), timeout=WAIT, what="cluster formed")
    tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={VIP}/24")
    tutela(lab, "node1", "resource", "create", "process", "web",
           "-p", f"command=exec python3 -m http.server {PORT} --bind 0.0.0.0",
           "-p", f"probe_tcp=127.0.0.1:{PORT}", "-p", "start_timeout=3",
           "--check-interval", "0.5", "--recovery-attempts", "1")
    tutela(lab, "node1", "config", "set", "hierarchies.web.multi_node", "true")
    for root in ("vip", "web"):
        for number, node in ((2, "node2"), (3, "node3")):
            tutela(lab, "node1", "hierarchy", "extend", root, "--to", node,
                   "--priority", str(number))
    tutela(lab, "node1", "restore", "vip")
    with SplitBrainChecker(lab, VIP, str(lab.root / "never-mounted")) as checker:
        yield checker
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def serving(lab: Lab) -> list[str]:
    """The nodes whose instance answers a client's request to the node's own address."""
    return [node for node in lab.nodes if lab.node_state(node) != "off"
            and _answers(lab, f"http://{lab.node_address(node)}:{PORT}/")]


def _answers(lab: Lab, url: str) -> bool:
    return lab.client_exec(["curl", "-sf", "-o", "/dev/null", "--max-time", "1", url],
                           check=False).returncode == 0


def instances(lab: Lab, observer: str) -> dict[str, Any]:
    web = next(h for h in status(lab, observer)["hierarchies"] if h["root"] == "web")
    assert web["instances"] is not None, web
    return web["instances"]  # type: ignore[no-any-return]


def vip_holders(lab: Lab) -> list[str]:
    return [n for n in lab.nodes if lab.node_state(n) != "off" and VIP in lab.addresses(n)]


def test_restore_starts_an_instance_on_every_node(
        lab: Lab, cluster: SplitBrainChecker) -> None:
    done = tutela(lab, "node2", "restore", "web")
    assert "in service on node1, node2, node3: web" in done.stdout, done.stdout
    wait_until(lambda: serving(lab) == ["node1", "node2", "node3"], timeout=WAIT,
               what="every node's instance answering")
    seen = instances(lab, "node3")
    assert seen["in_service"] == 3 and not seen["below_min"], seen
    assert {n: s["state"] for n, s in seen["nodes"].items()} == dict.fromkeys(
        ("node1", "node2", "node3"), "ISP")
    shown = tutela(lab, "node1", "status").stdout
    assert "instances: 3 in service (min 1, max all): node1 ISP, node2 ISP, node3 ISP" in shown
    assert vip_holders(lab) == ["node1"]


def test_switchover_is_refused_naming_why(lab: Lab, cluster: SplitBrainChecker) -> None:
    refused = tutela(lab, "node1", "switchover", "web", "--to", "node2", check=False)
    assert refused.returncode != 0
    assert "web is a multi-node hierarchy" in refused.stderr, refused.stderr
    assert serving(lab) == ["node1", "node2", "node3"]


BLOCK = ("table inet blockweb {\n chain input {\n  type filter hook input priority 0;\n"
         f"  tcp dport {PORT} drop\n }}\n}}\n")
"""An nft table that makes node2's instance unreachable, its own probe included: local
recovery (one restart) cannot fix that."""


def test_an_instance_failed_beyond_recovery_stays_down_until_restored(
        lab: Lab, cluster: SplitBrainChecker) -> None:
    lab.exec("node2", ["nft", "-f", "-"], input=BLOCK)
    try:
        wait_until(lambda: instances(lab, "node1")["nodes"]["node2"]["failed"], timeout=WAIT,
                   what="node2's instance to fail beyond local recovery")
    finally:
        lab.exec("node2", ["nft", "delete", "table", "inet", "blockweb"], check=False)
    wait_until(lambda: instances(lab, "node2")["nodes"]["node2"]["state"] == "OSU",
               timeout=WAIT, what="node2 to take what is left of it out of service")
    seen = instances(lab, "node3")
    assert seen["in_service"] == 2 and seen["nodes"]["node2"]["failed"], seen
    assert serving(lab) == ["node1", "node3"]  # unblocked, it stays down all the same
    assert "node2 OSU failed" in tutela(lab, "node1", "status").stdout
    tutela(lab, "node3", "restore", "web")
    wait_until(lambda: serving(lab) == ["node1", "node2", "node3"], timeout=WAIT,
               what="node2's instance back after the administrator's restore")
    assert not instances(lab, "node1")["nodes"]["node2"]["failed"]


def test_a_node_powered_off_leaves_the_others_serving(
        lab: Lab, cluster: SplitBrainChecker) -> None:
    lab.power_off("node3")
    wait_until(lambda: instances(lab, "node1")["nodes"]["node3"]["state"] == "DEAD",
               timeout=WAIT, what="node1 to see node3 gone")
    assert serving(lab) == ["node1", "node2"]
    assert instances(lab, "node2")["in_service"] == 2
    assert vip_holders(lab) == ["node1"]


def test_the_node_powered_on_again_runs_its_instance_again(
        lab: Lab, cluster: SplitBrainChecker) -> None:
    lab.power_on("node3")
    wait_until(lambda: all_alive(lab), timeout=WAIT, what="node3 back in the cluster")
    wait_until(lambda: serving(lab) == ["node1", "node2", "node3"], timeout=WAIT,
               what="node3's instance answering again")
    wait_until(lambda: instances(lab, "node1")["in_service"] == 3, timeout=WAIT,
               what="node1 to count three instances")
    assert vip_holders(lab) == ["node1"]


def test_max_instances_two_runs_two(lab: Lab, cluster: SplitBrainChecker) -> None:
    tutela(lab, "node1", "config", "set", "hierarchies.web.max_instances", "2")
    wait_until(lambda: serving(lab) == ["node1", "node2"], timeout=WAIT,
               what="the lowest priority (node3) to give its instance up")
    seen = instances(lab, "node3")
    assert seen["in_service"] == 2 and seen["max_instances"] == 2, seen
    assert "node3 OSU (spare)" in tutela(lab, "node3", "status").stdout


def test_max_instances_fills_a_lost_place_and_keeps_it(
        lab: Lab, cluster: SplitBrainChecker) -> None:
    """node2 powered off: the spare node3 starts one (two again); node2 back: node3 keeps
    its instance, no move (switchback intelligent), node2 is the spare."""
    lab.power_off("node2")
    wait_until(lambda: serving(lab) == ["node1", "node3"], timeout=WAIT,
               what="node3 to take node2's place")
    lab.power_on("node2")
    wait_until(lambda: all_alive(lab), timeout=WAIT, what="node2 back in the cluster")
    wait_until(lambda: instances(lab, "node2")["nodes"]["node3"]["state"] == "ISP",
               timeout=WAIT, what="node2 to hear node3's instance")
    seen = instances(lab, "node2")
    assert seen["in_service"] == 2, seen
    assert serving(lab) == ["node1", "node3"]
    assert vip_holders(lab) == ["node1"]


def test_remove_stops_every_instance(lab: Lab, cluster: SplitBrainChecker) -> None:
    done = tutela(lab, "node3", "remove", "web")
    assert "out of service on -: web" in done.stdout, done.stdout
    wait_until(lambda: serving(lab) == [], timeout=WAIT, what="every instance stopped")
    assert instances(lab, "node1")["in_service"] == 0
    assert vip_holders(lab) == ["node1"]
