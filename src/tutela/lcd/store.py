"""The LCD store: one SQLite file (WAL) per node holding configuration generations and states.

Every configuration change is one transaction that adds a generation; a failed change adds nothing.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutela.lcd.replication import Acceptor, Proposer, ReplicationFailed, Stored, Version
from tutela.lcd.schema import migrate
from tutela.lcd.size import size_problem
from tutela.lcd.validate import validate_config
from tutela.lcm.keyring import KeyRing
from tutela.model.config import ClusterConfig, Node, NodeWatchdog
from tutela.model.errors import ConfigError, Problem
from tutela.model.states import ResourceState

LCD_FILE = "lcd.sqlite"
HISTORY_KEPT = 100
KEY_BYTES = 32


class NotInitialised(RuntimeError):
    pass


class AlreadyInitialised(RuntimeError):
    pass


class StaleGeneration(RuntimeError):
    """The configuration changed since the caller read it; re-read and try again."""


@dataclass(frozen=True)
class GenerationInfo:
    generation: int
    committed_at: str
    origin: str
    summary: str


@dataclass(frozen=True)
class StoredState:
    state: ResourceState
    reason: str
    changed_at: str
    last_in_service: str | None = None
    """When it last went into service on this node (ISO UTC), None if never."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class Lcd:
    """One node's configuration database, owned by one process (the daemon) at a time.

    Its methods may be called from several threads: tutelad adopts a replicated version in a
    worker thread (validation and a power-safe commit would hold its event loop up), while
    the loop reads and records states. One lock keeps the connection to one user at a time;
    `version()` takes no lock (the loop reads it for every heartbeat)."""

    def __init__(self, state_dir: Path, conn: sqlite3.Connection) -> None:
        self.state_dir = state_dir
        self._conn = conn
        self._lock = threading.RLock()
        """Held for every use of the connection (a transaction: to its end)."""
        self._version: Version = self._read_version(conn)
        """(generation, epoch) as committed: every heartbeat carries it, so no query per
        beat; set after each commit of a generation, so no reader waits for the lock."""

    @classmethod
    def create(cls, state_dir: Path, cluster: str, node: str,
               addresses: tuple[str, ...] = (), watchdog: NodeWatchdog | None = None) -> Lcd:
        """Create a new LCD with generation 1: a one-node cluster of this node, new key."""
        config = ClusterConfig(name=cluster, nodes=(
            Node(name=node, addresses=addresses, watchdog=watchdog),))
        return cls.create_from(state_dir, node, secrets.token_bytes(KEY_BYTES), config, 1,
                               f"created cluster {cluster}")

    @classmethod
    def create_from(cls, state_dir: Path, node: str, key: bytes, config: ClusterConfig,
                    generation: int, summary: str, epoch: int = 0) -> Lcd:
        """Create an LCD holding `config` as `generation` (a new cluster, or a joining node)."""
        path = state_dir / LCD_FILE
        if path.exists():
            raise AlreadyInitialised(
                f"{path} already exists; this node is initialised. Use another --state-dir, "
                "or remove that directory to start over")
        validate_config(config)
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)  # the LCD holds the cluster key
        try:
            lcd = cls(state_dir, _connect(path))
        except BaseException:  # e.g. a full disk while the file is being set up
            path.unlink(missing_ok=True)  # a half-made LCD would block the next init
            raise
        try:
            with lcd._transaction() as conn:
                conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("node", node), ("cluster_key", key.hex()),
                                  ("incarnation", "0")])
                lcd._insert_generation(conn, generation, config, "init", summary, epoch)
            lcd._version = generation, epoch
        except BaseException:
            lcd.close()
            path.unlink(missing_ok=True)  # a half-made LCD would block the next init
            raise
        return lcd

    @classmethod
    def open(cls, state_dir: Path) -> Lcd:
        path = state_dir / LCD_FILE
        if not path.exists():
            raise NotInitialised(
                f"no LCD at {path}; run 'tutela init --cluster NAME' first "
                "(or point --state-dir / TUTELA_STATE_DIR at an initialised node)")
        return cls(state_dir, _connect(path))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @functools.cached_property
    def node(self) -> str:
        """This node's name: it never changes, and the event loop asks often (metrics)."""
        return self._meta("node")

    @property
    def cluster_key(self) -> bytes:
        return bytes.fromhex(self._meta("cluster_key"))

    def key_ring(self) -> KeyRing:
        """The cluster keys: the sending key (meta 'cluster_key') and, during a rotation, the
        other key accepted (meta 'cluster_key_other', 'key_rotation'). Absent rows: none."""
        rows = dict(self._query(
            "SELECT key, value FROM meta WHERE key IN ('cluster_key_other', 'key_rotation')"))
        other = rows.get("cluster_key_other")
        rotation = rows.get("key_rotation", "")
        if rotation not in ("", "staged", "switched"):
            raise ValueError(f"the LCD's key_rotation is {rotation!r}")
        return KeyRing(self.cluster_key, bytes.fromhex(other) if other else None, rotation)

    def save_key_ring(self, ring: KeyRing) -> None:
        """Store a rotation's step in one power-safe transaction: a crash leaves the ring
        before or after the step, never half of it."""
        with self._transaction() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'cluster_key'",
                         (ring.send.hex(),))
            conn.execute("DELETE FROM meta WHERE key IN ('cluster_key_other', 'key_rotation')")
            if ring.other is not None:
                conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("cluster_key_other", ring.other.hex()),
                                  ("key_rotation", ring.rotation)])

    def next_incarnation(self) -> int:
        """A number higher than any this node used before: peers reject older ones."""
        with self._transaction() as conn:
            value = int(self._meta("incarnation")) + 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'incarnation'", (str(value),))
        return value

    def start_lease_duration(self, duration: float) -> float:
        """At tutelad's start: the longest lease this node's voter may still have grants of
        from earlier runs (0 if none); recorded as at least `duration` until
        `settle_lease_duration`, so that a run that ends within its quiet period passes the
        longer lease on to the next (docs/leases.md, "Leases of different lengths")."""
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'lease_duration'").fetchone()
            before = float(row[0]) if row else 0.0
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('lease_duration', ?)",
                         (repr(max(before, duration)),))
        return before

    def settle_lease_duration(self, duration: float) -> None:
        """The voter's quiet period is over: every grant of an earlier run has expired, and
        the longest it may have is its own `duration`."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('lease_duration', ?)",
                         (repr(duration),))

    def note_left_untold(self, roots: list[str]) -> None:
        """`tutela stop --leave-resources --force` left `roots` in service without telling
        the other nodes: the next start re-adopts them as after a maintenance stop."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('left_untold', ?)",
                         (json.dumps(sorted(roots)),))

    def take_left_untold(self) -> list[str]:
        """What the last stop left in service untold (`note_left_untold`), forgotten as it
        is read: a later death of tutelad is not such a stop."""
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'left_untold'").fetchone()
            conn.execute("DELETE FROM meta WHERE key = 'left_untold'")
        return [str(root) for root in json.loads(row[0])] if row else []

    def _meta(self, key: str) -> str:
        return str(self._query("SELECT value FROM meta WHERE key = ?", (key,))[0][0])

    def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row `sql` reads, the connection held meanwhile."""
        with self._lock:
            return self._conn.execute(sql, parameters).fetchall()

    def generation(self) -> int:
        return self.version()[0]

    def load(self) -> ClusterConfig:
        rows = self._query("SELECT config FROM generations ORDER BY generation DESC LIMIT 1")
        return ClusterConfig.model_validate_json(rows[0][0])

    def history(self, limit: int = 20) -> list[GenerationInfo]:
        rows = self._query("SELECT generation, committed_at, origin, summary FROM generations "
                           "ORDER BY generation DESC LIMIT ?", (limit,))
        return [GenerationInfo(int(g), str(t), str(o), str(s)) for g, t, o, s in rows]

    def commit(self, config: ClusterConfig, summary: str, origin: str = "local",
               expected: Version | None = None, epoch: int = 0) -> int:
        """Validate and store `config` as the next generation; return that generation.

        Raises ConfigError (nothing written) when the configuration is invalid, and
        StaleGeneration when `expected` is not the current version (the change was made on
        a configuration that another node's version replaced meanwhile, a catch-up during
        the change: committing it would drop what that version brought) or when this node
        promised an epoch above `epoch` meanwhile (tutela.lcd.replication,
        Proposer.commit_version).
        """
        self.check(config)
        with self._transaction() as conn:
            current = self._read_version(conn)
            promise = int(self._meta("config_promise"))
            if (expected is not None and expected != current) or promise > epoch:
                try:  # the same refusal as the replication core's, in this transaction
                    Proposer.commit_version(Stored(current, promise), expected or current,
                                            epoch)
                except ReplicationFailed as error:
                    raise StaleGeneration(f"{error}; nothing was changed") from None
            self._insert_generation(conn, current[0] + 1, config, origin, summary, epoch)
            conn.execute("DELETE FROM generations WHERE generation <= ?",
                         (current[0] + 1 - HISTORY_KEPT,))
        self._version = current[0] + 1, epoch
        return current[0] + 1

    def version(self) -> Version:
        """(generation, epoch) of the current configuration (versions order epoch first:
        tutela.lcd.transfer.order)."""
        return self._version

    def current_text(self) -> tuple[Version, bytes]:
        """The newest generation as stored, with its version, read together: what this
        node sends of it (compact JSON, UTF-8)."""
        rows = self._query("SELECT generation, epoch, config FROM generations "
                           "ORDER BY generation DESC LIMIT 1")
        generation, epoch, text = rows[0]
        return (int(generation), int(epoch)), str(text).encode()

    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> Version:
        """As stored; (0, 0) before the first generation (while `create_from` makes it)."""
        row = conn.execute("SELECT generation, epoch FROM generations "
                           "ORDER BY generation DESC LIMIT 1").fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def adopt(self, config: ClusterConfig, generation: int, epoch: int, origin: str,
              pushed: bool = False) -> bool:
        """Store a version written elsewhere in the cluster, as the replication core's
        acceptor decides (tutela.lcd.replication): only when it is newer, epoch first, and
        when `pushed` by a holder only when its epoch is not below our promise.

        A higher epoch replaces ours whatever the generations: ours was written by an
        earlier configuration lease holder that did not reach a majority (the generations
        from the adopted one on are replaced, so a generation may go down).
        """
        validate_config(config)
        with self._transaction() as conn:
            acceptor = Acceptor(Stored(self._read_version(conn),
                                       int(self._meta("config_promise"))))
            version = generation, epoch
            taken = acceptor.on_push(version) if pushed else acceptor.on_fetched(version)
            if not taken.adopt:
                return False
            conn.execute("DELETE FROM generations WHERE generation >= ?", (generation,))
            self._insert_generation(conn, generation, config, origin,
                                    f"replicated from {origin}", epoch)
        self._version = generation, epoch
        return True

    @property
    def promise(self) -> int:
        """The highest configuration lease epoch this node has promised to."""
        return int(self._meta("config_promise"))

    def raise_promise(self, epoch: int) -> bool:
        """Promise `epoch` if it is above the promise (tutela.lcd.replication's acceptor);
        True when it was promised."""
        with self._transaction() as conn:
            decision = Acceptor(Stored(self.version(), int(self._meta("config_promise")))
                                ).on_promise(epoch)
            if decision.store is None:
                return False
            conn.execute("UPDATE meta SET value = ? WHERE key = 'config_promise'",
                         (str(decision.store),))
        return True

    def check(self, config: ClusterConfig) -> None:
        """Raise ConfigError unless `config` is valid, belongs to this node's cluster and is
        not too large to replicate (tutela.lcd.size). Only for changes made here: a version
        written elsewhere is adopted whatever its size, or replication could jam."""
        current_name = self.load().name
        if config.name != current_name:
            raise ConfigError([Problem(
                "name", f"this configuration is for cluster {config.name!r}, "
                f"but this node belongs to {current_name!r}",
                f"set name: {current_name}, or apply it on a node of {config.name}")])
        validate_config(config)
        problem = size_problem(config, self._stored_size())
        if problem is not None:
            raise ConfigError([problem])

    def _stored_size(self) -> int:
        """Bytes of the current configuration as stored (the JSON the nodes send)."""
        rows = self._query("SELECT length(CAST(config AS BLOB)) FROM generations "
                           "ORDER BY generation DESC LIMIT 1")
        return int(rows[0][0])

    def save_state(self, tag: str, state: ResourceState, reason: str) -> None:
        """Record a resource's state, durable against a crash of tutelad but not of the
        machine (no fsync: it would hold up the event loop, under load for up to 0.65 s).
        That is enough: a state matters after a restart only while the resource is still
        running, and a machine that went down took its resources with it."""
        with self._transaction(power_safe=False) as conn:
            now = _now()
            conn.execute(
                "INSERT INTO resource_state VALUES (?, ?, ?, ?, ?) ON CONFLICT(tag) DO UPDATE "
                "SET state = excluded.state, reason = excluded.reason, "
                "changed_at = excluded.changed_at, last_in_service = "
                "coalesce(excluded.last_in_service, resource_state.last_in_service)",
                (tag, state.value, reason, now, now if state.in_service else None))

    def forget_state(self, tag: str) -> None:
        with self._transaction(power_safe=False) as conn:
            conn.execute("DELETE FROM resource_state WHERE tag = ?", (tag,))

    def load_states(self) -> dict[str, StoredState]:
        rows = self._query("SELECT tag, state, reason, changed_at, last_in_service "
                           "FROM resource_state")
        return {str(t): StoredState(ResourceState(s), str(r), str(c), last)
                for t, s, r, c, last in rows}

    @contextmanager
    def _transaction(self, power_safe: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction. `power_safe`: its commit survives a power loss (fsync of the
        write-ahead log); otherwise only a crash of the process. A later power-safe commit
        makes every earlier one power-safe too (the log is written in order). The connection
        is this thread's until the transaction ends."""
        with self._lock:
            yield from self._transaction_held(power_safe)

    def _transaction_held(self, power_safe: bool) -> Iterator[sqlite3.Connection]:
        if not power_safe:
            self._conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        finally:
            if not power_safe:
                self._conn.execute("PRAGMA synchronous = FULL")

    def _insert_generation(self, conn: sqlite3.Connection, generation: int,
                           config: ClusterConfig, origin: str, summary: str,
                           epoch: int = 0) -> None:
        conn.execute("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)",
                     (generation, _now(), origin, summary, config.model_dump_json(), epoch))


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # a commit survives a power loss (but see
    # Lcd._transaction: resource states are written without fsync)
    conn.execute("PRAGMA busy_timeout = 5000")
    migrate(conn)
    return conn
