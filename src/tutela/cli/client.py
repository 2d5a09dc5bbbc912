"""Client side of the control protocol: send one request to the local tutelad, get its answer.

Failures come back as DaemonError with the daemon's kind, message and field problems.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tutela.daemon.protocol import MAX_LINE, encode, socket_path


class DaemonError(Exception):
    def __init__(self, kind: str, message: str, problems: list[dict[str, str]] | None = None
                 ) -> None:
        super().__init__(message)
        self.kind = kind
        self.problems = problems or []


class NotRunning(DaemonError):
    pass


def call(state_dir: Path, op: str, timeout: float = 30.0, **args: Any) -> Any:
    path = socket_path(state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning("not-running", f"tutelad is not running (no answer on {path}); "
                             "start it with 'tutela start'") from None
        sock.sendall(encode({"op": op, **args}))
        reply = _read_line(sock)
    if not reply:
        raise DaemonError("internal", "tutelad closed the connection without an answer; "
                          "see 'tutela log'")
    message = json.loads(reply)
    if message["ok"]:
        return message["result"]
    error = message["error"]
    raise DaemonError(error["kind"], error["message"], error.get("problems"))


def is_running(state_dir: Path) -> bool:
    try:
        call(state_dir, "ping", timeout=2.0)
    except (DaemonError, OSError):
        return False
    return True


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_LINE:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)
