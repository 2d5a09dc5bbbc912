"""Where a node keeps its state: the LCD, the control socket, logs, resource files.

Kept apart from the store so the CLI can find the state directory without loading the kits.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/tutela"


def state_dir_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: the explicit one, else $TUTELA_STATE_DIR, else /var/lib/tutela."""
    return Path(explicit or os.environ.get("TUTELA_STATE_DIR") or DEFAULT_STATE_DIR)
