"""The lab itself: real namespaces, bridges, loop devices and processes, checked physically.

Needs root and the lab's tools; without them the tests fail (never skip). Every lab built
here is torn down by its fixture, also when a test fails, and the teardown is checked:
no namespace, loop device or process of the lab may be left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab, LabCommandError, LabError, cmd, disks, netns, node, procs

pytestmark = pytest.mark.lab

NAME = unique_lab_name("lt")


@pytest.fixture(scope="module", autouse=True)
def _root_and_tools() -> None:
    try:
        cmd.check_prerequisites()
    except LabError as exc:
        pytest.fail(f"the lab tests cannot run: {exc}")
    for tool in ("ping", "mount", "umount"):
        if cmd.which(tool) is None:
            pytest.fail(f"the lab tests need '{tool}'")


def processes_mentioning(text: str) -> list[int]:
    return [p for p in procs.all_pids() if procs.alive(p) and text in node.cmdline_text(p)]


def assert_gone(name: str, root: Path) -> None:
    """Nothing of lab `name` is left: no namespace, loop device, process or directory."""
    assert netns.lab_netns(name) == []
    assert [d for d in disks.list_loops() if d.backing_file.startswith(f"{root}/")] == []
    assert processes_mentioning(str(root)) == []
    assert not root.exists()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    with Lab.up(NAME, nodes=2, disks=1, root=root) as built:
        yield built
    assert_gone(NAME, root)


def ping(lab: Lab, source: str, address: str) -> bool:
    argv = ["ping", "-c", "1", "-W", "1", address]
    if source == "client":
        return lab.client_exec(argv, check=False).returncode == 0
    return lab.exec(source, argv, check=False).returncode == 0


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`tutela lab ARGS...` in a fresh Python, as a user runs it."""
    cli = [sys.executable, "-c",
           "from tutela.cli.lab import lab_group; lab_group(prog_name='tutela lab')"]
    return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def stat_state(pid: int) -> str:
    st = procs.stat(pid)
    return st.state if st else "gone"


def test_nodes_are_separate_hosts(lab: Lab) -> None:
    assert lab.nodes == ["node1", "node2"]
    for n in lab.nodes:
        assert lab.exec(n, ["hostname"]).stdout.strip() == n
        env = lab.exec(n, ["sh", "-c", 'echo "$TUTELA_STATE_DIR $TUTELA_LAB"; command -v tutela'])
        state_dir, lab_name, tutela = env.stdout.split()
        assert (state_dir, lab_name) == (str(lab.root / n / "state"), NAME)
        assert Path(state_dir).is_dir()
        assert tutela == os.path.join(os.path.dirname(sys.executable), "tutela")
    pid1, pid2 = lab.node_pid("node1"), lab.node_pid("node2")
    assert pid1 and pid2
    for kind in ("net", "mnt", "uts", "pid"):
        own = {procs.ns_inode(pid1, kind), procs.ns_inode(pid2, kind), procs.ns_inode(1, kind)}
        assert len(own) == 3, f"{kind} namespace is shared"
    assert "nodeinit" in lab.exec("node1", ["cat", "/proc/1/cmdline"]).stdout  # own PID 1
    assert int(lab.exec("node1", ["sh", "-c", "echo $$"]).stdout) < 100  # own PID numbers
    assert lab.exec("node1", ["pwd"]).stdout.strip() == os.getcwd()
    assert lab.exec("node1", ["pwd"], cwd="/").stdout.strip() == "/"


