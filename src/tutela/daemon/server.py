"""The control socket: reads one JSON request per connection and answers with one line.

Errors become structured answers (kind, message, problems); they never stop the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from tutela.daemon.protocol import MAX_LINE, encode, failure, ok
from tutela.daemon.service import Service
from tutela.engine.node import OperationError
from tutela.lcd.store import StaleGeneration
from tutela.model.errors import ConfigError

log = logging.getLogger("tutela.daemon")


async def serve(service: Service, path: Path) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            writer.write(encode(await answer(service, line)))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    old_mask = os.umask(0o077)  # only root may talk to the daemon
    try:
        return await asyncio.start_unix_server(handle, path=str(path), limit=MAX_LINE)
    finally:
        os.umask(old_mask)


async def answer(service: Service, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        operation = request.pop("op")
        handler = service.handlers[operation]
    except (ValueError, KeyError, TypeError, AttributeError):
        return failure("request", "malformed request or unknown operation")
    try:
        return ok(await handler(request))
    except ConfigError as error:
        return failure("config", str(error), error.to_json())
    except (OperationError, StaleGeneration) as error:
        return failure("operation", str(error))
    except Exception as error:  # report, log, and keep serving
        log.exception("%s failed", operation)
        return failure("internal", f"{operation} failed: {error!r}; see 'tutela log'")
