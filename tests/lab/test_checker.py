"""The split-brain checker against a real lab: it sees an address or a mount on two nodes,
it passes a clean window, and it fails when it could not see (a node it cannot read that is
not off), never reporting a blind window as clean.

Its blindness is real: the name of a running node's network namespace is removed (`ip
netns delete`; the node's processes keep the namespace alive) and put back afterwards
(`ip netns attach`), so `ip -n` cannot enter it for a while.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lab import assert_gone

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab, cmd
from tutela.lab.checker import CheckerBlind, SplitBrainChecker

pytestmark = pytest.mark.lab

VIP = "198.51.100.150"
ENOUGH = 5  # samples, to have watched a while


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name, root = unique_lab_name("chk"), tmp_path_factory.mktemp("chk")
    with Lab.up(name, nodes=2, disks=0, root=root) as built:
        yield built
    assert_gone(name, root)


@pytest.fixture
def mountpoint(lab: Lab, tmp_path: Path) -> Iterator[str]:
    """A directory to mount on; afterwards nothing is mounted on it and every node is on."""
    path = tmp_path / "data"
    path.mkdir()
    yield str(path)
    for node in lab.nodes:
        if lab.node_state(node) == "off":
            lab.power_on(node)
        lab.exec(node, ["umount", str(path)], check=False)
        lab.exec(node, ["ip", "address", "del", f"{VIP}/24", "dev", "eth0"], check=False)


def test_a_clean_window_passes_and_says_how_well_it_was_watched(
        lab: Lab, mountpoint: str) -> None:
    lab.exec("node1", ["ip", "address", "add", f"{VIP}/24", "dev", "eth0"])
    lab.exec("node1", ["mount", "-t", "tmpfs", "tmpfs", mountpoint])
    with SplitBrainChecker(lab, VIP, mountpoint) as checker:
        wait_until(lambda: checker.samples >= ENOUGH, what=f"{ENOUGH} samples")
    assert checker.violations == [] and checker.blind == []
    assert checker.samples >= ENOUGH + 1  # and one more at exit
    assert 0 < checker.longest_gap <= checker.gap_bound


def test_an_address_and_a_mount_on_two_nodes_are_violations(lab: Lab, mountpoint: str) -> None:
    with SplitBrainChecker(lab, VIP, mountpoint) as checker:
        for node in lab.nodes:
            lab.exec(node, ["ip", "address", "add", f"{VIP}/24", "dev", "eth0"])
            lab.exec(node, ["mount", "-t", "tmpfs", "tmpfs", mountpoint])
        wait_until(lambda: len(checker.violations) >= 2, what="the violations seen")
    assert f"{VIP} on node1, node2" in checker.violations[0]
    assert any(f"{mountpoint} mounted on node1, node2" in v for v in checker.violations)


def test_a_node_it_cannot_read_makes_it_fail(lab: Lab, mountpoint: str) -> None:
    ns, pid = lab.netns("node2"), lab.node_pid("node2")
    assert pid is not None
    with (pytest.raises(CheckerBlind, match="could not read node2, which is not off"),
          SplitBrainChecker(lab, VIP, mountpoint) as checker):
        cmd.ip("netns", "delete", ns)  # node2 runs on, in a namespace ip cannot enter
        try:
            wait_until(lambda: checker.blind, what="the checker to notice")
        finally:
            cmd.ip("netns", "attach", ns, str(pid))
    assert checker.violations == []
    assert lab.addresses("node2") == [lab.node_address("node2", 1),
                                      lab.node_address("node2", 2)]  # the same namespace


def test_a_node_powered_off_is_no_blind_spot(lab: Lab, mountpoint: str) -> None:
    with SplitBrainChecker(lab, VIP, mountpoint) as checker:
        lab.power_off("node2")
        before = checker.samples
        wait_until(lambda: checker.samples >= before + ENOUGH, what="samples with node2 off")
        lab.power_on("node2")
    assert checker.blind == [] and checker.violations == []


def test_a_gap_longer_than_its_bound_makes_it_fail(lab: Lab, mountpoint: str) -> None:
    """No sample can follow another within a microsecond: the bound is exceeded for sure."""
    with (pytest.raises(CheckerBlind, match="without a complete sample, more than max_gap"),
          SplitBrainChecker(lab, VIP, mountpoint, max_gap=1e-6) as checker):
        wait_until(lambda: checker.samples >= 2, what="two samples")
