"""Client side of the control protocol: send one request to the local tutelad, get its answer.

Failures come back as DaemonError with the daemon's kind, message and field problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tutela import control
from tutela.daemon.protocol import socket_path


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
    try:
        message = control.request(path, {"op": op, **args}, timeout)
    except control.NoAnswer:
        raise NotRunning("not-running", f"tutelad is not running (no answer on {path}); "
                         "start it with 'tutela start'") from None
    if message is None:
        raise DaemonError("internal", "tutelad closed the connection without an answer; "
                          "see 'tutela log'")
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
