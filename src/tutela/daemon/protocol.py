"""The local control protocol: one JSON request line in, one JSON response line out.

Shared by the daemon's socket server and the CLI's client; the socket lives in the state dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SOCKET_NAME = "tutelad.sock"
LOG_NAME = "tutelad.log"
MAX_LINE = 16 * 1024 * 1024


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def ok(result: Any = None) -> dict[str, Any]:
    return {"ok": True, "result": result}


def failure(kind: str, message: str, problems: list[dict[str, str]] | None = None
            ) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message, "problems": problems or []}}
