"""`tutela doctor` on a real lab cluster (two nodes, a witness, a shared ext4 disk extended
to both): healthy, it finds nothing to fix; each test then breaks one thing on purpose,
checks that doctor names it (check, node, severity, fix), and mends it.

The lab's nodes share one kernel and so one wall clock, which a network namespace cannot
shift (a time namespace shifts only the monotonic and boot clocks). A node's clock is put
off by a fake, named as such: its tutelad runs with Python's time.time shifted by 30 s in
that process (SHIFTED_TUTELAD), the clock the doctor's facts report. libfaketime was tried
first and cannot serve: with FAKETIME_DONT_FAKE_MONOTONIC it makes clock_nanosleep fail
(time.sleep raises EINVAL: a subprocess wait in the facts' probes failed so in CI), and
without it Python's timed lock waits hang.

Name resolution, missing programs and a disk that is another disk on one node are made in
a node's own mount namespace (a bind mount over /etc/hosts, a program, a device path),
which the host and the other nodes never see.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import (
    all_alive,
    form_cluster_with_witness,
    start_witness,
    status,
    stop_process,
    tutela,
    witness_alive,
    witness_lab,
)

pytestmark = pytest.mark.lab
NET1 = "tcp/198.51.100.11-198.51.100.12"
NET2 = "tcp/203.0.113.11-203.0.113.12"
HOSTS = "127.0.0.1 localhost\n198.51.100.11 node1\n198.51.100.12 node2\n"
SHIFTED_TUTELAD = ("import sys, time\n_real = time.time\ntime.time = lambda: _real() + 30.0\n"
                   "from tutela.daemon.main import main\nmain(sys.argv[1:])\n")
"""tutelad with its wall clock (time.time) 30 s ahead: the fake clock described above."""


@pytest.fixture(scope="module")
def lab_and_witness(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[Lab, list[subprocess.Popen[str]]]]:
    root = tmp_path_factory.mktemp("doc")
    with witness_lab(unique_lab_name("doc"), root, disks=2) as (built, witness):
        witnesses = [witness]
        try:
            _prepare(built, root)
            yield built, witnesses
        finally:
            for process in witnesses[1:]:  # witnesses a test started again
                stop_process(process)


@pytest.fixture
def lab(lab_and_witness: tuple[Lab, list[subprocess.Popen[str]]]) -> Iterator[Lab]:
    """Each test starts and ends with a cluster doctor finds nothing wrong with."""
    built = lab_and_witness[0]
    yield built
    wait_until(lambda: all_alive(built) and witness_alive(built), timeout=30,
               what="every node and the witness ALIVE again")


def _prepare(lab: Lab, root: Path) -> None:
    """Hosts files that name the nodes, the cluster, and a hierarchy on disk 1 (ext4 with
    multi-mount protection) extended to node2, out of service."""
    hosts = root / "hosts"
    hosts.write_text(HOSTS)
    for node in lab.nodes:
        lab.exec(node, ["mount", "--bind", str(hosts), "/etc/hosts"])
    form_cluster_with_witness(lab, "doc")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "mmp", lab.disks[0]], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", lab.disks[1]], check=True)
    tutela(lab, "node1", "resource", "create", "filesystem", "data", "--param",
           f"device={lab.disks[0]}", "--param", f"mountpoint={root}/mnt/data",
           "--param", "fstype=ext4")
    tutela(lab, "node1", "hierarchy", "extend", "data", "--to", "node2", "--priority", "2")


def doctor(lab: Lab, node: str, *args: str, env: dict[str, str] | None = None
           ) -> tuple[int, dict[str, Any]]:
    """`tutela doctor --json` in `node`: its exit status and its report."""
    prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    result = lab.exec(node, [*prefix, "tutela", "doctor", "--json", *args], check=False,
                      timeout=120)
    assert result.returncode in (0, 1, 3), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["exit_code"] == result.returncode
    return result.returncode, report


def found(report: dict[str, Any], severity: str, node: str | None, check: str,
          text: str = "") -> dict[str, Any]:
    """The finding of `check` on `node` with `severity` whose text or fix has `text`."""
    for finding in report["findings"]:
        if (finding["severity"], finding["node"], finding["check"]) == (
                severity, node, check) and text in f"{finding['found']} {finding['fix']}":
            return finding  # type: ignore[no-any-return]
    raise AssertionError(f"no {severity} {check} on {node} with {text!r}: "
                         f"{json.dumps(report['findings'], indent=1)}")


def serious(report: dict[str, Any]) -> list[str]:
    return [f"{f['severity']} {f['node']} {f['check']}: {f['found']}"
            for f in report["findings"] if f["severity"] in ("warning", "problem")]


@contextlib.contextmanager
def bound(lab: Lab, node: str, source: str, target: str) -> Iterator[None]:
    """`source` mounted over `target` in `node`'s mount namespace only, for the block."""
    lab.exec(node, ["mount", "--bind", source, target])
    try:
        yield
    finally:
        lab.exec(node, ["umount", target])