def test_exec_reports_status_output_and_input(lab: Lab) -> None:
    done = lab.exec("node2", ["sh", "-c", "cat; echo oops >&2; exit 3"], check=False,
                    input="hello\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, "hello\n", "oops\n")
    with pytest.raises(LabCommandError, match="oops"):
        lab.exec("node2", ["sh", "-c", "echo oops >&2; exit 1"])
    with pytest.raises(subprocess.TimeoutExpired):
        lab.exec("node2", ["sleep", "29.5"], timeout=0.3)
    wait_until(lambda: not processes_mentioning("sleep 29.5"), timeout=5,
               what="the timed-out command to be killed")
    with pytest.raises(LabError, match="no node 'node7'"):
        lab.exec("node7", ["true"])


def test_networks_join_nodes_and_client(lab: Lab) -> None:
    assert lab.addresses("node1") == ["198.51.100.11", "203.0.113.11"]
    assert lab.addresses("node2", prefix=True) == ["198.51.100.12/24", "203.0.113.12/24"]
    assert lab.node_address("node2", net=2) == "203.0.113.12"
    assert lab.client_address(net=1) == "198.51.100.250"
    for net in (1, 2):
        assert ping(lab, "node1", lab.node_address("node2", net)), f"node1 -> node2 on net{net}"
        assert ping(lab, "client", lab.node_address("node1", net)), f"client -> node1 net{net}"
    assert ping(lab, "node2", lab.client_address(2))
    names = set(netns.list_netns())
    assert {lab.netns("node1"), lab.netns("node2"), lab.switch_netns, lab.client_netns} <= names
    ports = cmd.ip("-j", "link", "show", "master", lab.bridge(1), netns=lab.switch_netns).stdout
    assert {p["ifname"] for p in json.loads(ports)} == {
        lab.switch_port("node1", 1), lab.switch_port("node2", 1), "client-net1"}


def test_mount_in_a_node_stays_in_that_node(lab: Lab, tmp_path: Path) -> None:
    disk = lab.disks[0]
    assert disk.startswith("/dev/loop") and Path(disk).is_block_device()
    mountpoint = str(tmp_path / "data")
    os.mkdir(mountpoint)
    lab.exec("node1", ["mkfs.ext4", "-q", "-F", disk], timeout=60)
    lab.exec("node1", ["mount", disk, mountpoint])
    try:
        assert (disk, mountpoint) in lab.mounts("node1")
        assert all(m != mountpoint for _, m in lab.mounts("node2"))
        assert mountpoint not in Path("/proc/self/mounts").read_text()
        lab.exec("node1", ["sh", "-c", f"echo hi > {mountpoint}/file"])
        assert not (tmp_path / "data" / "file").exists()  # the host sees the bare directory
    finally:
        lab.exec("node1", ["umount", mountpoint], check=False)
    assert all(m != mountpoint for _, m in lab.mounts("node1"))


def test_node_and_client_addresses_are_pinned_not_learned(lab: Lab) -> None:
    # The kernel's ARP table is shared by every namespace and capped (gc_thresh3, 1024 by
    # default): learned entries for a full mesh of 25+ nodes overflow it. Pinned ones do
    # not count, and a node that powers on gets them again.
    def pinned(node: str) -> set[tuple[str, str]]:
        found = json.loads(cmd.ip("-j", "neigh", "show", "nud", "permanent",
                                  netns=lab.netns(node) if node != "client"
                                  else lab.client_netns).stdout)
        return {(e["dst"], e["lladdr"]) for e in found}

    for net in (1, 2):
        assert (lab.node_address("node2", net), lab.node_mac("node2", net)) in pinned("node1")
        assert (lab.node_address("node1", net), lab.node_mac("node1", net)) in pinned("client")
        assert (lab.client_address(net), netns.mac(netns.CLIENT_HOST, net)) in pinned("node2")
    assert all(address != lab.node_address("node1", 1) for address, _ in pinned("node1"))
    lab.power_off("node2")
    lab.power_on("node2")
    assert (lab.node_address("node1", 1), lab.node_mac("node1", 1)) in pinned("node2")


def test_power_off_kills_everything_and_power_on_boots_fresh(lab: Lab, tmp_path: Path) -> None:
    sleeper = lab.spawn("node1", ["sleep", "1000"], str(tmp_path / "sleep.log"))
    old_pid1 = lab.node_pid("node1")
    assert old_pid1
    wait_until(lambda: stat_state(sleeper) == "S", timeout=10, what="the sleeper asleep")
    pidns = procs.ns_inode(old_pid1, "pid")
    assert pidns is not None and procs.ns_inode(sleeper, "pid") == pidns
    lab.exec("node1", ["ip", "address", "add", "198.51.100.100/24", "dev", "eth0"])
    mountpoint = str(tmp_path / "scratch")
    os.mkdir(mountpoint)
    lab.exec("node1", ["mount", "-t", "tmpfs", "scratch", mountpoint])
    assert ("scratch", mountpoint) in lab.mounts("node1")

    lab.power_off("node1")
    assert lab.node_state("node1") == "off"
    assert stat_state(sleeper) == "gone" and stat_state(old_pid1) == "gone"
    assert procs.pids_in_ns("pid", pidns) == []
    assert lab.netns("node1") not in netns.list_netns()
    assert lab.mounts("node1") == [] and lab.addresses("node1") == []
    assert not ping(lab, "client", lab.node_address("node1"))
    assert not ping(lab, "client", "198.51.100.100")
    assert ping(lab, "client", lab.node_address("node2"))
    with pytest.raises(LabError, match="powered off"):
        lab.exec("node1", ["true"])
    lab.power_off("node1")  # again: nothing to do

    assert lab.power_on("node1") is None  # not initialised: no tutelad
    assert lab.node_state("node1") == "running"
    assert lab.node_pid("node1") not in (None, old_pid1)
    assert lab.addresses("node1") == ["198.51.100.11", "203.0.113.11"]
    assert all(m != mountpoint for _, m in lab.mounts("node1"))
    assert lab.exec("node1", ["hostname"]).stdout.strip() == "node1"
    wait_until(lambda: ping(lab, "client", lab.node_address("node1")), timeout=10,
               what="node1 to answer again")
    with pytest.raises(LabError, match="already on"):
        lab.power_on("node1")


def test_freeze_stops_every_process_and_thaw_continues(lab: Lab, tmp_path: Path) -> None:
    sleeper = lab.spawn("node2", ["sleep", "1000"], str(tmp_path / "sleep.log"))
    pid1 = lab.node_pid("node2")
    assert pid1
    try:
        stopped = lab.freeze("node2")
        assert {pid1, sleeper} <= set(stopped)
        assert stat_state(pid1) == "T" and stat_state(sleeper) == "T"
        assert lab.node_state("node2") == "frozen"
        assert ping(lab, "client", lab.node_address("node2"))  # a hung box's kernel answers
    finally:
        lab.thaw("node2")
    assert stat_state(pid1) == "S" and stat_state(sleeper) == "S"
    assert lab.node_state("node2") == "running"
    os.kill(sleeper, signal.SIGTERM)  # a host PID; inside the node it has another number
    wait_until(lambda: stat_state(sleeper) == "gone", timeout=5,
               what="nodeinit to reap the killed sleeper")


def test_start_daemon(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """start_daemon runs <dir of python>/tutelad detached in the node once it is initialised;
    a stand-in tutelad here, so the lab is tested on its own."""
    fake = tmp_path / "tutelad"
    fake.write_text('#!/bin/sh\necho "tutelad for $TUTELA_STATE_DIR"\nexec sleep 1000\n')
    fake.chmod(0o755)
    monkeypatch.setattr(node, "bin_dir", lambda: str(tmp_path))
    state = lab.state_dir("node2")
    assert lab.start_daemon("node2") is None  # no lcd.sqlite yet
    (state / "lcd.sqlite").touch()
    try:
        pid = lab.start_daemon("node2")
        assert pid and lab.daemon_pid("node2") == pid
        assert lab.start_daemon("node2") == pid  # already running: not a second one
        pid1 = lab.node_pid("node2")
        st = procs.stat(pid)
        assert st and st.ppid == pid1  # an orphan of the node, reaped by its PID 1
        assert os.getsid(pid) == pid
        assert procs.ns_inode(pid, "pid") == procs.ns_inode(pid1 or 0, "pid")
        log = lab.root / "node2" / "tutelad.log"
        wait_until(lambda: f"tutelad for {state}" in log.read_text(), timeout=5,
                   what="the daemon's log")
        lab.power_off("node2")
        assert stat_state(pid) == "gone" and lab.daemon_pid("node2") is None
        again = lab.power_on("node2")
        assert again and again != pid and lab.daemon_pid("node2") == again
    finally:
        (state / "lcd.sqlite").unlink()


def test_status_and_cli(lab: Lab) -> None:
    info = lab.status()
    assert [(n["name"], n["state"]) for n in info["nodes"]] == [
        ("node1", "running"), ("node2", "running")]
    assert info["disks"][0]["device"] == lab.disks[0]
    where = ["--name", NAME, "--root", str(lab.root)]
    run = lab_cli
    shown = json.loads(run("status", "--json", *where).stdout)
    assert shown["nodes"][1]["addresses"] == ["198.51.100.12/24", "203.0.113.12/24"]
    assert shown["client"]["addresses"]["net2"] == "203.0.113.250"
    done = run("exec", *where, "node2", "--", "sh", "-c", "hostname; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "node2\n", "err\n")
    assert run("client", *where, "--", "ping", "-c1", "-W1", "198.51.100.11").returncode == 0
    assert "node1" in run("status", *where).stdout
    for args in (("exec", *where, "node9", "--", "true"), ("status", "--name", "nosuchlab")):
        failed = run(*args)
        assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
        assert "fix:" in failed.stderr
    assert run("up", *where).returncode == 1  # exists already


def test_up_twice_refuses(lab: Lab) -> None:
    with pytest.raises(LabError, match="already exists"):
        Lab.up(NAME, root=lab.root)
    with pytest.raises(LabError, match="already exists"):
        Lab.up(NAME)  # another root, but the namespaces are taken


def test_down_after_a_crash_removes_everything(tmp_path: Path) -> None:
    name, root = f"{NAME}c", tmp_path / "crashed"
    built = Lab.up(name, nodes=2, disks=2, disk_size_mb=64, root=root)
    try:
        sleeper = built.spawn("node2", ["sleep", "1000"], str(root / "sleep.log"))
        pids = [built.node_pid(n) for n in built.nodes]
        devices = built.disks
        del built  # the test "crashes": its handle and the state file are lost
        (root / "lab.json").unlink()
        removed = Lab.teardown(name, root)
        assert set(devices) <= set(removed)
        assert all(stat_state(p or 0) == "gone" for p in [*pids, sleeper])
    finally:
        Lab.teardown(name, root)
    assert_gone(name, root)
    assert Lab.teardown(name, root) == []  # idempotent


def test_failed_up_cleans_up_and_reraises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    name, root = f"{NAME}f", tmp_path / "half"

    def broken(*_: object) -> str:
        raise RuntimeError("disk shelf on fire")

    monkeypatch.setattr(disks, "create", broken)
    try:
        with pytest.raises(RuntimeError, match="disk shelf on fire"):
            Lab.up(name, nodes=2, root=root)
    finally:
        Lab.teardown(name, root)
    assert_gone(name, root)


def test_refusals_name_problem_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    for kwargs, text in (({"name": "bad-name"}, "invalid lab name"),
                         ({"nodes": 33}, "33 nodes"),
                         ({"disk_size_mb": 1}, "too small")):
        with pytest.raises(LabError, match=text) as err:
            Lab.up(**kwargs)
        assert err.value.fix
    monkeypatch.setattr(cmd, "which", lambda t: None if t == "mkfs.ext4" else "/bin/true")
    with pytest.raises(LabError, match=r"mkfs\.ext4.*e2fsprogs"):
        Lab.up(f"{NAME}x")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        Lab.up(f"{NAME}x")
    with pytest.raises(LabError, match="no lab"):
        Lab.load(f"{NAME}x")


def read_only(device: str) -> bool:
    return cmd.run(["blockdev", "--getro", device]).stdout.strip() == "1"


def test_a_loop_device_left_read_only_is_writable_when_attached_again(tmp_path: Path) -> None:
    """`blockdev --setro` (the device kit's read_only_on_remove) outlives a loop device's
    detach; the next lab that gets that device must still be able to write its disk."""
    reused = 0
    for attempt in range(5):  # parallel tests may take the freed device meanwhile
        first, second = tmp_path / f"a{attempt}.img", tmp_path / f"b{attempt}.img"
        for backing in (first, second):
            backing.write_bytes(bytes(1 << 20))
        device = disks.attach_loop(str(first))
        cmd.run(["blockdev", "--setro", device])
        cmd.run(["losetup", "--detach", device])
        again = disks.attach_loop(str(second))
        try:
            if again == device:
                reused += 1
                assert not read_only(again)
        finally:
            cmd.run(["losetup", "--detach", again])
        if reused:
            break
    assert reused, "no attach got the device freed just before"
