"""The shared process helpers against real processes: /proc scanning, zombies, bounded runs.

The processes are children of the test and are killed at teardown.
"""

from __future__ import annotations

import logging
import signal
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
