"""The real /dev/watchdog code path against the lab's kernel-mode watchdog: real open, write,
ioctl and close system calls, carried by the kernel to the FUSE file hardwared serves
(tutela.lab.watchdog_fuse), which answers as Linux's watchdog_dev does. This machine has no
softdog to test against (loading it would reset the host) and no CUSE.

Covered: open arms, a second open is EBUSY, WDIOC_SETTIMEOUT in whole seconds (EINVAL below
1) read back with WDIOC_GETTIMEOUT, WDIOC_KEEPALIVE, GETSUPPORT, GETSTATUS, the magic close
stops it, a close without "V" leaves it running and it powers the node off; tutelad's client
(tutela.watchdog_device) inside a node; `lab down` unmounts, also after hardwared was
killed. That a stopped watchdog does not fire is proven with a marker (another node's
watchdog, armed later with a longer timeout, powers its node off), not by waiting.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lab import assert_gone, lab_cli

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab, LabError
from tutela.lab.kernel_watchdog import IDENTITY
from tutela.lab.watchdog_fuse import FSNAME
from tutela.watchdog_device import (
    INT,
    WATCHDOG_INFO,
    WDIOC_GETSTATUS,
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMELEFT,
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETTIMEOUT,
    WDIOF_KEEPALIVEPING,
    WDIOF_MAGICCLOSE,
    WDIOF_SETTIMEOUT,
    describe,
)

pytestmark = pytest.mark.lab

NAME = unique_lab_name("kwd")
CLIENT = ("import sys\nfrom tutela.watchdog_device import Watchdog\n"
          "dog = Watchdog(sys.argv[1])\nprint(dog.arm(float(sys.argv[2])))\ndog.pet()\n"
          "dog.disarm() if sys.argv[3] == 'disarm' else dog.close()\n")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("kwd")
    with Lab.up(NAME, nodes=2, disks=0, root=root, watchdog="kernel") as built:
        yield built
    assert_gone(NAME, root)
    assert [m for m in watchdog_mounts() if m.startswith(f"{root}/")] == []


@pytest.fixture
def powered(lab: Lab) -> Iterator[Lab]:
    """The lab, and afterwards every node running again."""
    yield lab
    for node in lab.nodes:
        if lab.node_state(node) == "off":
            lab.power_on(node)


def watchdog_mounts() -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[0] == FSNAME]


def ioctl_int(fd: int, command: int, value: int = 0) -> int:
    answer: int = INT.unpack(fcntl.ioctl(fd, command, INT.pack(value)))[0]
    return answer


def events(lab: Lab, node: str, since: int = 0) -> list[str]:
    return [e.event for e in lab.watchdog_events(node)[since:]]


def logged(lab: Lab, node: str, since: int, last: list[str]) -> bool:
    return events(lab, node, since)[-len(last):] == last


def run_client(lab: Lab, node: str, timeout: float, end: str) -> float:
    """tutelad's watchdog client in `node`: arm(timeout), pet, then "disarm" or "close"."""
    done = lab.exec(node, ["python3", "-c", CLIENT, lab.watchdog_path(node), str(timeout), end])
    return float(done.stdout)


def powered_off_by_watchdog(lab: Lab, node: str) -> bool:
    return lab.node_state(node) == "off" and events(lab, node)[-1:] == ["powered-off"]


def outlive(lab: Lab, marker: str, seconds: int) -> None:
    """Arm `marker`'s watchdog for `seconds` and leave it to power that node off: a watchdog
    armed earlier with a shorter timeout would have fired before it, by hardwared's clock."""
    fd = os.open(lab.watchdog_path(marker), os.O_WRONLY)
    ioctl_int(fd, WDIOC_SETTIMEOUT, seconds)
    os.close(fd)
    wait_until(lambda: powered_off_by_watchdog(lab, marker), timeout=seconds + 5,
               what=f"the marker: {marker}'s watchdog to power it off")