def test_a_healthy_cluster_has_nothing_to_fix(lab: Lab) -> None:
    code, report = doctor(lab, "node1", "--cluster")
    assert serious(report) == [] and code == 0
    assert report["checked"] == ["node1", "node2"]
    found(report, "ok", None, "disks", "on node1, node2")
    found(report, "ok", "node2", "clock", "within 1s")
    found(report, "ok", None, "paths", "2 independent comm paths")
    found(report, "ok", "node2", "witness", "answers")
    found(report, "ok", None, "mmp", "has multi-mount protection")
    text = tutela(lab, "node1", "doctor", "--cluster").stdout.splitlines()
    assert text[0] == "doctor: node1 of cluster doc; checked node1, node2"
    assert text[-1] == f"{report['counts']['ok']} ok", text[-1]


def test_names_that_do_not_resolve(lab: Lab, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.1.1 localhost\n198.51.100.12 node2\n")
    with bound(lab, "node2", str(hosts), "/etc/hosts"):
        code, report = doctor(lab, "node2")
    assert code == 1
    found(report, "warning", "node2", "names", "add '198.51.100.11 node1' to /etc/hosts")
    found(report, "warning", "node2", "localhost", "resolves to 127.0.1.1")


def test_a_cut_link_is_a_dead_path(lab: Lab) -> None:
    lab.cut("node2", net=1)
    try:
        wait_until(lambda: _path_state(lab, "node1", NET1) == "DEAD", timeout=15,
                   what="the net1 path DEAD")
        code, report = doctor(lab, "node1")
    finally:
        lab.heal("node2", net=1)
    assert code == 3
    found(report, "problem", "node1", "port", f"{NET1} to node2 is DEAD")


def _path_state(lab: Lab, node: str, name: str) -> str:
    peer = next(n for n in status(lab, node)["nodes"] if not n["local"])
    return str(next(p["state"] for p in peer["paths"] if p["name"] == name))


def test_one_comm_path_is_a_single_point_of_failure(lab: Lab) -> None:
    tutela(lab, "node1", "path", "remove", NET2)
    try:
        code, report = doctor(lab, "node1")
    finally:
        tutela(lab, "node1", "path", "add", "node2", "203.0.113.11", "203.0.113.12",
               "--priority", "2")
    assert code == 1
    found(report, "warning", None, "paths", "one independent comm path between node1 and "
          "node2 (198.51.100.0/24)")


def test_a_stopped_node_and_a_watchdog_that_is_missing_or_too_coarse(lab: Lab) -> None:
    """node2's tutelad stopped: node1's --cluster names it; on node2, doctor probes the
    ports itself and checks the watchdog its environment names."""
    tutela(lab, "node2", "stop")
    try:
        wait_until(lambda: _path_state(lab, "node1", NET1) == "DEAD", timeout=15,
                   what="node2 DEAD in node1's view")
        _, cluster = doctor(lab, "node1", "--cluster")
        _, alone = doctor(lab, "node2")
        _, missing = doctor(lab, "node2", env={"TUTELA_WATCHDOG_DEVICE": "/nonexistent"})
        # A character device without a watchdog's sysfs entry counts as a Linux watchdog:
        # whole seconds, 1 s at the shortest, too coarse for the 1 s lease the lab's
        # fractional watchdogs gave the cluster.
        _, coarse = doctor(lab, "node2", env={"TUTELA_WATCHDOG_DEVICE": "/dev/null"})
    finally:
        tutela(lab, "node2", "start")
    found(cluster, "problem", "node2", "answers", "node2 is DEAD here")
    found(alone, "info", "node2", "node", "tutelad is not running")
    found(alone, "ok", "node2", "port", "198.51.100.11 accepts TCP connections on port 7365")
    found(missing, "problem", "node2", "watchdog", "no watchdog device at /nonexistent")
    lease = _effective_lease(lab)
    if lease < 1.61:  # emulated watchdogs: the lease 'auto' gave them is too short for W=1 s
        found(coarse, "problem", "node2", "watchdog", "too late for the")
    found(coarse, "warning", "node2", "watchdog", "restart tutelad on node2")


def _effective_lease(lab: Lab) -> float:
    """The cluster's lease, as doctor reports it in its watchdog finding of node1."""
    _, report = doctor(lab, "node1")
    text = found(report, "ok", "node1", "watchdog")["found"]
    return float(text.split("fits the ")[1].split("s lease")[0])


def test_a_clock_that_is_off(lab: Lab) -> None:
    tutela(lab, "node2", "stop")
    try:
        lab.spawn("node2", [sys.executable, "-c", SHIFTED_TUTELAD],
                  lab.node_dir("node2") / "tutelad.log", env=lab.environment("node2"))
        wait_until(lambda: all_alive(lab), timeout=30, what="node2 ALIVE, 30 s ahead")
        code, report = doctor(lab, "node1", "--cluster")
    finally:
        tutela(lab, "node2", "stop", check=False)
        tutela(lab, "node2", "start")
    assert code in (1, 3), report  # warnings; a loaded machine may add a slow answer
    clock = found(report, "warning", "node2", "clock", "chrony")
    # About +30 s: node2's wall clock is shifted, the round trip blurs the reading.
    offset = float(clock["found"].removeprefix("its clock is ").split("s ")[0])
    assert 29.0 < offset < 31.0, clock


def test_fencing_none_and_a_fence_command_that_is_missing(lab: Lab) -> None:
    original = tutela(lab, "node1", "export").stdout
    try:
        _apply(lab, original, fencing="none")
        _, without = doctor(lab, "node1")
        _apply(lab, original, fencing="agent", fence_command="/nonexistent/fence {node}")
        _, agent = doctor(lab, "node1", "--cluster")
    finally:
        _apply_document(lab, original)
    found(without, "warning", None, "fencing", "fencing 'none'")
    for node in lab.nodes:
        found(agent, "problem", node, "fencing", "/nonexistent/fence is not on this node")


def _apply(lab: Lab, document: str, **settings: str) -> None:
    config = yaml.safe_load(document)
    config["settings"] = {**config.get("settings", {}), **settings}
    _apply_document(lab, yaml.safe_dump(config))


def _apply_document(lab: Lab, document: str) -> None:
    lab.exec("node1", ["tutela", "apply", "-f", "-"], input=document, timeout=120)


def test_a_witness_that_does_not_answer(
        lab_and_witness: tuple[Lab, list[subprocess.Popen[str]]], lab: Lab) -> None:
    witnesses = lab_and_witness[1]
    stop_process(witnesses[-1])
    try:
        wait_until(lambda: not witness_alive(lab), timeout=15, what="the witness DEAD")
        code, report = doctor(lab, "node1")
    finally:
        witnesses.append(start_witness(lab))
    assert code == 3
    found(report, "problem", "node1", "witness", "start it there")


def test_a_program_a_kit_needs_is_missing_on_a_peer(lab: Lab) -> None:
    with bound(lab, "node2", "/dev/null", "/usr/sbin/dumpe2fs"):
        code, report = doctor(lab, "node1", "--cluster")
    assert code == 3
    found(report, "problem", "node2", "tools", "dumpe2fs is not installed")


def test_a_shared_disk_that_is_another_disk_or_none_on_a_peer(lab: Lab) -> None:
    with bound(lab, "node2", lab.disks[1], lab.disks[0]):
        _, other = doctor(lab, "node1", "--cluster")
    with bound(lab, "node2", "/dev/null", lab.disks[0]):
        _, none = doctor(lab, "node1", "--cluster")
    found(other, "problem", None, "disks", "is not the same disk on every node")
    found(none, "problem", "node2", "disks", "not a block device here")


def test_a_shared_ext4_disk_without_multi_mount_protection(lab: Lab) -> None:
    subprocess.run(["tune2fs", "-O", "^mmp", lab.disks[0]], check=True, capture_output=True)
    try:
        code, report = doctor(lab, "node1")
    finally:
        subprocess.run(["tune2fs", "-O", "mmp", lab.disks[0]], check=True, capture_output=True)
    assert code == 1
    found(report, "warning", None, "mmp", f"tune2fs -O mmp {lab.disks[0]}")


def test_before_joining_the_ports_and_networks_of_the_join(lab: Lab, tmp_path: Path) -> None:
    fresh = str(tmp_path / "fresh")
    _, good = doctor(lab, "node1", "--state-dir", fresh, "--peer", "198.51.100.12",
                     "--peer", "203.0.113.12")
    _, bad = doctor(lab, "node1", "--state-dir", fresh, "--peer", lab.client_address())
    found(good, "info", "node1", "node", "not initialised yet")
    found(good, "ok", "node1", "port", "198.51.100.12 accepts TCP connections on port 7365")
    found(good, "ok", "node1", "paths", "2 networks")
    found(bad, "problem", "node1", "port", "connection refused")
    found(bad, "warning", "node1", "paths", "one network shared")


def test_little_free_space_for_the_state_directory(lab: Lab, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    lab.exec("node1", ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)])
    try:
        code, report = doctor(lab, "node1", "--state-dir", str(small / "state"))
    finally:
        lab.exec("node1", ["umount", str(small)])
    assert code == 3
    found(report, "problem", "node1", "space", "free of 8.0 MiB")
