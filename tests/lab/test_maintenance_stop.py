"""A maintenance stop (`tutela stop --leave-resources`, LifeKeeper's `lkstop -f`) on the
owner of a hierarchy that has no address (a filesystem and a process): no ip kit's
duplicate-address check stands in the way of a takeover, so only the maintenance record
keeps the survivor from mounting the disk while the stopped node still has it. Two lab
nodes and a witness, under the split-brain checker throughout (docs/failover.md,
"Maintenance stop")."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import app_pid, app_pid_now
from tutela.lab.driver import all_alive, form_cluster_with_witness, status, tutela, witness_lab

pytestmark = pytest.mark.lab

UNUSED_ADDRESS = "203.0.113.77"
"""The checker watches an address as well as the mount: this hierarchy has none, so no node
ever holds this one; the mount is what it proves."""
CONFIRM = "tutela switchover app --to node2"
"""The command the survivor's status and log name to confirm a takeover."""
OBSERVED = 15.0
"""Seconds node2 is watched after it saw node1 go: node1's leases (at most 2.2 s, with
whole-second watchdogs) have long lapsed, and without the maintenance record node2, the
only other candidate, takes app over within about max(detection 1.2 s, lease) + its
restore; the same run with --force, which tells nobody, mounted the disk on node2 within
a few seconds (see the report of the change that added this test)."""


@dataclass(frozen=True)
class Disk:
    device: str
    mountpoint: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with witness_lab(unique_lab_name("ms"), tmp_path_factory.mktemp("ms")) as (built, _):
        yield built


@pytest.fixture(scope="module")
def disk(lab: Lab) -> Iterator[Disk]:
    """app (process, its working directory on the disk) -> data (ext4 on the shared disk),
    in service on node1, extended to node2; no ip resource."""
    form_cluster_with_witness(lab, "ms")
    made = Disk(lab.disks[0], lab.root / "mnt" / "data")
    subprocess.run(["mkfs.ext4", "-q", "-F", made.device], check=True, timeout=120)
    # fsck=false: the lab's nodes share one kernel, so e2fsck on node2 would see node1's
    # mount and refuse ("in use"), which separate servers would not; without it a takeover
    # here mounts the disk a second time, as it would on real machines.
    tutela(lab, "node1", "resource", "create", "filesystem", "data", "-p",
           f"device={made.device}", "-p", f"mountpoint={made.mountpoint}", "-p", "fstype=ext4",
           "-p", "fsck=false")
    tutela(lab, "node1", "resource", "create", "process", "app", "-p",
           f"command=cd {made.mountpoint} && exec sleep 1000000", "--depends-on", "data",
           "--check-interval", "0.5")
    tutela(lab, "node1", "restore", "app")
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    wait_until(lambda: _protected(lab, "node1"), timeout=30, what="app under its lease on node1")
    with SplitBrainChecker(lab, UNUSED_ADDRESS, str(made.mountpoint)) as checker:
        yield made
    assert checker.violations == [], checker.violations


def test_stopped_owner_keeps_it_and_nobody_takes_it_over(lab: Lab, disk: Disk) -> None:
    pid = app_pid(lab, "node1")
    stopped = tutela(lab, "node1", "stop", "--leave-resources")
    assert "in maintenance: app" in stopped.stdout, stopped.stdout
    gone = tutela(lab, "node1", "status", check=False)  # tutelad is gone; the LCD says why
    assert gone.returncode != 0
    assert "this node is in maintenance since" in gone.stderr, gone.stderr
    assert "app left in service here, unprotected" in gone.stderr, gone.stderr

    wait_until(lambda: _maintenance_seen(lab, "node2"), timeout=30,
               what="node2 to see node1 gone and in maintenance")
    _never_moves(lab, disk, pid, OBSERVED)

    node2 = status(lab, "node2")
    there = {r["tag"]: r["elsewhere"]["node1"]["state"] for r in _hierarchy(node2)["resources"]}
    assert there == {"app": "ISU", "data": "ISU"}  # its last heartbeat: unprotected
    [stuck] = _hierarchy(node2)["ownership"]["stuck"]
    assert stuck["reason"] == "maintenance" and CONFIRM in stuck["message"], stuck
    assert CONFIRM in tutela(lab, "node2", "log", "-n", "200").stdout
    human = tutela(lab, "node2", "status").stdout
    assert "node1 is in maintenance since" in human and CONFIRM in human, human


def test_start_readopts_without_restarting_anything(lab: Lab, disk: Disk) -> None:
    pid = app_pid(lab, "node1")
    tutela(lab, "node1", "start")
    wait_until(lambda: _protected(lab, "node1") and _back_for(lab, "node2"), timeout=30,
               what="node1 to re-adopt app under its lease and leave maintenance")
    assert app_pid_now(lab, "node1") == pid  # the same process: nothing was restarted
    assert _mounted(lab, "node1", disk) and not _mounted(lab, "node2", disk)
    assert "re-adopted after restart" in tutela(lab, "node1", "log", "-n", "200").stdout