def test_the_device_answers_like_the_kernel(lab: Lab) -> None:
    path = lab.watchdog_path("node1")
    assert path == str(lab.root / "watchdogs" / "node1")
    assert describe(path).min_timeout == 1.0  # a whole-second Linux watchdog to tutelad
    assert any(device == FSNAME for device, _ in lab.mounts("node1"))  # the node sees it
    fd = os.open(path, os.O_WRONLY)
    try:
        assert events(lab, "node1") == ["armed"]  # open arms, with softdog's 60 s
        with pytest.raises(OSError) as busy:
            os.open(path, os.O_WRONLY)
        assert busy.value.errno == errno.EBUSY
        for bad in (0, -1, 65536):
            with pytest.raises(OSError) as invalid:
                ioctl_int(fd, WDIOC_SETTIMEOUT, bad)
            assert invalid.value.errno == errno.EINVAL
        assert ioctl_int(fd, WDIOC_SETTIMEOUT, 30) == 30
        assert ioctl_int(fd, WDIOC_GETTIMEOUT) == 30
        assert 28 <= ioctl_int(fd, WDIOC_GETTIMELEFT) <= 30
        assert ioctl_int(fd, WDIOC_KEEPALIVE, 5) == 5  # the driver writes nothing back
        options, _, identity = WATCHDOG_INFO.unpack(
            fcntl.ioctl(fd, WDIOC_GETSUPPORT, bytes(WATCHDOG_INFO.size)))
        assert options & WDIOF_SETTIMEOUT and options & WDIOF_MAGICCLOSE
        assert identity.rstrip(b"\0").decode() == IDENTITY
        assert ioctl_int(fd, WDIOC_GETSTATUS) == WDIOF_KEEPALIVEPING
        os.write(fd, b"V")
        assert ioctl_int(fd, WDIOC_GETSTATUS) & WDIOF_MAGICCLOSE
    finally:
        os.close(fd)
    wait_until(lambda: logged(lab, "node1", 0, ["disarmed"]), timeout=5,
               what="the magic close")
    assert events(lab, "node1") == ["armed", "bad-timeout", "bad-timeout", "bad-timeout",
                                    "timeout", "disarmed"]


def test_close_without_v_leaves_it_running_and_it_fires(powered: Lab) -> None:
    """tutelad's client asks 0.4 s: it gets the device's whole second, read back."""
    lab = powered
    before = len(lab.watchdog_events("node1"))
    assert run_client(lab, "node1", 0.4, "close") == 1.0
    wait_until(lambda: powered_off_by_watchdog(lab, "node1"), timeout=1 + 5,
               what="node1's watchdog to power it off")
    assert events(lab, "node1", before) == ["armed", "timeout", "unexpected-close",
                                            "expired", "halted", "powered-off"]


def test_magic_close_stops_it(powered: Lab) -> None:
    """In a node powered on again (its mount namespace, new at boot, has the device)."""
    lab = powered
    before = len(lab.watchdog_events("node1"))
    assert run_client(lab, "node1", 1.0, "disarm") == 1.0
    wait_until(lambda: logged(lab, "node1", before, ["disarmed"]), timeout=5,
               what="the magic close")
    outlive(lab, "node2", 2)  # node1's 1 s watchdog, still running, would have fired first
    assert lab.node_state("node1") == "running"
    assert events(lab, "node1", before) == ["armed", "timeout", "disarmed"]


REFUSED = ("import sys\nfrom tutela.watchdog_device import Watchdog\n"
           "dog = Watchdog(sys.argv[1])\ntry:\n    dog.arm(float(sys.argv[2]))\n"
           "except OSError as error:\n    print(error.errno, dog.armed)\n")


def test_a_timeout_the_driver_refuses_undoes_the_open(powered: Lab) -> None:
    """The open started the watchdog with the driver's 60 s; when the timeout asked for
    cannot be set, arm() stops it again by the magic close instead of leaving it to reset
    a node that never armed for its lease."""
    lab = powered
    before = len(lab.watchdog_events("node1"))
    done = lab.exec("node1", ["python3", "-c", REFUSED, lab.watchdog_path("node1"), "70000"])
    assert done.stdout.split() == [str(errno.EINVAL), "False"]
    wait_until(lambda: logged(lab, "node1", before, ["disarmed"]), timeout=5,
               what="the magic close")
    assert events(lab, "node1", before) == ["armed", "bad-timeout", "disarmed"]


def test_status_names_the_mode(lab: Lab) -> None:
    where = ["--name", NAME, "--root", str(lab.root)]
    shown = json.loads(lab_cli("status", "--json", *where).stdout)
    assert shown["watchdog"] == "kernel"
    assert shown["nodes"][0]["watchdog"]["device"] == lab.watchdog_path("node1")
    assert f"watchdogs {lab.root}/watchdogs/NODE (kernel mode)" in \
        lab_cli("status", *where).stdout


def test_an_unknown_mode_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"watchdog mode 'softdog' is unknown.*emulated, kernel"):
        Lab.up(unique_lab_name("kwdx"), nodes=1, disks=0, root=tmp_path / "lab",
               watchdog="softdog")
    assert not (tmp_path / "lab").exists()


def test_lab_down_unmounts_what_a_killed_hardwared_left(tmp_path: Path) -> None:
    name, root = unique_lab_name("kwdk"), tmp_path / "lab"
    lab = Lab.up(name, nodes=1, disks=0, root=root, watchdog="kernel")
    try:
        mount = str(root / "watchdogs")
        assert mount in watchdog_mounts()
        pid = lab.hardware_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: lab.hardware_pid() is None, timeout=10, what="hardwared gone")
        assert mount in watchdog_mounts()  # dead: "transport endpoint is not connected"
    finally:
        removed = Lab.teardown(name, root)
    assert f"mount {mount}" in removed
    assert_gone(name, root)
    assert mount not in watchdog_mounts()
