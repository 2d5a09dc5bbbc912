"""force_remove, the kit action behind the quorum-loss action `fastkill`, on real resources.

No TERM round, no grace: the stop and kill timeouts below are far longer than pytest-timeout
allows a test, so a test finishes only if force_remove never waits for them.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kitsupport import FsEnv, NetPair, Processes, holds, run_kit, wait_until

from tutela.kits.base import ActionContext
from tutela.kits.generic import GenericKit
from tutela.kits.process import PIDFILE, ProcessKit, read_pidfile
from tutela.kits.procutil import group_members, is_alive, kill_now

MakeCtx = Callable[..., ActionContext[Any]]
MakeFsEnv = Callable[[str], FsEnv]
LOG = logging.getLogger("tests.kits.force_remove")
NEVER = {"kill_timeout": 600, "kill_retries": 20}  # a TERM round would outlast the test


def test_kill_now_sends_kill_without_term(procs: Processes,
                                          caplog: pytest.LogCaptureFixture) -> None:
    stubborn = procs.start(["sh", "-c", 'trap "" TERM; exec sleep 1000'])
    polite = procs.start(["sleep", "1000"])
    targets = [stubborn.pid, polite.pid]
    with caplog.at_level(logging.INFO):
        left = kill_now(lambda: [p for p in targets if is_alive(p)], timeout=30, log=LOG,
                        what="test processes")
    assert left == []
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert polite.wait(timeout=10) == -signal.SIGKILL  # TERM would have ended it as -15
    assert "sending KILL" in caplog.text and "sending TERM" not in caplog.text


def test_process_group_ignoring_term_is_killed_at_once(
        supervise: MakeCtx, caplog: pytest.LogCaptureFixture) -> None:
    kit = ProcessKit()
    ctx = supervise({"command": 'trap "" TERM; sleep 1000 & wait', "stop_timeout": 3600})
    kit.restore(ctx)
    record = read_pidfile(ctx.state_dir)
    assert record is not None
    members = wait_until(lambda: m if len(m := group_members(record.pid)) == 2 else None,
                         timeout=5, what="shell and its sleep child")
    with caplog.at_level(logging.INFO):
        kit.force_remove(ctx)
    assert not any(is_alive(pid) for pid in members)
    assert not (ctx.state_dir / PIDFILE).exists()
    assert "sending KILL" in caplog.text and "sending TERM" not in caplog.text
    wait_until(lambda: not Path(f"/proc/{record.pid}").exists(), timeout=10,
               what="the killed leader reaped by its waiter thread")
    assert kit.quick_check(ctx).reason == "not started (no pidfile)"

    caplog.clear()
    with caplog.at_level(logging.INFO):
        kit.force_remove(ctx)  # idempotent
    assert "no pidfile; nothing to kill" in caplog.text


def test_process_never_started(supervise: MakeCtx) -> None:
    ctx = supervise({"command": "sleep 1000"})
    ProcessKit().force_remove(ctx)
    assert not ctx.state_dir.exists()


def test_filesystem_holders_killed_and_unmounted(make_fsenv: MakeFsEnv,
                                                tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    params = env.params(fsck=False, **NEVER)
    assert run_kit(env.enter, "filesystem", params, ["restore"], tmp_path)[0]["ok"]
    mp = env.mountpoint
    stubborn = env.spawn(f'trap "" TERM; echo data > {mp}/f && exec 3<{mp}/f && cd / && '
                         f"exec sleep 1000")
    polite = env.spawn(f"cd {mp} && exec sleep 1000")
    wait_until(lambda: holds(stubborn.pid, mp) and holds(polite.pid, mp), timeout=10,
               what="holders inside the mount")

    outcome = run_kit(env.enter, "filesystem", params,
                      ["force_remove", "quick_check", "force_remove"], tmp_path)
    assert [r["ok"] for r in outcome.results] == [True] * 3, outcome.results
    assert outcome[1]["healthy"] is False
    assert not env.mounted()
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert polite.wait(timeout=10) == -signal.SIGKILL  # no TERM first: it would die of -15
    assert "sending TERM" not in outcome.log and "e2fsck" not in outcome.log
    assert f"unmounted {env.device} from {mp} (forced removal)" in outcome.log
    assert f"nothing is mounted on {mp}" in outcome.log  # the second call


def test_filesystem_busy_mount_is_detached_lazily(make_fsenv: MakeFsEnv,
                                                 tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    params = env.params(fsck=False, **NEVER)
    assert run_kit(env.enter, "filesystem", params, ["restore"], tmp_path)[0]["ok"]
    sub = env.mountpoint / "sub"
    nested = env.spawn(f"mkdir {sub} && mount -t tmpfs tmpfs {sub}")
    assert nested.wait(timeout=10) == 0  # a nested mount keeps a plain umount busy

    outcome = run_kit(env.enter, "filesystem", params, ["force_remove", "quick_check"],
                      tmp_path)
    assert [r["ok"] for r in outcome.results] == [True] * 2, outcome.results
    assert outcome[1]["healthy"] is False
    assert "detaching" in outcome.log and "umount -l" in outcome.log
    mountinfo = Path(f"/proc/{env.holder_pid}/mountinfo").read_text()
    assert str(env.mountpoint) not in mountinfo  # the nested mount went with it


def test_filesystem_never_mounted(make_fsenv: MakeFsEnv, tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    outcome = run_kit(env.enter, "filesystem", env.params(), ["force_remove"], tmp_path)
    assert outcome[0]["ok"], outcome[0]
    assert f"nothing is mounted on {env.mountpoint}" in outcome.log


def test_ip_address_dropped(netpair: NetPair, tmp_path: Path) -> None:
    params = {"address": "198.51.100.52/24", "arp_count": 0}
    outcome = run_kit(netpair.exec(netpair.a), "ip", params,
                      ["force_remove", "restore", "force_remove", "quick_check",
                       "force_remove"], tmp_path)
    assert [r["ok"] for r in outcome.results] == [True] * 5, outcome.results
    assert outcome[3]["healthy"] is False
    assert "198.51.100.52/24" not in netpair.addresses(netpair.a)


def test_generic_runs_the_remove_script(make_ctx: MakeCtx, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    scripts = {}
    for name in ("restore", "remove"):
        script = tmp_path / name
        script.write_text(f'#!/bin/sh\necho "{name} $TUTELA_ACTION $*" >> {calls}\n')
        script.chmod(0o755)
        scripts[name] = str(script)
    ctx = make_ctx("generic", scripts, tag="app1")
    GenericKit().force_remove(ctx)
    assert calls.read_text().splitlines() == ["remove remove -t app1 -i id-app1"]
