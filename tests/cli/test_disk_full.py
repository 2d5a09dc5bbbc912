"""A full disk under the state directory, for real: a small tmpfs this test mounts (and
unmounts), filled to the last byte while tutelad runs on it.

A configuration change then fails with a sentence naming the directory, the space left
and what to free (exit 1), one log line in the daemon, no traceback; the LCD keeps the
old generation whole, and once there is space again the same change goes through.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_until

BIN = Path(sys.executable).parent
SIZE = "8m"
"""The tmpfs: room for a new LCD and its write-ahead log, small enough to fill at once."""


def tutela(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args],
                          check=False, capture_output=True, text=True, timeout=60)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tutela-test",
                    str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.fixture
def daemon(small_disk: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """tutelad on the small disk, logging as under systemd to its standard error (the
    journal), here a file on the big disk, so that what it logs while the small one is full
    can be read. (state dir, that file)"""
    state = small_disk / "state"
    assert tutela(state, "init", "--cluster", "full", "--node", "n1").returncode == 0
    stderr = tmp_path / "tutelad.err"
    with open(stderr, "w") as err:
        journal = os.fstat(err.fileno())
        process = subprocess.Popen(
            [str(BIN / "tutelad"), "--state-dir", str(state)], stdin=subprocess.DEVNULL,
            stdout=err, stderr=err,
            env={**os.environ, "JOURNAL_STREAM": f"{journal.st_dev}:{journal.st_ino}"})
    try:
        wait_until(lambda: tutela(state, "status").returncode == 0, timeout=30,
                   what="tutelad to answer")
        yield state, stderr
    finally:
        process.terminate()
        process.wait(timeout=30)


def generation(state: Path) -> int:
    return int(json.loads(tutela(state, "status", "--json").stdout)["generation"])


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left; the file."""
    ballast = directory / "ballast"
    with open(ballast, "wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    return ballast


def test_a_full_disk_is_a_plain_sentence_and_the_old_generation_stays(
        daemon: tuple[Path, Path], small_disk: Path) -> None:
    state, stderr = daemon
    before = generation(state)
    ballast = fill(small_disk)
    create = ("resource", "create", "process", "web", "-p", "command=sleep 100")

    failed = tutela(state, *create)

    assert failed.returncode == 1, failed.stderr
    assert f"the filesystem holding {state} is full (0 bytes free of 8.0 MiB)" in \
        failed.stderr
    assert f"free space on {small_disk}" in failed.stderr
    assert f"nothing was changed (the configuration is still generation {before})" in \
        failed.stderr
    assert "OperationalError" not in failed.stderr
    # The daemon logs through a queue: the line may come just after the answer.
    wait_until(lambda: "resource.create failed" in stderr.read_text(), timeout=10,
               what="tutelad to log the failure")
    lines = [line for line in stderr.read_text().splitlines() if "resource.create" in line]
    assert len(lines) == 1 and lines[0].startswith(
        f"<3>ERROR tutela.daemon: resource.create failed: the filesystem holding {state} "
        "is full"), lines
    assert "OperationalError" not in stderr.read_text()  # no traceback of the database error
    assert generation(state) == before
    assert "web" not in tutela(state, "export").stdout

    ballast.unlink()
    done = tutela(state, *create)
    assert done.returncode == 0, done.stderr
    assert generation(state) == before + 1


def test_init_on_a_full_disk_says_so_and_leaves_nothing_half_made(small_disk: Path) -> None:
    state = small_disk / "state"
    ballast = fill(small_disk)

    failed = tutela(state, "init", "--cluster", "full", "--node", "n1")

    assert failed.returncode == 1, failed.stderr
    assert f"the filesystem holding {state} is full" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    ballast.unlink()
    assert tutela(state, "init", "--cluster", "full", "--node", "n1").returncode == 0
