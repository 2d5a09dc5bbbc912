"""The disk voter's driver on real loop devices: two nodes' views of one shared disk, O_DIRECT
I/O in a worker thread, a view cut from the disk (tests/disk_views.py), and the device checks
`tutela disk init` and tutelad make."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from disk_views import cut, mend, shared_disk
from tutela.arbiter.messages import AcquireReply, AcquireRequest
from tutela.arbiter.timing import LeaseTiming
from tutela.daemon.disk_voter import (
    DeviceProblem,
    DiskVoterDriver,
    open_device,
    read_at,
    signature,
)
from tutela.model.config import DiskVoter

T = TypeVar("T")
TIMING = LeaseTiming()
ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def views(tmp_path: Path) -> Iterator[list[str]]:
    with shared_disk(tmp_path, 2) as devices:
        yield devices


def settings(views: list[str]) -> DiskVoter:
    return DiskVoter(id=ID, slots=("node1", "node2"), io_limit=0.01,
                     devices={"node1": views[0], "node2": views[1]})


class Node:
    """One node's driver and the answers its holder got."""

    def __init__(self, config: DiskVoter, name: str) -> None:
        self.name = name
        self.answers: list[AcquireReply] = []
        self.driver = DiskVoterDriver(config, name, TIMING, self.answers.append)
        self.round = 0

    async def ask(self, name: str = "web") -> AcquireReply:
        self.round += 1
        self.driver.deliver(AcquireRequest(self.round, 1, (name,), self.name,
                                           self.driver.voter_id, TIMING.duration))
        return await until(lambda: next((a for a in self.answers if a.round == self.round),
                                        None), what=f"{self.name}'s answer")


async def until(condition: Callable[[], T | None], timeout: float = 10.0,
                what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def ask_until_granted(node: Node, timeout: float) -> float:
    """Ask every renewal period (as a holder does) until granted: the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (await node.ask()).granted:
            return time.monotonic() - started
        await asyncio.sleep(TIMING.renew_every)
    raise AssertionError(f"{node.name} not granted within {timeout}s")


def test_the_disk_votes_for_one_node_and_names_it_to_the_other(views: list[str]) -> None:
    async def scenario() -> None:
        config = settings(views)
        node1, node2 = Node(config, "node1"), Node(config, "node2")
        node1.driver.start()
        node2.driver.start()
        try:
            await ask_until_granted(node1, timeout=5)  # its first read comes first
            assert await refused_naming(node2, "node1")
            assert node1.driver.status()["state"] == "ok"
            assert node1.driver.status()["claims"] == ["web"]
        finally:
            await node1.driver.stop()
            await node2.driver.stop()

    asyncio.run(scenario())


def test_a_node_cut_from_the_disk_gets_no_vote_and_its_peer_takes_over(
        views: list[str]) -> None:
    """node1 holds 'web' by the disk's vote, then loses its view of the disk: its requests
    fail (no vote), its slot stops changing, and node2 is granted once node1's claim has been
    unchanged for the window, L(1 + rho), not before."""
    async def scenario() -> None:
        config = settings(views)
        node1, node2 = Node(config, "node1"), Node(config, "node2")
        node1.driver.start()
        node2.driver.start()
        try:
            await ask_until_granted(node1, timeout=5)
            assert await refused_naming(node2, "node1")
            cut(views[0])
            cut_at = time.monotonic()
            assert not (await node1.ask()).granted
            assert node1.driver.status()["state"] == "failing"
            took = await ask_until_granted(node2, timeout=10)
            assert time.monotonic() - cut_at >= TIMING.duration * (1 + TIMING.drift) - 0.3
            assert took < 5
            mend(views[0])
            assert await refused_naming(node1, "node2")
        finally:
            await node1.driver.stop()
            await node2.driver.stop()

    asyncio.run(scenario())


async def refused_naming(node: Node, holder: str, timeout: float = 5.0) -> bool:
    """Once its view is mended, the node's requests are refused naming the new holder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = await node.ask()
        if reply.refused and reply.refused[0][1] == holder:
            return node.driver.status()["state"] == "ok"
        await asyncio.sleep(TIMING.renew_every)
    return False


def test_device_checks_name_the_problem(tmp_path: Path, views: list[str]) -> None:
    with pytest.raises(DeviceProblem, match="no such device"):
        open_device(str(tmp_path / "missing"), 0, 1024, 512)
    regular = tmp_path / "file"
    regular.write_bytes(bytes(4096))
    with pytest.raises(DeviceProblem, match="not a block device"):
        open_device(str(regular), 0, 1024, 512)
    with pytest.raises(DeviceProblem, match="the area needs"):
        open_device(views[0], 16 * 1024 * 1024, 1024, 512)
    held = os.open(views[0], os.O_RDONLY | os.O_EXCL)
    try:
        with pytest.raises(DeviceProblem, match="in use"):
            open_device(views[0], 0, 1024, 512, exclusive=True)
    finally:
        os.close(held)
    fd = open_device(views[1], 0, 1024, 512)
    try:
        assert read_at(fd, 0, 1024) == bytes(1024)
    finally:
        os.close(fd)
    assert signature(views[0]) is None
    subprocess.run(["mkfs.ext4", "-q", "-F", views[0]], check=True, timeout=60)
    assert signature(views[1]) == "data of type ext4"  # the other view: the same disk


def test_an_idle_driver_reads_the_disk_for_its_status(views: list[str]) -> None:
    """No lease asked for: the driver still reads the area now and then, so that status
    shows a disk this node has lost before a failover needs it."""
    async def scenario() -> None:
        node = Node(settings(views), "node1")
        node.driver.start()
        try:
            await until(lambda: node.driver.status()["state"] == "ok", what="a first read")
            cut(views[0])
            await until(lambda: node.driver.status()["state"] == "failing", what="the cut")
            assert "short read" in str(node.driver.status()["error"])
            mend(views[0])
            await until(lambda: node.driver.status()["state"] == "ok", what="the mend")
        finally:
            await node.driver.stop()

    asyncio.run(scenario())
