"""Where tutelad's control socket and log live in a node's state directory.

The protocol itself (one JSON line each way) is tutela.control, shared with the witness.
"""

from __future__ import annotations

from pathlib import Path

SOCKET_NAME = "tutelad.sock"
LOG_NAME = "tutelad.log"


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME
