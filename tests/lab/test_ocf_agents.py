"""Real OCF agents under tutela in a three-node lab: nginx (ocf:heartbeat:nginx) serving
from a Filesystem (ocf:heartbeat:Filesystem) on the shared disk, behind a virtual IP
(ocf:heartbeat:IPaddr2), with a Dummy (ocf:heartbeat:Dummy) beside it, all in one
hierarchy. A client fetches a page through the virtual IP before and after the owner is
powered off, and the split-brain checker watches the address and the mount throughout.

The lab's nodes share the host's /run, so nginx's pid file and logs go to a tmpfs each node
mounts in its own mount namespace (a node's /run of its own, as a real machine has).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.kits.ocf import rsctmp
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import fetch
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
VIP = "198.51.100.120"
PORT = 8080
GREETING = "hello from nginx, run by tutela through its OCF agent\n"
TAGS = ("vip", "www", "dummy", "web")


@dataclass(frozen=True)
class Web:
    mountpoint: Path
    private_run: Path

    @property
    def url(self) -> str:
        return f"http://{VIP}:{PORT}/hello.txt"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("ocf"), nodes=3, disks=1,
                root=tmp_path_factory.mktemp("ocf")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)
            for node in built.nodes:  # the agents' HA_RSCTMP, under the host's /run
                shutil.rmtree(_rsctmp(built, node), ignore_errors=True)


def _rsctmp(lab: Lab, node: str) -> Path:
    return rsctmp(lab.state_dir(node) / "resources" / "dummy")


@pytest.fixture(scope="module")
def web(lab: Lab) -> Iterator[Web]:
    form_cluster(lab, "ocf")
    wait_until(lambda: all_alive(lab), timeout=30, what="cluster formed")
    served = Web(lab.root / "mnt" / "www", lab.root / "noderun")
    served.private_run.mkdir()
    for node in lab.nodes:
        lab.exec(node, ["mount", "-t", "tmpfs", "-o", "size=4m", "ocfrun",
                        str(served.private_run)])
    subprocess.run(["mkfs.ext4", "-q", "-F", lab.disks[0]], check=True, timeout=120)
    _create(lab, served)
    tutela(lab, "node1", "hierarchy", "extend", "web", "--to", "node2", "--priority", "2")
    tutela(lab, "node1", "hierarchy", "extend", "web", "--to", "node3", "--priority", "3")
    wait_until(lambda: _states(lab, "node2").get("web") == "ISP" or
               _elsewhere_isp(lab, "node2", "web") == "node1", timeout=20,
               what="node2 to see node1 running web")
    with SplitBrainChecker(lab, VIP, str(served.mountpoint)) as checker:
        yield served
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def _create(lab: Lab, served: Web) -> None:
    """vip <- www <- web, and dummy <- web; nginx's configuration lives on the shared disk."""
    tutela(lab, "node1", "resource", "create", "ocf:heartbeat:IPaddr2", "vip",
           "-p", f"ip={VIP}", "-p", "cidr_netmask=24", "-p", f"nic={lab.interface(1)}")
    tutela(lab, "node1", "resource", "create", "ocf:heartbeat:Filesystem", "www",
           "-p", f"device={lab.disks[0]}", "-p", f"directory={served.mountpoint}",
           "-p", "fstype=ext4", "--depends-on", "vip")
    tutela(lab, "node1", "resource", "create", "ocf:heartbeat:Dummy", "dummy")
    tutela(lab, "node1", "restore", "www")
    mnt = served.mountpoint  # mounted in node1's mount namespace, not the host's
    lab.exec("node1", ["sh", "-c", f"mkdir {mnt}/docs && cat > {mnt}/docs/hello.txt"],
             input=GREETING)
    lab.exec("node1", ["sh", "-c", f"cat > {mnt}/nginx.conf"], input=_nginx_conf(served))
    lab.exec("node1", ["sync"])  # crash-faithful disks: a power-off loses the unsynced
    tutela(lab, "node1", "resource", "create", "ocf:heartbeat:nginx", "web",
           "-p", f"configfile={served.mountpoint / 'nginx.conf'}",
           "-p", f"status10url=http://{VIP}:{PORT}/nginx_status",
           "-p", "OCF_CHECK_LEVEL=20", "-p", f"test20url=http://127.0.0.1:{PORT}/hello.txt",
           "-p", "test20regex=hello from nginx", "--depends-on", "www",
           "--depends-on", "dummy", "--check-interval", "1")
    tutela(lab, "node1", "restore", "web")


def _nginx_conf(served: Web) -> str:
    run = served.private_run
    # root: the lab lives in pytest's temporary directory, which only root may enter
    return f"""user root;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log {run}/nginx-access.log;
    server {{
        listen {VIP}:{PORT};
        listen 127.0.0.1:{PORT};  # for the agent's monitor: its curl binds to lo
        root {served.mountpoint}/docs;
        location /nginx_status {{ stub_status; }}
    }}
}}
"""


def _states(lab: Lab, node: str) -> dict[str, str]:
    return {r["tag"]: r["state"] for h in status(lab, node)["hierarchies"]
            for r in h["resources"]}


def _elsewhere_isp(lab: Lab, observer: str, tag: str) -> str | None:
    for hierarchy in status(lab, observer)["hierarchies"]:
        for resource in hierarchy["resources"]:
            if resource["tag"] == tag:
                return next((n for n, there in resource["elsewhere"].items()
                             if there["state"] == "ISP" and not there["stale"]), None)
    return None


