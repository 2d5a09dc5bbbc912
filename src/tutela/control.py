"""The local control socket of tutelad and tutela-witness: one JSON line each way.

A Unix socket (mode 0600) in the daemon's state directory; the CLIs are its clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

MAX_LINE = 16 * 1024 * 1024
Answer = Callable[[bytes], Awaitable[dict[str, Any]]]
"""Turns one request line into the answer; never raises."""


class NoAnswer(Exception):
    """Nothing listens on the socket: the daemon is not running."""


class NoAnswerInTime(TimeoutError):
    """The daemon took the request but did not answer within the deadline; the request
    may still take effect."""


class AlreadyRunning(Exception):
    pass


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def ok(result: Any = None) -> dict[str, Any]:
    return {"ok": True, "result": result}


def failure(kind: str, message: str, problems: list[dict[str, str]] | None = None
            ) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message, "problems": problems or []}}


def request(path: Path, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send one request and return the decoded answer, within `timeout` seconds in all;
    None if the daemon hung up before it answered (it died, or stopped).

    NoAnswer: nothing listens, nothing was sent. NoAnswerInTime: sent, but no answer."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NoAnswer(str(path)) from None
        try:
            sock.sendall(encode(message))
            # The whole answer within the deadline, not each read within it.
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            with sock.makefile("rb") as stream:
                line = stream.readline(MAX_LINE)
        except TimeoutError:
            raise NoAnswerInTime(f"no answer on {path} within {timeout:g}s") from None
        except ConnectionError:
            return None
    # Without its newline the daemon died in the middle of its answer.
    return json.loads(line) if line.endswith(b"\n") else None


async def serve(path: Path, answer: Answer) -> asyncio.Server:
    """Answer each connection's request line on `path`; only root may connect."""
    import asyncio  # here, not at the top: the CLI imports this module and never serves

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            writer.write(encode(await answer(line)))
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


def claim_socket(path: Path, what: str) -> None:
    """Refuse to run twice on one state directory; remove a socket left by one that died."""
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise AlreadyRunning(f"{what} runs on this state directory already ({path} answers); "
                         "stop it first, or give this one another --state-dir")
