"""Changes of the cluster's API tokens, each atomic against the configuration version.

A token is taken out of `api_tokens` by writing the list without it: a configuration key
cannot delete one entry. Written from a list read earlier, that write would undo a token
created or revoked between the read and the write (a revoked token valid again). So the
write names the version it was computed from, and tutelad makes it only on that version
(`config.set` with `base_version`: compare-and-set); when another change came first, the
list is read again and the change made anew (docs/api.md, "Tokens").
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tutela.apiauth.auth import TokenRecord, cluster_tokens
from tutela.model.config import ClusterConfig

Version = tuple[int, int]
"""(generation, epoch) of a configuration, as tutela.lcd.transfer orders them."""
ATTEMPTS = 20
"""Reads and writes of one change before giving up: each conflict means another change
was made meanwhile, so twenty in a row means the configuration changes without pause."""
LCD_FILE = "lcd.sqlite"
"""tutela.lcd.store.LCD_FILE (importing the store would cost every command 0.4 s)."""

Read = Callable[[], tuple[Version, list[TokenRecord]]]
"""The tokens of the configuration in force, and its version."""
Write = Callable[[Version, list[dict[str, Any]]], None]
"""Make `api_tokens` this list if the configuration is still at this version; Conflict if
not."""

class Conflict(Exception):
    """The configuration was no longer at the version the change was computed from."""


class TokenChangeFailed(Exception):
    """Every attempt met another change first."""


def revoke_cluster_token(token_id: str, read: Read, write: Write) -> bool:
    """Take `token_id` out of the cluster's tokens; False when it is not there."""
    for _ in range(ATTEMPTS):
        version, records = read()
        kept = [asdict(r) for r in records if r.id != token_id]
        if len(kept) == len(records):
            return False
        try:
            write(version, kept)
            return True
        except Conflict:
            continue
    raise TokenChangeFailed(f"the configuration changed {ATTEMPTS} times while token "
                            f"{token_id} was being revoked; nothing was changed")


def stored_tokens(state_dir: Path) -> tuple[Version, list[TokenRecord]]:
    """The tokens of the newest configuration in this node's LCD and its version, in one
    read (tutelad may run); no tokens at version (0, 0) before the node is initialised."""
    path = state_dir / LCD_FILE
    if not path.exists():
        return (0, 0), []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                            timeout=5.0)) as lcd:
        generation, epoch, config = lcd.execute(
            "SELECT generation, epoch, config FROM generations "
            "ORDER BY generation DESC LIMIT 1").fetchone()
    return (int(generation), int(epoch)), cluster_tokens(ClusterConfig.model_validate_json(config))
