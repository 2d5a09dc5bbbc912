"""A Serviceguard cluster with a multi_node package and a package dependency, migrated for
real: a three-node cluster ASCII file, a multi_node package (an agent on every node) and a
failover package (a web server on a shared filesystem and a relocatable address) that
needs the agent on its node (`dependency_condition agent = up`, `same_node`) go through
`tutela migrate serviceguard`; the cluster is formed, the document applied, the agent
started on every node (cmrunpkg of a multi_node package), then the web package, and its
node is powered off: the web package moves to a survivor, where the agent runs too.

A checker samples every node's addresses and mounts throughout (never two at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from sg_lab import Migrated, cluster_ascii, migrate
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import fetch
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab

CLUSTER = "sgfarm"
VIP = "198.51.100.101"
PORT = 8080
CONTENT = "served next to the agent\n"
AGENT = "agent-svc-agent"  # the roots: each package's last service
WEB = "web-svc-httpd"
IN_SERVICE = ("ISP", "ISU")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("sgdep"), nodes=3, disks=1,
                root=tmp_path_factory.mktemp("sgdep")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


AGENT_CONF = """\
package_name            agent
package_type            multi_node
module_name             sg/multi_node
module_name             sg/service
node_name               *
auto_run                yes
service_name            agent
service_cmd             "sleep 86400"
service_restart         unlimited
"""


def web_conf(lab: Lab, mountpoint: Path) -> str:
    """A modular failover package that needs the agent on its node."""
    return f"""\
package_name            web
package_type            failover
module_name             sg/failover
module_name             sg/dependency
module_name             sg/package_ip
module_name             sg/filesystem
module_name             sg/service
node_name               node1
node_name               node2
node_name               node3
auto_run                yes
failover_policy         configured_node
failback_policy         manual
dependency_name         agent_here
dependency_condition    agent = up
dependency_location     same_node
ip_subnet               198.51.100.0
ip_address              {VIP}
fs_name                 {lab.disks[0]}
fs_directory            {mountpoint}
fs_type                 "ext4"
service_name            httpd
service_cmd             "python3 -m http.server {PORT} --bind {VIP} --directory {mountpoint}"
service_restart         none
"""


@pytest.fixture(scope="module")
def migrated(lab: Lab) -> Migrated:
    """Three nodes and no quorum server: a majority of three needs no tie-breaker."""
    mountpoint = lab.root / "srv" / "web"
    files = {"cmclconfig.ascii": cluster_ascii(lab, CLUSTER), "agent.conf": AGENT_CONF,
             "web.conf": web_conf(lab, mountpoint)}
    return migrate(lab, files, mountpoint, {"hello.txt": CONTENT},
                   f"http://{VIP}:{PORT}/hello.txt")


def test_the_import_maps_the_multi_node_package_and_the_dependency(
        lab: Lab, migrated: Migrated) -> None:
    config, summary = migrated.config, migrated.summary
    assert summary["counts"]["error"] == 0, summary["counts"]
    assert summary["counts"]["not carried over"] == 0, [
        e for e in summary["entries"] if e["outcome"] == "not carried over"]
    hierarchies = {h["root"]: h for h in config["hierarchies"]}
    assert hierarchies[AGENT]["multi_node"] is True
    assert [e["node"] for e in hierarchies[AGENT]["equivalencies"]] == lab.nodes
    assert hierarchies[WEB]["dependencies"] == [{"hierarchy": AGENT}]  # same_node: default
    assert not hierarchies[WEB].get("multi_node", False)


@pytest.fixture(scope="module")
def service(lab: Lab, migrated: Migrated) -> Iterator[Migrated]:
    """The cluster formed as an administrator forms it, then the document applied."""
    form_cluster(lab, migrated.config["name"])
    wait_until(lambda: all_alive(lab), timeout=30, what="the three nodes alive")
    lab.exec("node1", ["tutela", "apply", "-f", str(migrated.document)])
    wait_until(lambda: all(_generation(lab, n) == _generation(lab, "node1") for n in lab.nodes),
               timeout=15, what="every node to have the applied generation")
    with SplitBrainChecker(lab, VIP, str(migrated.mountpoint)) as checker:
        yield migrated
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def _generation(lab: Lab, node: str) -> int:
    return int(status(lab, node)["generation"])


def _state(lab: Lab, node: str, root: str) -> str:
    """`root`'s state on `node`, as that node's status says."""
    return str(next(h for h in status(lab, node)["hierarchies"] if h["root"] == root)["state"])


def holders(lab: Lab) -> list[str]:
    """The nodes whose kernel has the web package's address (physical truth)."""
    return [n for n in lab.nodes if lab.node_state(n) != "off" and VIP in lab.addresses(n)]


def test_the_agent_runs_on_every_node_and_web_next_to_it(lab: Lab, service: Migrated) -> None:
    tutela(lab, "node1", "restore", AGENT)  # cmrunpkg agent: an instance on every node
    for node in lab.nodes:
        wait_until(lambda n=node: _state(lab, n, AGENT) in IN_SERVICE, timeout=30,
                   what=f"the agent in service on {node}")
    tutela(lab, "node1", "restore", WEB)  # cmrunpkg web
    wait_until(lambda: holders(lab) == ["node1"], timeout=30, what="web's address on node1")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == CONTENT, timeout=15,
               what="the client to reach web through its address")
    [entry] = next(h for h in status(lab, "node1")["hierarchies"]
                   if h["root"] == WEB)["dependencies"]
    assert entry["met"] is True and "node1" in entry["up_on"], entry


def test_power_off_moves_web_to_a_survivor_with_the_agent(lab: Lab, service: Migrated) -> None:
    lab.power_off("node1")
    wait_until(lambda: len(holders(lab)) == 1, timeout=60,
               what="a survivor to take web over")
    [node] = holders(lab)
    assert _state(lab, node, AGENT) in IN_SERVICE  # same_node: the agent is up there
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == CONTENT, timeout=15,
               what=f"the client to reach web on {node}")
    other = next(n for n in ("node2", "node3") if n != node)
    assert _state(lab, other, AGENT) in IN_SERVICE  # the agent keeps serving on both
