"""The device kit in a three-node lab: a raw device on the lab's shared disk, beside a
virtual IP, switching over and failing over between node1 and node2 under the split-brain
checker (which watches the address; it has no raw-device check, so the tests look at each
node's in-service mark themselves).

The lab's nodes share one kernel, so `blockdev --setro` on one node is seen by all: the
tests read the flag after each move, when the node that took the device last set it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
VIP = "198.51.100.130"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("dev"), nodes=3, disks=1,
                root=tmp_path_factory.mktemp("dev")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)
            subprocess.run(["blockdev", "--setrw", built.disks[0]], check=False)


@pytest.fixture(scope="module")
def raw(lab: Lab) -> Iterator[str]:
    """raw (device kit, read-only when removed) -> vip, on node1, extended to node2."""
    form_cluster(lab, "dev")
    wait_until(lambda: all_alive(lab), timeout=30, what="cluster formed")
    disk = lab.disks[0]
    tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={VIP}/24")
    tutela(lab, "node1", "resource", "create", "device", "raw", "-p", f"device={disk}",
           "-p", "read_only_on_remove=true", "--depends-on", "vip", "--check-interval", "1")
    tutela(lab, "node1", "restore", "raw")
    tutela(lab, "node1", "hierarchy", "extend", "raw", "--to", "node2", "--priority", "2")
    with SplitBrainChecker(lab, VIP, str(lab.root / "mnt" / "none")) as checker:
        yield disk
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def raw_status(lab: Lab, node: str) -> dict[str, Any]:
    return next(r for h in status(lab, node)["hierarchies"] for r in h["resources"]
                if r["tag"] == "raw")


def raw_state(lab: Lab, node: str) -> str:
    return str(raw_status(lab, node)["state"])


def marked(lab: Lab, node: str) -> bool:
    return (lab.state_dir(node) / "resources" / "raw" / "in-service").exists()


def read_only(disk: str) -> bool:
    return subprocess.run(["blockdev", "--getro", disk], capture_output=True, text=True,
                          check=True).stdout.strip() == "1"


def owners(lab: Lab) -> list[str]:
    """The nodes that are on and hold the address, or call raw in service."""
    return [n for n in lab.nodes if lab.node_state(n) != "off"
            and (VIP in lab.addresses(n) or raw_state(lab, n) == "ISP")]


def log_of(lab: Lab, node: str) -> str:
    return tutela(lab, node, "log", "-n", "200").stdout


def test_in_service_on_node1(lab: Lab, raw: str) -> None:
    wait_until(lambda: raw_state(lab, "node1") == "ISP", timeout=30, what="raw ISP on node1")
    assert owners(lab) == ["node1"]
    assert marked(lab, "node1") and not marked(lab, "node2")
    assert not read_only(raw)


def test_switchover_sets_read_only_then_writable(lab: Lab, raw: str) -> None:
    tutela(lab, "node1", "switchover", "raw", "--to", "node2")
    wait_until(lambda: raw_state(lab, "node2") == "ISP", timeout=30, what="raw ISP on node2")
    assert owners(lab) == ["node2"]
    assert marked(lab, "node2") and not marked(lab, "node1")
    assert f"blockdev --setro {raw}" in log_of(lab, "node1")
    assert f"blockdev --setrw {raw}" in log_of(lab, "node2")
    assert not read_only(raw)  # node2 set it writable after node1 set it read-only
    tutela(lab, "node2", "switchover", "raw", "--to", "node1")
    wait_until(lambda: raw_state(lab, "node1") == "ISP", timeout=30, what="raw back on node1")


def test_power_off_fails_over_and_the_old_mark_is_stale_after_power_on(lab: Lab,
                                                                        raw: str) -> None:
    lab.power_off("node1")
    wait_until(lambda: raw_state(lab, "node2") == "ISP", timeout=60, what="raw ISP on node2")
    assert owners(lab) == ["node2"]
    assert not read_only(raw)
    assert marked(lab, "node1")  # a power-off runs no remove: node1's mark stays behind
    lab.power_on("node1")
    wait_until(lambda: all_alive(lab), timeout=60, what="node1 back in the cluster")
    wait_until(lambda: raw_state(lab, "node1") == "OSU", timeout=30,
               what="node1 to find raw out of service (its mark is of an earlier boot)")
    assert (f"was in service before the restart but {raw} is not in service on this node"
            in raw_status(lab, "node1")["reason"])
    assert owners(lab) == ["node2"]
