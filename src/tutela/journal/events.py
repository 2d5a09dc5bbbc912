"""The event record, the fixed table of its kinds, and how records are merged, filtered and
shown. Pure: the time is an argument wherever it matters.

A record is one JSON object per line (`to_line` / `from_line`); `from_line` raises
ValueError for anything that is not a whole record, so a reader skips a line torn by a
crash instead of failing on it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")


@dataclass(frozen=True)
class EventKind:
    name: str
    severity: Severity
    """The usual severity; an emitter may raise it (a failed self-fence is an error)."""
    subject: str
    """What the record's subject names."""
    meaning: str


KINDS: tuple[EventKind, ...] = (
    EventKind("node.up", "info", "peer", "a peer is heard again on at least one comm path"),
    EventKind("node.down", "warning", "peer", "a peer is DEAD: no heartbeat on any comm path "
              "for heartbeat_interval x heartbeat_misses seconds"),
    EventKind("path.up", "info", "path", "a comm path to a peer carries heartbeats again"),
    EventKind("path.down", "warning", "path", "a comm path to a peer is DEAD"),
    EventKind("lease.won", "info", "hierarchy", "this node holds the hierarchy's lease (a "
              "majority of the voters granted it)"),
    EventKind("lease.lost", "error", "hierarchy", "the hierarchy's lease could not be renewed "
              "or ended while held: this node fences itself"),
    EventKind("lease.released", "info", "hierarchy", "this node gave the lease back"),
    EventKind("restore.started", "info", "hierarchy", "a restore of the hierarchy began here"),
    EventKind("restore.finished", "info", "hierarchy", "the hierarchy is in service here"),
    EventKind("restore.failed", "error", "hierarchy", "the restore failed (cause says why)"),
    EventKind("remove.started", "info", "hierarchy", "taking the hierarchy out of service "
              "began here"),
    EventKind("remove.finished", "info", "hierarchy", "the hierarchy is out of service here"),
    EventKind("remove.failed", "error", "hierarchy", "the remove failed (cause says why)"),
    EventKind("recovery.local", "warning", "resource", "a quick check failed: local recovery "
              "of the resource began"),
    EventKind("resource.osf", "error", "resource", "the resource is out of service, failed"),
    EventKind("quorum.lost", "error", "hierarchy", "the lease could not be renewed by a "
              "majority: the quorum-loss action runs"),
    EventKind("fence.peer", "warning", "peer", "a peer was fenced before a takeover"),
    EventKind("fence.failed", "error", "peer", "fencing a peer failed or did not finish: "
              "no takeover"),
    EventKind("takeover.blocked", "warning", "hierarchy", "a takeover waits, for a new "
              "reason (cause says which: no quorum, a failed fence, its address answers...)"),
    EventKind("fence.self", "error", "hierarchy", "this node took the hierarchy out of "
              "service because its lease is ending"),
    EventKind("watchdog.armed", "info", "watchdog", "the watchdog device is armed"),
    EventKind("watchdog.disarmed", "info", "watchdog", "the watchdog device is disarmed"),
    EventKind("watchdog.starved", "error", "watchdog", "the watchdog is no longer petted: it "
              "fires and resets this node unless it is out of service first"),
    EventKind("config.applied", "info", "cluster", "a configuration generation took effect "
              "here"),
    EventKind("maintenance.stop", "warning", "node", "tutelad stops, leaving its resources "
              "running unprotected"),
    EventKind("maintenance.start", "info", "node", "tutelad started after a maintenance "
              "stop"),
    EventKind("api.request", "info", "user", "a state-changing request through the HTTPS API "
              "(docs/api.md): cause says what, details the role, method, path and status; "
              "warning when refused or failed"),
)
BY_NAME: Mapping[str, EventKind] = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class Event:
    at: str
    """UTC, ISO 8601 with milliseconds ("2026-12-07T07:50:01.123+00:00"): sorts as text."""
    node: str
    kind: str
    subject: str
    severity: Severity
    cause: str
    correlation: str = ""
    """Shared by the records of one failover (or one operation): `correlation_id`."""
    details: dict[str, Any] = field(default_factory=dict)

    def to_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "node": self.node, "kind": self.kind, "subject": self.subject,
                "severity": self.severity, "cause": self.cause,
                "correlation": self.correlation, "details": self.details}

    @classmethod
    def from_json(cls, value: Any) -> Event:
        """ValueError unless `value` is a whole record of a known kind."""
        if not isinstance(value, dict):
            raise ValueError("a record is a JSON object")
        try:
            event = cls(str(value["at"]), str(value["node"]), str(value["kind"]),
                        str(value["subject"]), value["severity"], str(value["cause"]),
                        str(value.get("correlation", "")), dict(value.get("details") or {}))
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a record: {error}") from None
        if event.severity not in SEVERITIES or event.kind not in BY_NAME:
            raise ValueError(f"not a record: kind {event.kind!r}, severity {event.severity!r}")
        return event

    @classmethod
    def from_line(cls, line: str) -> Event:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
        return cls.from_json(value)


