"""The shared process helpers against real processes: /proc scanning, zombies, bounded runs.

The processes are children of the test and are killed at teardown.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest
from kitsupport import Processes, wait_until

from tutela.kits.base import KitError
from tutela.kits.procutil import (
    is_alive,
    pids_using,
    run,
    start_time,
    stop_processes,
)

LOG = logging.getLogger("tests.kits.procutil")


def test_pids_using_finds_cwd_open_file_and_ignores_others(tmp_path: Path,
                                                            procs: Processes) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "f").write_text("x")
    by_cwd = procs.start(["sleep", "1000"], cwd=inside)
    by_fd = procs.start(["sh", "-c", f"exec 3<{inside}/f; exec sleep 1000"], cwd="/")
    outside = procs.start(["sleep", "1000"], cwd=tmp_path)
    found = wait_until(lambda: p if by_fd.pid in (p := pids_using(inside)) else None,
                       timeout=5, what="fd holder seen")
    assert by_cwd.pid in found and outside.pid not in found
    assert pids_using(tmp_path / "in") == []  # a prefix is not a parent directory


def test_zombie_counts_as_dead_and_start_time_detects_reuse(procs: Processes) -> None:
    child = procs.start(["sleep", "1000"])
    started = wait_until(lambda: start_time(child.pid), timeout=5, what="start time")
    assert is_alive(child.pid, started) and not is_alive(child.pid, started + 1)
    child.send_signal(signal.SIGKILL)
    wait_until(lambda: not is_alive(child.pid), timeout=5, what="zombie seen as dead")
    assert Path(f"/proc/{child.pid}").exists(), "still a zombie: nobody reaped it yet"


def test_stop_processes_escalates_to_kill(procs: Processes) -> None:
    stubborn = procs.start(["sh", "-c", 'trap "" TERM; exec sleep 1000'])
    polite = procs.start(["sleep", "1000"])
    wait_until(lambda: _ignores_term(stubborn.pid), timeout=5, what="TERM ignored")
    targets = [stubborn.pid, polite.pid]
    left = stop_processes(lambda: [p for p in targets if is_alive(p)], timeout=0.2,
                          retries=2, log=LOG, what="test processes")
    assert left == []
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert polite.wait(timeout=5) == -signal.SIGTERM


def _ignores_term(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(next(line for line in status.splitlines()
                       if line.startswith("SigIgn:")).split()[1], 16)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    return bool(ignored & (1 << (signal.SIGTERM - 1))) and cmdline.startswith(b"sleep")


def test_run_collects_output_and_bounds_time() -> None:
    done = run(["sh", "-c", "echo out; echo err >&2; exit 4"], timeout=5, log=LOG)
    assert (done.returncode, done.stdout, done.stderr) == (4, "out\n", "err\n")
    with pytest.raises(KitError, match=r"did not finish within 0\.3s"):
        run(["sleep", "1000"], timeout=0.3, log=LOG, what="sleeper")
    with pytest.raises(KitError, match="cannot run"):
        run(["/nonexistent/tool"], timeout=1, log=LOG)


def test_run_returns_when_the_command_exits_though_a_daemon_it_left_holds_its_pipes(
        caplog: pytest.LogCaptureFixture) -> None:
    """Like an OCF agent that starts a server: the server inherits stdout and stderr.

    The call used to wait a second per pipe for end of file that the server held back.
    """
    script = ("head -c 200000 /dev/zero | tr '\\0' x; echo; echo started; "
              "sleep 1000 & echo $!; echo 'to stderr' >&2; exit 3")
    began = time.monotonic()
    with caplog.at_level(logging.INFO, logger=LOG.name):
        done = run(["sh", "-c", script], timeout=10, log=LOG, log_output=True, what="agent")
    took = time.monotonic() - began
    lines = done.stdout.splitlines()
    daemon = int(lines[-1])
    try:
        assert took < 1.0, f"run waited {took:.2f}s after the command exited"
        assert is_alive(daemon), "the daemon should still hold the pipes"
        assert (done.returncode, lines[0], lines[1:-1]) == (3, "x" * 200000, ["started"])
        assert done.stderr == "to stderr\n"
        assert "agent: started" in caplog.messages
        assert "agent (stderr): to stderr" in caplog.messages
    finally:
        os.kill(daemon, signal.SIGKILL)
        wait_until(lambda: not is_alive(daemon), timeout=5, what="the daemon gone")
