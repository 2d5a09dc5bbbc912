"""The witness's local control socket: one JSON request line in, one JSON answer line out.

Both ends: `serve` in the running witness, `call` in the `tutela-witness` commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from tutela import control as shared

SOCKET_NAME: Final = "witness.sock"
LOG_NAME: Final = "witness.log"
Handler = Callable[[dict[str, Any]], Awaitable[Any]]
log = logging.getLogger("tutela.witness")


class ControlError(Exception):
    """The witness refused or failed a request; `kind` is 'request', 'refused' or 'internal'."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class NotRunning(ControlError):
    pass


class Refused(Exception):
    """Raised by a handler: the request is understood but cannot be done (message says why)."""


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def call(state_dir: Path, op: str, timeout: float = 10.0, **args: Any) -> Any:
    """Send one request to the witness running on `state_dir`; its result or ControlError."""
    path = socket_path(state_dir)
    try:
        answer = shared.request(path, {"op": op, **args}, timeout)
    except shared.NoAnswer:
        raise NotRunning("not-running", f"no witness runs on {state_dir} (nothing answers on "
                         f"{path}); start it with 'tutela-witness run' or pass its "
                         "--state-dir") from None
    if answer is None:
        raise ControlError("internal", f"the witness closed the connection without an answer; "
                           f"see {state_dir / LOG_NAME}")
    if answer["ok"]:
        return answer["result"]
    raise ControlError(answer["error"]["kind"], answer["error"]["message"])


async def serve(handlers: dict[str, Handler], path: Path) -> asyncio.Server:
    """Answer requests on the Unix socket `path` (mode 0600: only root may control it)."""
    return await shared.serve(path, lambda line: _answer(handlers, line))


async def _answer(handlers: dict[str, Handler], line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        op = request.pop("op")
        handler = handlers[op]
    except (ValueError, KeyError, TypeError, AttributeError):
        return shared.failure("request", "malformed request or unknown operation")
    try:
        return shared.ok(await handler(request))
    except Refused as error:
        return shared.failure("refused", str(error))
    except Exception as error:  # report, log, and keep serving
        log.exception("control request %s failed", op)
        return shared.failure("internal", f"{op} failed: {error!r}; see the witness log")


AlreadyRunning = shared.AlreadyRunning


def claim_socket(path: Path) -> None:
    """Refuse to run twice on one state directory; remove a socket left by a witness that died."""
    shared.claim_socket(path, "a witness")
