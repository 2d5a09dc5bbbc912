"""The LCD's SQLite schema and its forward migrations, keyed by PRAGMA user_version.

Add a migration by appending to MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: configuration generations, node facts, runtime resource states
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE generations (
        generation INTEGER PRIMARY KEY,
        committed_at TEXT NOT NULL,
        origin TEXT NOT NULL,
        summary TEXT NOT NULL,
        config TEXT NOT NULL
    );
    CREATE TABLE resource_state (
        tag TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        changed_at TEXT NOT NULL
    );
    """,
    # 2: the epoch of the configuration lease each generation was written under, so that
    # versions order as (generation, epoch), and the highest epoch this node promised
    """
    ALTER TABLE generations ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    INSERT OR IGNORE INTO meta VALUES ('config_promise', '0');
    """,
    # 3: when each resource last went into service here (the cold-start 'last' policy)
    """
    ALTER TABLE resource_state ADD COLUMN last_in_service TEXT;
    UPDATE resource_state SET last_in_service = changed_at WHERE state IN ('ISP', 'ISU');
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    pass


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database forward to SCHEMA_VERSION, one transaction per step.

    The connection must be in autocommit mode (isolation_level=None).
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"LCD schema version {version} is newer than this tutela understands "
            f"({SCHEMA_VERSION}); upgrade tutela on this node")
    for number in range(version, SCHEMA_VERSION):
        try:
            conn.executescript("BEGIN IMMEDIATE;" + MIGRATIONS[number]
                               + f"; PRAGMA user_version = {number + 1}; COMMIT;")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION
