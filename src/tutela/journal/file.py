"""The journal's file in the state directory: appended by a thread of its own, bounded,
and read back (with the previous file) skipping what a crash tore.

`events.jsonl` holds one record per line; when the next batch would take it past
MAX_BYTES it becomes `events.jsonl.1` (replacing the older one) and a new file starts, so a
node keeps at most 2 x MAX_BYTES of events.

The event loop only puts a record on a queue (`Journal.emit` never waits on the disk); the
writer thread takes every record queued, writes them in one write(2) to the file opened
with O_APPEND, and fdatasync(2)s it. A crash of tutelad loses only the records still on the
queue (those emitted in the moment before it, not yet taken by the writer); a power loss
loses at most the batch being written, whose torn last line the reader skips.

Under systemd (stderr is the journal stream, tutela.logsetup) every record also goes to the
systemd journal as one log line "tutela-event: {JSON}" of the logger `tutela.events`, at the
priority of its severity, through the log's own writer thread.
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutela.journal.events import Event, Severity, make
from tutela.logsetup import stream_is_journal

JOURNAL_NAME = "events.jsonl"
MAX_BYTES = 4 << 20
"""Bytes of one journal file (4 MiB, some 15,000 records); one previous file is kept."""
SYSTEMD_PREFIX = "tutela-event: "
LEVELS: Mapping[str, int] = {"info": logging.INFO, "warning": logging.WARNING,
                             "error": logging.ERROR}
log = logging.getLogger("tutela.events")


def journal_path(state_dir: Path) -> Path:
    return state_dir / JOURNAL_NAME


def previous_path(state_dir: Path) -> Path:
    return state_dir / f"{JOURNAL_NAME}.1"


class Journal:
    """This node's journal; `emit` is the daemon parts' emitter (events.Emitter)."""

    def __init__(self, state_dir: Path, node: str, max_bytes: int = MAX_BYTES,
                 to_systemd: bool | None = None) -> None:
        self.path, self.previous = journal_path(state_dir), previous_path(state_dir)
        self.node = node
        self.max_bytes = max_bytes
        self.listeners: list[Callable[[Event], None]] = []
        """Told every record as it is emitted, in the event loop (tutelad's metrics)."""
        self.to_systemd = (stream_is_journal(sys.stderr, os.environ) if to_systemd is None
                           else to_systemd)
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="event-journal",
                                        daemon=True)
        self._fd = -1
        self._size = 0

    def start(self) -> None:
        self._open()
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then close; idempotent."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def emit(self, kind: str, subject: str, cause: str, *, correlation: str = "",
             severity: Severity | None = None,
             details: Mapping[str, Any] | None = None) -> None:
        """Queue one record (never blocks); ValueError for a kind not in events.KINDS."""
        event = make(datetime.datetime.now(datetime.UTC), self.node, kind, subject, cause,
                     correlation, severity, details)
        self._queue.put(event)
        for listener in self.listeners:
            listener(event)
        if self.to_systemd:
            log.log(LEVELS[event.severity], "%s%s", SYSTEMD_PREFIX, event.to_line().rstrip())

    # --- the writer thread ---------------------------------------------------------------

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                           0o600)
        self._size = os.fstat(self._fd).st_size
        if self._size and not _ends_with_newline(self.path):
            self._write(b"\n")  # a line torn by a crash: the next record starts a new one

    def _write_loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get())
            events = [e for e in batch if e is not None]
            if events:
                self._write(b"".join(e.to_line().encode() for e in events))
            if None in batch:
                os.close(self._fd)
                return

    def _write(self, data: bytes) -> None:
        try:
            if self._size and self._size + len(data) > self.max_bytes:
                os.close(self._fd)
                os.replace(self.path, self.previous)
                self._open()
            os.write(self._fd, data)
            os.fdatasync(self._fd)
            self._size += len(data)
        except OSError as error:  # a full disk: the records are lost, the node goes on
            log.warning("event journal %s: %d bytes of records not written: %s", self.path,
                        len(data), error)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


# --- reading ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Read:
    events: list[Event]
    skipped: int
    """Lines that are not whole records (a line torn by a crash)."""


def read_journal(state_dir: Path) -> Read:
    """This node's records, oldest first (the previous file, then the current one)."""
    events: list[Event] = []
    skipped = 0
    for path in (previous_path(state_dir), journal_path(state_dir)):
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                events.append(Event.from_line(line))
            except ValueError:
                skipped += 1
    return Read(events, skipped)