def make(now: datetime.datetime, node: str, kind: str, subject: str, cause: str,
         correlation: str = "", severity: Severity | None = None,
         details: Mapping[str, Any] | None = None) -> Event:
    """A record of `kind` (ValueError if it is not in KINDS), at `now` (aware, any zone)."""
    if kind not in BY_NAME:
        raise ValueError(f"no event kind {kind!r}: each kind is one entry of "
                         "tutela.journal.events.KINDS")
    at = now.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return Event(at, node, kind, subject, severity or BY_NAME[kind].severity, cause,
                 correlation, dict(details or {}))


def correlation_id(subject: str) -> str:
    """A new id for the records of one failover or operation of `subject`."""
    return f"{subject}/{uuid.uuid4().hex[:12]}"


class Outages:
    """One correlation id per outage of a peer: its path.down records, its node.down and
    the path.up and node.up records that end it share one; a path that goes down and up
    again while the peer stays ALIVE is an outage of its own."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._dead: set[str] = set()

    def correlation(self, peer: str, kind: str) -> str:
        """The id of the record of `kind` (node.up, path.down...) about `peer`."""
        if kind.endswith(".down"):
            if kind == "node.down":
                self._dead.add(peer)
            return self._ids.setdefault(peer, correlation_id(peer))
        found = self._ids.get(peer) or correlation_id(peer)
        if kind == "node.up" or peer not in self._dead:
            self._ids.pop(peer, None)
            self._dead.discard(peer)
        return found


class Emitter(Protocol):
    def __call__(self, kind: str, subject: str, cause: str, *, correlation: str = "",
                 severity: Severity | None = None,
                 details: Mapping[str, Any] | None = None) -> None: ...


@contextlib.contextmanager
def recorded(emit: Emitter, operation: Literal["restore", "remove"], root: str, cause: str,
             correlation: str = "") -> Iterator[None]:
    """Records OPERATION.started, then .finished, or .failed with the error as its cause
    (and re-raised), around what the block awaits."""
    correlation = correlation or correlation_id(root)
    emit(f"{operation}.started", root, cause, correlation=correlation)
    try:
        yield
    except Exception as error:
        emit(f"{operation}.failed", root, f"{error}", correlation=correlation,
             details={"error": type(error).__name__})
        raise
    emit(f"{operation}.finished", root, cause, correlation=correlation)


def no_events(kind: str, subject: str, cause: str, *, correlation: str = "",
              severity: Severity | None = None,
              details: Mapping[str, Any] | None = None) -> None:
    """The emitter of a part built without a journal (unit tests of one part)."""


# --- reading --------------------------------------------------------------------------------

def merged(streams: Iterable[Iterable[Event]]) -> list[Event]:
    """Every node's records in one list by time (then node, for equal times; stable)."""
    return sorted((e for stream in streams for e in stream), key=lambda e: (e.at, e.node))


def select(events: Iterable[Event], hierarchy: str | None = None,
           since: datetime.datetime | None = None, limit: int | None = None) -> list[Event]:
    """The records about `hierarchy` (its subject or a resource of it, by details), from
    `since` on; the last `limit` of them."""
    start = None if since is None else since.astimezone(datetime.UTC).isoformat(
        timespec="milliseconds")
    chosen = [e for e in events
              if (hierarchy is None or e.subject == hierarchy
                  or e.details.get("hierarchy") == hierarchy)
              and (start is None or e.at >= start)]
    return chosen if limit is None else chosen[-limit:] if limit > 0 else []


DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime.datetime) -> datetime.datetime:
    """'90s', '10m', '2h', '1d' before `now`, or an ISO time (UTC when no zone is given);
    ValueError naming both forms."""
    match = DURATION.match(text.strip())
    if match:
        return now - datetime.timedelta(
            seconds=float(match.group(1)) * UNIT_SECONDS[match.group(2)])
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: give a duration (90s, 10m, 2h, 1d) or an ISO "
                         "time (2026-12-07T08:00:00, UTC unless a zone is given)") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def human(event: Event) -> str:
    """One line: time, node, severity, kind, subject, cause [correlation]."""
    when = event.at.replace("+00:00", "Z")
    line = (f"{when} {event.node} {event.severity.upper():7} {event.kind} {event.subject}: "
            f"{event.cause}")
    return f"{line} [{event.correlation}]" if event.correlation else line
