"""The witness's local control socket: one JSON request line in, one JSON answer line out.

Both ends: `serve` in the running witness, `call` in the `tutela-witness` commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

SOCKET_NAME: Final = "witness.sock"
LOG_NAME: Final = "witness.log"
MAX_LINE: Final = 4 * 1024 * 1024
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


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def call(state_dir: Path, op: str, timeout: float = 10.0, **args: Any) -> Any:
    """Send one request to the witness running on `state_dir`; its result or ControlError."""
    path = socket_path(state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning("not-running", f"no witness runs on {state_dir} (nothing answers "
                             f"on {path}); start it with 'tutela-witness run' or pass its "
                             "--state-dir") from None
        sock.sendall(encode({"op": op, **args}))
        with sock.makefile("rb") as stream:
            line = stream.readline(MAX_LINE)
    if not line:
        raise ControlError("internal", f"the witness closed the connection without an answer; "
                           f"see {state_dir / LOG_NAME}")
    answer = json.loads(line)
    if answer["ok"]:
        return answer["result"]
    raise ControlError(answer["error"]["kind"], answer["error"]["message"])


async def serve(handlers: dict[str, Handler], path: Path) -> asyncio.Server:
    """Answer requests on the Unix socket `path` (mode 0600: only root may control it)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            writer.write(encode(await _answer(handlers, line)))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent nonsense; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    old_mask = os.umask(0o077)
    try:
        return await asyncio.start_unix_server(handle, path=str(path), limit=MAX_LINE)
    finally:
        os.umask(old_mask)


async def _answer(handlers: dict[str, Handler], line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        op = request.pop("op")
        handler = handlers[op]
    except (ValueError, KeyError, TypeError, AttributeError):
        return _failure("request", "malformed request or unknown operation")
    try:
        return {"ok": True, "result": await handler(request)}
    except Refused as error:
        return _failure("refused", str(error))
    except Exception as error:  # report, log, and keep serving
        log.exception("control request %s failed", op)
        return _failure("internal", f"{op} failed: {error!r}; see the witness log")


def _failure(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message}}


class AlreadyRunning(Exception):
    pass


def claim_socket(path: Path) -> None:
    """Refuse to run twice on one state directory; remove a socket left by a witness that died."""
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise AlreadyRunning(f"a witness runs on this state directory already ({path} answers); "
                         "stop it first, or give this one another --state-dir")
