"""Client side of the control protocol: send one request to the local tutelad, get its answer.

Every request has a deadline (TIMEOUTS, or the caller's); the daemon is told it and answers
shortly before it. Failures come back as DaemonError with the daemon's kind, message and
field problems. A request that got no answer (tutelad died, or was too slow) becomes
Unanswered, saying whether it took effect, found out from the LCD or the daemon's status
as far as that can be known, and how to check otherwise.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tutela import control
from tutela.daemon.protocol import socket_path

QUESTION_TIMEOUT = 60.0
"""Seconds for a question or a configuration change: lease, commit, replication."""
ACTION_TIMEOUT = 600.0
"""Seconds for what runs resources' actions: restore, remove, switchover, an apply."""
TIMEOUTS = {op: ACTION_TIMEOUT for op in (
    "restore", "remove", "switchover", "apply", "resource.create", "hierarchy.extend",
    "witness.add")}
CHANGES = frozenset({
    "resource.create", "resource.delete", "dependency.add", "dependency.remove", "apply",
    "config.set",
    "node.remove", "node.failover", "path.add", "path.remove", "hierarchy.extend",
    "hierarchy.unextend", "witness.add", "witness.remove"})
"""Operations that commit a configuration generation."""
ACTIONS = frozenset({"restore", "remove", "switchover"})
"""Operations that move a hierarchy: their outcome is where it runs."""
RECONNECT_WAIT = 15.0
"""Seconds, within the deadline, to wait for a tutelad that died to answer again (a
service manager restarts it) before saying where a hierarchy runs."""
STATUS_WAIT = 5.0
"""Seconds to ask a tutelad that was too slow to answer where a hierarchy runs now."""
LCD_FILE = "lcd.sqlite"
"""tutela.lcd.store.LCD_FILE: importing the store would cost every command 0.4 s."""


class DaemonError(Exception):
    def __init__(self, kind: str, message: str, problems: list[dict[str, str]] | None = None
                 ) -> None:
        super().__init__(message)
        self.kind = kind
        self.problems = problems or []


class NotRunning(DaemonError):
    pass


class Unanswered(DaemonError):
    """No answer came; `done`: whether the request took effect (None: cannot be known)."""

    def __init__(self, message: str, done: bool | None) -> None:
        super().__init__("unanswered", message)
        self.done = done


def call(state_dir: Path, op: str, timeout: float | None = None, **args: Any) -> Any:
    """Ask tutelad to do `op` within `timeout` seconds (default: TIMEOUTS, else
    QUESTION_TIMEOUT); its result, or DaemonError."""
    path = socket_path(state_dir)
    limit = timeout or TIMEOUTS.get(op, QUESTION_TIMEOUT)
    deadline = time.monotonic() + limit
    before = stored_generation(state_dir) if op in CHANGES else None
    try:
        message = control.request(path, {"op": op, "timeout": limit, **args}, limit)
    except control.NoAnswer:
        raise NotRunning("not-running", f"tutelad is not running (no answer on {path}); "
                         "start it with 'tutela start'") from None
    except control.NoAnswerInTime:
        raise _unanswered(state_dir, op, args, before, f"tutelad did not answer within "
                          f"{limit:g}s (see --timeout)", deadline, alive=True) from None
    if message is None:
        raise _unanswered(state_dir, op, args, before, "tutelad closed the connection "
                          "before it answered (it stopped or died)", deadline, alive=False)
    if message["ok"]:
        return message["result"]
    error = message["error"]
    text = error["message"]
    if error["kind"] == "system" and before is not None and stored_generation(
            state_dir) == before:  # e.g. a full disk: say that the LCD kept what it had
        text += f"; nothing was changed (the configuration is still generation {before})"
    raise DaemonError(error["kind"], text, error.get("problems"))


def is_running(state_dir: Path) -> bool:
    try:
        call(state_dir, "ping", timeout=2.0)
    except (DaemonError, OSError):
        return False
    return True


def _unanswered(state_dir: Path, op: str, args: dict[str, Any], before: int | None,
                what: str, deadline: float, alive: bool) -> DaemonError:
    if op in CHANGES:
        return _change_outcome(state_dir, op, args, before, what, alive)
    if op in ACTIONS:
        return _action_outcome(state_dir, op, args, what, deadline, alive)
    return Unanswered(f"{what}; try again, and see 'tutela log' if it keeps happening",
                      None)


def _change_outcome(state_dir: Path, op: str, args: dict[str, Any], before: int | None,
                    what: str, alive: bool) -> Unanswered:
    """Whether a configuration change committed, from this node's LCD: a dead daemon
    cannot change it any more, and a slow one may still commit."""
    now = stored_generation(state_dir)
    if before is None or now is None:
        return Unanswered(
            f"{what}; whether the change committed cannot be known here (this node's "
            f"configuration database in {state_dir} cannot be read): once tutelad runs, see "
            "the generation in 'tutela status'" + (f" (it was {before} before)"
                                                   if before is not None else ""), None)
    if now == before:
        if alive:
            return Unanswered(f"{what}; the change has not committed yet (the configuration "
                              f"is still generation {before}) but may still: see 'tutela "
                              "status' in a while", None)
        return Unanswered(f"{what}; the change did not commit: the configuration is still "
                          f"generation {before} and nothing changed; run it again once "
                          "tutelad runs ('tutela start')", False)
    if op == "apply" and not _is_applied(state_dir, args):
        return Unanswered(f"{what}; the configuration moved from generation {before} to "
                          f"{now}, but it is not what the document says (another change "
                          "came in?): see 'tutela apply --dry-run -f FILE'", None)
    committed = (f"{what}; the change did commit: the configuration is generation {now} "
                 f"on this node (it was {before} before)")
    if args.get("restore"):  # resource create --restore: the restore came after the commit
        return Unanswered(f"{committed}, but whether {args['tag']} went into service is not "
                          "known: see 'tutela status'", None)
    return Unanswered(committed, True)


