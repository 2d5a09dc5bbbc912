"""The apache and nginx kits in a three-node lab, in one hierarchy as a site often runs
them: nginx in front (VIP port 8081) passing requests to Apache httpd (VIP port 8080),
which serves pages from the shared disk (a filesystem resource) behind a virtual IP. A
client in the client namespace fetches a page through both before and after the owner is
powered off, under the split-brain checker.

The nodes share the host's /run, so the servers' pid files, logs and Apache's run-time
directory go to a tmpfs each node mounts in its own mount namespace. The lab root is
under /run/tutela-lab (the default), which Apache's www-data workers may enter.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import fetch
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela
from web_servers import apache_conf, nginx_conf

pytestmark = pytest.mark.lab
VIP = "198.51.100.150"
APACHE_PORT, NGINX_PORT = 8080, 8081
PAGE = "served from the shared disk by Apache, through nginx and tutela\n"
TAGS = ("vip", "www", "apache", "nginx")


@dataclass(frozen=True)
class Site:
    mountpoint: Path
    private_run: Path

    def url(self, port: int) -> str:
        return f"http://{VIP}:{port}/page.txt"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.up(unique_lab_name("web"), nodes=3, disks=1) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    form_cluster(lab, "web")
    wait_until(lambda: all_alive(lab), timeout=30, what="cluster formed")
    served = Site(lab.root / "mnt" / "www", lab.root / "noderun")
    served.private_run.mkdir()
    for node in lab.nodes:
        lab.exec(node, ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "webrun",
                        str(served.private_run)])
    subprocess.run(["mkfs.ext4", "-q", "-F", lab.disks[0]], check=True, timeout=120)
    _create(lab, served)
    for priority, node in ((2, "node2"), (3, "node3")):
        tutela(lab, "node1", "hierarchy", "extend", "nginx", "--to", node,
               "--priority", str(priority))
    with SplitBrainChecker(lab, VIP, str(served.mountpoint)) as checker:
        yield served
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def _create(lab: Lab, served: Site) -> None:
    """vip <- www <- apache <- nginx; pages and both configurations on the shared disk."""
    mnt, run = served.mountpoint, served.private_run
    tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={VIP}/24")
    tutela(lab, "node1", "resource", "create", "filesystem", "www",
           "-p", f"device={lab.disks[0]}", "-p", f"mountpoint={mnt}", "-p", "fstype=ext4",
           "--depends-on", "vip")
    tutela(lab, "node1", "restore", "www")
    files = {"docs/page.txt": PAGE,
             "apache.conf": apache_conf([f"{VIP}:{APACHE_PORT}"], mnt / "docs", run),
             "nginx.conf": nginx_conf([f"{VIP}:{NGINX_PORT}"], mnt / "docs", run,
                                      proxy_to=f"http://{VIP}:{APACHE_PORT}")}
    for name, text in files.items():
        lab.exec("node1", ["sh", "-c", f"mkdir -p $(dirname {mnt / name}) && "
                                       f"cat > {mnt / name}"], input=text)
    # flushed, as an administrator's files are long before a crash: the lab's disks are
    # crash-faithful, and node1's power-off would lose what it had not flushed
    lab.exec("node1", ["sync", "-f", str(mnt)])
    for kit, port, below in (("apache", APACHE_PORT, "www"), ("nginx", NGINX_PORT, "apache")):
        tutela(lab, "node1", "resource", "create", kit, kit,
               "-p", f"configfile={mnt / f'{kit}.conf'}", "-p", f"address={VIP}",
               "-p", f"port={port}", "-p", "check_path=/page.txt",
               "-p", "check_regex=served from the shared disk", "--depends-on", below,
               "--check-interval", "2")
    tutela(lab, "node1", "restore", "nginx")


def _states(lab: Lab, node: str) -> dict[str, str]:
    return {r["tag"]: r["state"] for h in status(lab, node)["hierarchies"]
            for r in h["resources"]}


def _in_service_on(lab: Lab, node: str) -> bool:
    return all(_states(lab, node).get(tag) == "ISP" for tag in TAGS)


def _holders(lab: Lab) -> list[str]:
    return [n for n in lab.nodes if lab.node_state(n) != "off" and VIP in lab.addresses(n)]


def _served(lab: Lab, site: Site) -> bool:
    """The client gets the page from Apache directly and through nginx."""
    return all(fetch(lab, site.url(port), timeout=2) == PAGE
               for port in (APACHE_PORT, NGINX_PORT))


def test_the_client_gets_the_page_through_both_servers(lab: Lab, site: Site) -> None:
    wait_until(lambda: _in_service_on(lab, "node1"), timeout=60, what="the site ISP on node1")
    assert _holders(lab) == ["node1"]
    wait_until(lambda: _served(lab, site), timeout=30, what="the page through the VIP")
    log = (lab.state_dir("node1") / "tutelad.log").read_text()
    assert f"answers on {VIP} port {APACHE_PORT}" in log
    assert f"answers on {VIP} port {NGINX_PORT}" in log
    # the kits' checks (the agents' monitors, with wget) fetch the same page at the VIP
    wait_until(lambda: all(_checked(lab, "node1", kit) for kit in ("apache", "nginx")),
               timeout=30, what="a passing check of both servers")


def _checked(lab: Lab, node: str, kit: str) -> bool:
    log = (lab.state_dir(node) / "tutelad.log").read_text()
    return f"tutela.resource.{kit}: monitor exited 0 (OCF_SUCCESS, success)" in log


def test_power_off_of_the_owner_fails_both_over(lab: Lab, site: Site) -> None:
    lab.power_off("node1")
    wait_until(lambda: _served(lab, site), timeout=120, what="the page back through the VIP")
    wait_until(lambda: _in_service_on(lab, "node2"), timeout=30, what="the site ISP on node2")
    assert _holders(lab) == ["node2"]
    assert not _in_service_on(lab, "node3")


def test_remove_stops_both_servers(lab: Lab, site: Site) -> None:
    tutela(lab, "node2", "remove", "nginx")  # the whole hierarchy, nginx first
    wait_until(lambda: set(_states(lab, "node2").values()) == {"OSU"}, timeout=30,
               what=f"every resource OSU on node2 (now {_states(lab, 'node2')})")
    assert _holders(lab) == []
    for port in (APACHE_PORT, NGINX_PORT):
        assert fetch(lab, site.url(port), timeout=1) == ""
    for pid_file in ("apache.pid", "nginx.pid"):
        alive = lab.exec("node2", ["sh", "-c", f"kill -0 $(cat {site.private_run / pid_file})"],
                         check=False)
        assert alive.returncode != 0, pid_file
