"""Where the daemons' log records go (tutelad and tutela-witness), written once each:

- run by systemd (stderr is the journal stream that $JOURNAL_STREAM names): to stderr only,
  every line prefixed with its syslog priority ("<4>"), which journald takes as the entry's
  priority (sd-daemon(3)), so `journalctl -p warning` works; no file, no time stamp (the
  journal has both);
- otherwise: to the log file in the state directory, reopened when logrotate moved it away
  (a watched file) or on SIGHUP; to stderr as well only when that is a terminal (a person
  runs the daemon in the foreground). Not to a redirected stderr: `tutela start` sends it to
  tutelad.out, which nothing rotates and which would hold every line a second time.

The thread that logs only puts the record on a queue; a writer thread of its own formats and
writes it. A log write to a busy disk (or a full journal pipe), or a handler's lock held by a
kit thread that the scheduler keeps waiting behind real-time work, cannot hold up heartbeats,
lease rounds and watchdog pets (seen: a node reset by its watchdog during a burst of
restores, its event loop waiting to log).
"""

from __future__ import annotations

import functools
import logging
import logging.handlers
import os
import queue
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

JOURNAL_ENV = "JOURNAL_STREAM"
FILE_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                     (logging.INFO, 6))
"""(lowest level, priority): crit, err, warning, info; anything below INFO is debug (7)."""


def syslog_priority(level: int) -> int:
    return next((priority for lowest, priority in SYSLOG_PRIORITIES if level >= lowest), 7)


class JournalFormatter(logging.Formatter):
    """Prefixes every line with "<N>": journald reads each line of a stream as an entry, so
    a traceback's lines keep the record's priority too."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stream_is_journal(stream: IO[Any], environ: dict[str, str] | os._Environ[str]) -> bool:
    """True if `stream` is the journal connection systemd gave this process: $JOURNAL_STREAM
    is "DEVICE:INODE" of it. Compared, not just present: a child of the service that
    redirected its stderr elsewhere inherits the variable."""
    value = environ.get(JOURNAL_ENV, "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        status = os.fstat(stream.fileno())
    except (ValueError, OSError):
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


class LogFile(logging.handlers.WatchedFileHandler):
    """The log file: reopened when it was moved or deleted (logrotate's default: no
    postrotate needed), and on request (SIGHUP) before the next record is written."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._reopen = False

    def request_reopen(self) -> None:
        """Safe in a signal handler: only sets a flag that the writer thread acts on."""
        self._reopen = True

    def emit(self, record: logging.LogRecord) -> None:
        if self._reopen:
            self._reopen = False
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        super().emit(record)


class _UnlockedQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler without the per-handler lock (its queue is thread-safe already), so
    no thread ever waits for another to log."""

    def createLock(self) -> None:
        self.lock = None  # Handler.acquire and release skip a lock that is None


@dataclass
class LogOutput:
    """What configure() set up; stop() it at exit (writes what is still queued)."""

    writer: logging.handlers.QueueListener
    file: LogFile | None
    to_stderr: bool
    """True if records also reach stderr, where a supervisor (`tutela start`) reads a fatal
    error; if False, the caller prints such an error there itself."""

    stopped: bool = False

    def stop(self) -> None:
        """Idempotent (QueueListener.stop() fails when called twice)."""
        if not self.stopped:
            self.stopped = True
            self.writer.stop()


def _reopen_on_signal(log_file: LogFile | None, _signum: int, _frame: object) -> None:
    if log_file is not None:
        log_file.request_reopen()


def configure(log_path: Path, level: str) -> LogOutput:
    """Route the root logger's records as the module docstring says. OSError if the log
    file cannot be opened."""
    handlers: list[logging.Handler] = []
    log_file: LogFile | None = None
    if stream_is_journal(sys.stderr, os.environ):
        journal = logging.StreamHandler(sys.stderr)
        journal.setFormatter(JournalFormatter())
        handlers.append(journal)
    else:
        log_file = LogFile(log_path)
        handlers.append(log_file)
        if sys.stderr.isatty():
            handlers.append(logging.StreamHandler(sys.stderr))
        formatter = logging.Formatter(FILE_FORMAT, datefmt=DATE_FORMAT)
        for handler in handlers:
            handler.setFormatter(formatter)
    # SIGHUP's default action ends the process: a stray HUP (or logrotate's habitual
    # postrotate kill -HUP) must not stop a cluster node. It reopens the file, if any. A
    # handler, not SIG_IGN: an ignored signal stays ignored in the applications the kits
    # start (execve keeps it), and many of them reload on SIGHUP.
    signal.signal(signal.SIGHUP, functools.partial(_reopen_on_signal, log_file))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    enqueue = _UnlockedQueueHandler(records)
    enqueue.setFormatter(logging.Formatter("%(message)s"))  # the writer adds time and level
    logging.basicConfig(level=level, handlers=[enqueue], force=True)
    writer = logging.handlers.QueueListener(records, *handlers)
    writer.start()
    to_stderr = any(not isinstance(h, LogFile) for h in handlers)
    return LogOutput(writer, log_file, to_stderr)
