"""The control socket: reads one JSON request per connection and answers with one line.

Errors become structured answers (kind, message, problems); they never stop the daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from tutela import control
from tutela.control import failure, ok
from tutela.daemon.service import Service, SwitchoverFailed
from tutela.engine.node import OperationError
from tutela.lcd.store import StaleGeneration
from tutela.model.errors import ConfigError
from tutela.system_errors import explain

log = logging.getLogger("tutela.daemon")


async def serve(service: Service, path: Path) -> asyncio.Server:
    return await control.serve(path, lambda line: answer(service, line))


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
    except SwitchoverFailed as error:
        return failure("switchover", str(error))
    except (OperationError, StaleGeneration) as error:
        return failure("operation", str(error))
    except (OSError, sqlite3.Error) as error:
        sentence = explain(error, service.lcd.state_dir)
        if sentence is None:
            log.exception("%s failed", operation)
            return failure("internal", f"{operation} failed: {error!r}; see 'tutela log'")
        log.error("%s failed: %s", operation, sentence)  # the machine's, not a bug: no trace
        return failure("system", f"{operation} failed: {sentence}")
    except Exception as error:  # report, log, and keep serving
        log.exception("%s failed", operation)
        return failure("internal", f"{operation} failed: {error!r}; see 'tutela log'")
