"""Requests without an answer: the CLI says what it can establish, not just that the
connection closed or that time ran out.

A tutelad killed before it read a change (stopped, then killed: nothing can have
committed), one killed by a resource's restore script right after a change committed, and
a restore that takes longer than the command's --timeout.
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

from helpers import wait_until
from tutela.daemon.protocol import socket_path

BIN = Path(sys.executable).parent
EXIT_FAILED, EXIT_UNKNOWN = 1, 5  # docs/cli.md


def tutela(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args],
                          check=False, capture_output=True, text=True, timeout=60)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A running node: (state dir, tutelad's pid). Stopped at the end, also a tutelad the
    test started again."""
    state = tmp_path / "state"
    assert tutela(state, "init", "--cluster", "dies", "--node", "n1").returncode == 0
    assert tutela(state, "start").returncode == 0
    pid = int(json.loads(tutela(state, "status", "--json").stdout)["daemon_pid"])
    try:
        yield state, pid
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGCONT)
        tutela(state, "stop", "--leave-resources")  # whichever tutelad runs there now


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def _generation(state: Path) -> int:
    return int(json.loads(tutela(state, "status", "--json").stdout)["generation"])


def _waiting_connections(state: Path) -> int:
    """Connections the kernel queued on tutelad's listening socket (Recv-Q of `ss -xl`)."""
    listing = subprocess.run(["ss", "-xlH", "src", str(socket_path(state))],
                             capture_output=True, text=True, check=True).stdout.split()
    return int(listing[2]) if listing else 0


def test_killed_before_it_read_the_request_says_nothing_committed(
        node: tuple[Path, int], tmp_path: Path) -> None:
    state, pid = node
    document = tmp_path / "new.yaml"
    document.write_text(tutela(state, "export").stdout.replace(
        "resources: []", "resources:\n- {tag: web, kit: process, params: {command: sleep 9}}"))
    before = _generation(state)
    os.kill(pid, signal.SIGSTOP)  # the kernel still queues connections; nobody reads them
    apply = subprocess.Popen([str(BIN / "tutela"), "--state-dir", str(state), "apply", "-f",
                              str(document)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_until(lambda: _waiting_connections(state) == 1, timeout=30,
                   what="the apply to be queued on tutelad's socket")
        os.kill(pid, signal.SIGKILL)
        _, stderr = apply.communicate(timeout=60)
    finally:
        if apply.poll() is None:
            apply.kill()
            apply.communicate()
    assert apply.returncode == EXIT_FAILED, stderr
    assert "tutelad closed the connection before it answered (it stopped or died); the " \
        f"change did not commit: the configuration is still generation {before} and " \
        "nothing changed" in stderr
    assert "tutela start" in stderr
    assert tutela(state, "start").returncode == 0
    assert _generation(state) == before


def test_killed_after_the_commit_says_it_committed(node: tuple[Path, int],
                                                   tmp_path: Path) -> None:
    state, pid = node
    killer = tmp_path / "kill-tutelad.sh"
    killer.write_text(f"#!/bin/sh\nkill -9 {pid}\n")  # a restore that takes tutelad down
    killer.chmod(0o755)
    before = _generation(state)

    result = tutela(state, "resource", "create", "generic", "deadly", "-p",
                    f"restore={killer}", "-p", "remove=/bin/true", "--restore")

    assert not _alive(pid)
    assert result.returncode == EXIT_UNKNOWN, result.stderr
    assert f"the change did commit: the configuration is generation {before + 1} on this " \
        f"node (it was {before} before), but whether deadly went into service is not " \
        "known" in result.stderr
    assert "closed the connection without an answer" not in result.stderr


def test_a_restore_past_its_deadline_says_where_the_hierarchy_runs(
        node: tuple[Path, int], tmp_path: Path) -> None:
    state, _ = node
    slow = tmp_path / "slow-restore.sh"
    slow.write_text("#!/bin/sh\nsleep 6\n")
    slow.chmod(0o755)
    assert tutela(state, "resource", "create", "generic", "slow", "-p", f"restore={slow}",
                  "-p", "remove=/bin/true").returncode == 0

    result = tutela(state, "restore", "slow", "--timeout", "1")

    assert result.returncode == EXIT_UNKNOWN, result.stderr
    assert "tutelad did not answer within 1s (see --timeout); slow's hierarchy runs " \
        "nowhere now (see 'tutela status')" in result.stderr
    wait_until(lambda: json.loads(tutela(state, "status", "--json").stdout)[
        "hierarchies"][0]["state"] == "ISP", timeout=30, what="the restore to finish")
