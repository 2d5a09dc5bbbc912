"""Whether this user may use a state directory: the one check `tutela` and `tutela-witness`
make before touching it, so a user without root gets one plain sentence, not a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


def unusable_state_dir(directory: Path) -> str | None:
    """Why this user cannot use `directory` (or create it), or None if it can; root can."""
    if os.geteuid() == 0:
        return None
    existing = directory
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent  # created by the first command that writes there
    needed = os.R_OK | os.W_OK | os.X_OK if existing == directory else os.W_OK | os.X_OK
    if os.access(existing, needed):
        return None
    return (f"this user cannot write to {directory}" if existing == directory
            else f"this user cannot create {directory} (in {existing})")
