"""`tutela status --watch` against a real tutelad: under a pseudo-terminal it redraws the
view in place (rich's Live), into a pipe each view starts with "home, clear screen"; Ctrl-C
(SIGINT) ends it with exit status 0."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from test_cli import BIN, node, tutela  # noqa: F401 - node: a fixture, used below

DEADLINE = 30.0


def read_until(fd: int, done: Callable[[bytes], bool], what: str) -> bytes:
    """Everything read from `fd` until `done(everything)` holds; fails after DEADLINE."""
    seen = b""
    deadline = time.monotonic() + DEADLINE
    while not done(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {what} within {DEADLINE}s; got {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"the output ended before {what}: {seen[-2000:]!r}"
            seen += chunk
    return seen


def watch(state: Path, stdout: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(BIN / "tutela"), "--state-dir", str(state), "status",
                             "--watch", "--interval", "0.3"], stdout=stdout,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def interrupt(process: subprocess.Popen[bytes], output: int) -> int:
    """Ctrl-C, then its exit status. Its output (`output`, and stderr) is read on until it
    ends: a command blocked on a full pipe or terminal could not finish exiting (Python
    flushes stdout at exit): the suspected cause of three such tests hanging in one CI run."""
    assert process.stderr is not None
    process.send_signal(signal.SIGINT)
    errors, streams = b"", [output, process.stderr.fileno()]
    deadline = time.monotonic() + DEADLINE
    while streams:
        left = deadline - time.monotonic()
        assert left > 0, f"still running {DEADLINE}s after Ctrl-C: {errors[-2000:]!r}"
        for fd in select.select(streams, [], [], left)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: a pseudo-terminal whose other side is closed
                chunk = b""
            if not chunk:
                streams.remove(fd)
            elif fd != output:
                errors += chunk
    assert b"Traceback" not in errors, errors.decode(errors="replace")
    return process.wait(timeout=max(deadline - time.monotonic(), 1.0))


def test_watch_redraws_in_place_on_a_terminal_and_ends_on_ctrl_c(node: Path) -> None:  # noqa: F811
    tutela(node, "resource", "create", "process", "web", "-p", "command=sleep 100")
    controller, terminal = pty.openpty()
    try:
        process = watch(node, terminal)
        os.close(terminal)
        # Live moves the cursor back up over the last view before it draws the next one.
        seen = read_until(controller, lambda out: out.count(b"clitest") >= 3
                          and b"\x1b[1A" in out.split(b"clitest", 1)[1],
                          "three views drawn over each other")
        assert b"web" in seen and b"OSU" in seen
        assert interrupt(process, controller) == 0
    finally:
        os.close(controller)


def test_watch_into_a_pipe_clears_before_each_view(node: Path) -> None:  # noqa: F811
    reader, writer = os.pipe()
    try:
        process = watch(node, writer)
        os.close(writer)
        seen = read_until(reader, lambda out: out.count(b"\x1b[H\x1b[2J") >= 2
                          and out.endswith(b"\n"), "two views")
        first = seen.split(b"\x1b[H\x1b[2J")[1]
        assert first.startswith(b"every 0.3s, Ctrl-C ends") and b"cluster clitest" in first
        assert b"\x1b[1m" not in first  # no colours into a pipe
        assert interrupt(process, reader) == 0
    finally:
        os.close(reader)


def test_watch_goes_with_a_person_not_json(node: Path) -> None:  # noqa: F811
    result = tutela(node, "status", "--watch", "--json", check=False)
    assert result.returncode == 2 and "--watch draws for a person" in json.loads(
        result.stdout)["error"]["message"]