def test_refused_when_the_others_cannot_be_told(lab: Lab, disk: Disk) -> None:
    """node2 stopped: one node of two cannot change the configuration, so the stop is
    refused, names the fixes, and node1 goes on protecting app; --force stops it untold
    (harmless here: the only other node is down) and says so."""
    tutela(lab, "node2", "stop")
    try:
        wait_until(lambda: _node(status(lab, "node1"), "node2")["state"] == "DEAD",
                   timeout=30, what="node1 to see node2 gone")
        generation = status(lab, "node1")["generation"]
        refused = tutela(lab, "node1", "stop", "--leave-resources", check=False)
        assert refused.returncode != 0
        for words in ("no quorum", "Bring the other nodes back", "--force",
                      "without --leave-resources"):
            assert words in refused.stderr, refused.stderr
        after = status(lab, "node1")  # still running, nothing changed
        assert after["generation"] == generation
        assert _node(after, "node1")["maintenance"] is None
        assert _protected(lab, "node1")
        pid = app_pid(lab, "node1")
        forced = tutela(lab, "node1", "stop", "--leave-resources", "--force")
        assert "the other nodes were not told (--force): app run here" in forced.stderr
        tutela(lab, "node1", "start", "--no-wait")  # node2 is down: nobody to hear yet
        wait_until(lambda: _protected(lab, "node1"), timeout=30, what="app protected again")
        assert app_pid_now(lab, "node1") == pid
    finally:
        tutela(lab, "node2", "start")
    wait_until(lambda: all_alive(lab), timeout=30, what="node2 back")


def test_dead_in_maintenance_is_taken_over_only_when_confirmed(lab: Lab, disk: Disk) -> None:
    """node1 stopped for maintenance, then powered off: node2 cannot tell that from a
    stopped daemon, so it waits for the administrator's switchover."""
    tutela(lab, "node1", "stop", "--leave-resources")
    wait_until(lambda: _maintenance_seen(lab, "node2"), timeout=30,
               what="node2 to see node1 in maintenance")
    lab.power_off("node1")
    assert not _mounted(lab, "node2", disk)
    tutela(lab, "node2", "switchover", "app", "--to", "node2")
    assert _mounted(lab, "node2", disk)
    assert _node(status(lab, "node2"), "node1")["maintenance"] is None  # app was all
    wait_until(lambda: not _hierarchy(status(lab, "node2"))["ownership"], timeout=10,
               what="node2 to report nothing stuck any more")
    lab.power_on("node1")
    wait_until(lambda: all_alive(lab), timeout=60, what="node1 back")
    assert _mounted(lab, "node2", disk) and not _mounted(lab, "node1", disk)


def _never_moves(lab: Lab, disk: Disk, pid: int, window: float) -> None:
    """For `window` seconds of observation (what is watched must not happen, so this is
    no wait for a condition): node1 keeps the disk and the process, node2 never has app in
    service (the checker samples the mounts all along), never arms its watchdog (it would
    right after winning the lease) and never starts a restore."""
    armed = _armed(lab, "node2")
    end = time.monotonic() + window
    while time.monotonic() < end:
        assert _mounted(lab, "node1", disk) and not _mounted(lab, "node2", disk)
        assert app_pid_now(lab, "node1") == pid
        states = {r["tag"]: r["state"] for r in _hierarchy(status(lab, "node2"))["resources"]}
        assert states == {"app": "OSU", "data": "OSU"}, states
        assert _armed(lab, "node2") == armed, "node2 won app's lease"
    assert "restore app" not in tutela(lab, "node2", "log", "-n", "500").stdout


def _armed(lab: Lab, node: str) -> int:
    """How often `node` has armed its watchdog (the lab's hardware counts it)."""
    return [e.event for e in lab.watchdog_events(node)].count("armed")


def _protected(lab: Lab, node: str) -> bool:
    """`node` has app and data in service, protected, its watchdog armed (it holds the
    lease), and no maintenance record of its own."""
    view = status(lab, node)
    states = {r["tag"]: r["state"] for r in _hierarchy(view)["resources"]}
    return (states == {"app": "ISP", "data": "ISP"} and view["fencing"]["watchdog"]["armed"]
            and _node(view, node)["maintenance"] is None)


def _back_for(lab: Lab, node: str) -> bool:
    """`node` sees node1 alive and no longer in maintenance."""
    node1 = _node(status(lab, node), "node1")
    return bool(node1["state"] == "ALIVE" and node1["maintenance"] is None)


def _maintenance_seen(lab: Lab, node: str) -> bool:
    """`node` sees node1 DEAD and in maintenance, and says why it leaves app alone."""
    view = status(lab, node)
    node1 = _node(view, "node1")
    stuck = (_hierarchy(view)["ownership"] or {}).get("stuck", [])
    return (node1["state"] == "DEAD" and node1["maintenance"] is not None
            and node1["maintenance"]["hierarchies"] == ["app"]
            and [s["reason"] for s in stuck] == ["maintenance"])


def _mounted(lab: Lab, node: str, disk: Disk) -> bool:
    return any(point == str(disk.mountpoint) for _, point in lab.mounts(node))


def _node(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in view["nodes"] if n["name"] == name)


def _hierarchy(view: dict[str, Any]) -> dict[str, Any]:
    return next(h for h in view["hierarchies"] if h["root"] == "app")