def _in_service_on(lab: Lab, node: str) -> bool:
    """Every resource ISP on `node`, its address and mount there, Dummy's state file in its
    HA_RSCTMP, and nginx answering the client through the virtual IP."""
    return (all(_states(lab, node).get(tag) == "ISP" for tag in TAGS)
            and VIP in lab.addresses(node)
            and any(m.endswith("/mnt/www") for _, m in lab.mounts(node))
            and (_rsctmp(lab, node) / "Dummy-dummy.state").exists())


def _holders(lab: Lab) -> list[str]:
    return [n for n in lab.nodes if lab.node_state(n) != "off" and VIP in lab.addresses(n)]


def test_the_agents_bring_it_in_service_on_the_first_node(lab: Lab, web: Web) -> None:
    wait_until(lambda: _in_service_on(lab, "node1"), timeout=30, what="web ISP on node1")
    assert _holders(lab) == ["node1"]
    wait_until(lambda: fetch(lab, web.url, timeout=2) == GREETING, timeout=30,
               what="the client to get the page through the virtual IP")
    # OCF_CHECK_LEVEL=20 reached the agent: its monitor fetches the page on node1's lo
    wait_until(lambda: _monitor_fetches(lab, web, "node1"), timeout=30,
               what="nginx's depth-20 monitor to fetch the page")


def _monitor_fetches(lab: Lab, web: Web, node: str) -> bool:
    log = lab.exec(node, ["cat", str(web.private_run / "nginx-access.log")]).stdout
    return any(line.startswith("127.0.0.1 ") and "GET /hello.txt" in line
               for line in log.splitlines())
    assert (web.private_run / "nginx.pid").exists() is False  # the host sees no node's tmpfs


def test_the_daemon_refuses_bad_parameters_and_pacemaker_only_agents(lab: Lab,
                                                                      web: Web) -> None:
    bad = tutela(lab, "node1", "resource", "create", "ocf:heartbeat:IPaddr2", "vip2", "-p",
                 "ip=198.51.100.121", "-p", "netmask=24", "-p", "arp_count=many", check=False)
    assert bad.returncode == 2
    assert "resources[vip2].params.netmask: ocf:heartbeat:IPaddr2 has no parameter " \
           "'netmask'\n    fix: use one of: ip, nic, cidr_netmask" in bad.stderr
    assert "resources[vip2].params.arp_count: must be an integer, e.g. 5" in bad.stderr
    refused = tutela(lab, "node1", "resource", "create", "ocf:heartbeat:SysInfo", "info",
                     check=False)
    assert refused.returncode == 2
    assert "resources[info].kit: not supported: ocf:heartbeat:SysInfo uses Pacemaker's " \
           "attribute daemon (attrd_updater)" in refused.stderr
    assert set(_states(lab, "node1")) == set(TAGS)  # nothing was created


def test_power_off_of_the_owner_fails_it_over(lab: Lab, web: Web) -> None:
    lab.power_off("node1")
    wait_until(lambda: fetch(lab, web.url, timeout=1) == GREETING, timeout=120,
               what="nginx back through the virtual IP")
    wait_until(lambda: _in_service_on(lab, "node2"), timeout=30, what="web ISP on node2")
    wait_until(lambda: _monitor_fetches(lab, web, "node2"), timeout=30,
               what="nginx's depth-20 monitor on node2")
    assert _holders(lab) == ["node2"]
    assert not _in_service_on(lab, "node3")


def test_a_dead_nginx_is_restarted_in_place(lab: Lab, web: Web) -> None:
    """nginx killed: its recurring monitor says OCF_NOT_RUNNING, which on a recurring
    monitor is a (soft) failure, so tutela recovers it on the same node (stop, start)
    instead of failing over."""
    pid = _nginx_pid(lab, "node2")
    # master and workers: workers outliving their master keep the port, as they would on
    # a real machine, and the agent's start then fails (its stop knows only the master)
    lab.exec("node2", ["sh", "-c", f"kill -KILL {pid} $(ps -o pid= --ppid {pid})"])
    wait_until(lambda: _nginx_pid(lab, "node2") not in (None, pid) and
               fetch(lab, web.url, timeout=1) == GREETING, timeout=60,
               what="nginx restarted on node2")
    assert _holders(lab) == ["node2"]
    assert "monitor exited 7 (OCF_NOT_RUNNING, not running)" in \
        (lab.state_dir("node2") / "tutelad.log").read_text()


def _nginx_pid(lab: Lab, node: str) -> int | None:
    """nginx's master PID on `node` (in the node's PID namespace) if that process runs."""
    found = lab.exec(node, ["sh", "-c", f"kill -0 $(cat {lab.root}/noderun/nginx.pid) && "
                            f"cat {lab.root}/noderun/nginx.pid"], check=False)
    return int(found.stdout) if found.returncode == 0 else None


def test_remove_takes_every_agent_out_of_service(lab: Lab, web: Web) -> None:
    tutela(lab, "node2", "remove", "vip")  # vip and all above it: www, web
    tutela(lab, "node2", "remove", "dummy")
    # a local recovery of nginx still in flight from the test before finishes first
    wait_until(lambda: all(state == "OSU" for state in _states(lab, "node2").values()),
               timeout=30, what="every resource out of service on node2")
    assert _holders(lab) == []
    assert not any(m.endswith("/mnt/www") for _, m in lab.mounts("node2"))
    assert fetch(lab, web.url, timeout=1) == ""
    assert not (_rsctmp(lab, "node2") / "Dummy-dummy.state").exists()
