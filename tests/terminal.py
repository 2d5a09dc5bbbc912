"""Run a command with a real pseudo-terminal (the pty module) as its stdin, stdout and
stderr, as a person at a terminal runs it: what it draws only for a terminal shows."""

from __future__ import annotations

import os
import pty
import re
import select
import time
from collections.abc import Mapping, Sequence

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""Terminal control sequences (colours, cursor moves), to read the text without them."""


def on_terminal(argv: Sequence[str], env: Mapping[str, str] | None = None, stdin: str = "",
                timeout: float = 120.0) -> tuple[int, str]:
    """Exit status of `argv` and all it wrote to the terminal (control sequences kept),
    read until it exits or `timeout`. `stdin` is typed in (end it with "\\x04" for EOF)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        os.execvpe(argv[0], list(argv), {**(env or os.environ), "COLUMNS": "120",
                                         "TERM": "xterm"})
    if stdin:
        os.write(fd, stdin.encode())
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child exited and the terminal closed
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")