def _action_outcome(state_dir: Path, op: str, args: dict[str, Any], what: str,
                    deadline: float, alive: bool) -> DaemonError:
    """Where the hierarchy of the request's tag runs now, asked of tutelad once it answers
    again (within the deadline, at most RECONNECT_WAIT)."""
    tag = str(args["tag"])
    now = time.monotonic()
    until = now + STATUS_WAIT if alive else min(deadline, now + RECONNECT_WAIT)
    status = _status_by(state_dir, until)
    if status is None:
        return Unanswered(f"{what}; whether {op} of {tag} took effect cannot be known here, "
                          "as tutelad does not answer: start it ('tutela start'), then see "
                          "'tutela status'", None)
    where = runs_on(status, tag)
    place = f"on {where}" if where else "nowhere"
    if op == "switchover":
        if where != args["to"]:
            return DaemonError("switchover", f"{what}; {tag} did not move to {args['to']}: "
                               f"it runs {place} now (see 'tutela status')")
        return Unanswered(f"{what}; {tag} runs on {where} now", True)
    reached = where is not None if op == "restore" else where is None
    # Not reached yet: it may still be (a clustered hierarchy's target is set first).
    return Unanswered(f"{what}; {tag}'s hierarchy runs {place} now (see 'tutela status')",
                      True if reached else None)


def _status_by(state_dir: Path, until: float) -> dict[str, Any] | None:
    """tutelad's status, waiting for it to answer until `until` (monotonic time)."""
    while True:
        try:
            status: dict[str, Any] = call(state_dir, "status",
                                          timeout=max(1.0, until - time.monotonic()))
            return status
        except (DaemonError, OSError):
            if time.monotonic() >= until:
                return None
        time.sleep(0.1)  # polling the socket until tutelad answers again, or the deadline


def runs_on(status: dict[str, Any], tag: str) -> str | None:
    """The node where the hierarchy holding `tag` is in service, from a status answer."""
    for hierarchy in status["hierarchies"]:
        if any(r["tag"] == tag for r in hierarchy["resources"]):
            root = hierarchy["resources"][0]
            if hierarchy["state"] in ("ISP", "ISU"):
                return str(status["node"])
            return next((node for node, there in root["elsewhere"].items()
                         if there["state"] in ("ISP", "ISU") and not there["stale"]), None)
    return None


def stored_generation(state_dir: Path) -> int | None:
    """The configuration generation in this node's LCD, read-only; None if unreadable."""
    try:
        with contextlib.closing(_read_only(state_dir)) as lcd:
            return int(lcd.execute("SELECT MAX(generation) FROM generations").fetchone()[0])
    except (sqlite3.Error, OSError, TypeError):
        return None


def _is_applied(state_dir: Path, args: dict[str, Any]) -> bool:
    """Whether this node's configuration is what the applied document says."""
    from tutela.lcd.document import diff, from_yaml  # the failure path only: slow imports
    from tutela.model.config import ClusterConfig

    with contextlib.closing(_read_only(state_dir)) as lcd:
        row = lcd.execute("SELECT config FROM generations ORDER BY generation DESC "
                          "LIMIT 1").fetchone()
    return not diff(ClusterConfig.model_validate_json(row[0]),
                    from_yaml(str(args["yaml"]), str(args.get("source", "<input>"))))


def maintenance_note(state_dir: Path) -> str:
    """For a `tutela status` that finds tutelad stopped: what this node's entry in its
    LCD says of a maintenance stop ('' if none, or unreadable)."""
    try:
        with contextlib.closing(_read_only(state_dir)) as lcd:
            node = lcd.execute("SELECT value FROM meta WHERE key = 'node'").fetchone()[0]
            row = lcd.execute("SELECT config FROM generations ORDER BY generation DESC "
                              "LIMIT 1").fetchone()
        config = json.loads(row[0])
    except (sqlite3.Error, OSError, TypeError, ValueError):
        return ""
    entry: dict[str, Any] = next(
        (n for n in config.get("nodes", []) if n.get("name") == node), {})
    record = entry.get("maintenance")
    if not record:
        return ""
    return (f"\nthis node is in maintenance since {record['since']} (tutela stop "
            f"--leave-resources): {', '.join(record['hierarchies'])} left in service here, "
            "unprotected; the other nodes leave them alone. 'tutela start' re-adopts them")


def _read_only(state_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{state_dir / LCD_FILE}?mode=ro", uri=True, timeout=5.0)
