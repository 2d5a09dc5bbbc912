"""The emulated hardware watchdog of a lab node: the /dev/watchdog protocol over a FIFO, its
state machine and its event log (<root>/<node>/watchdog.log).

The first byte arms it (timeout 60 s unless set), "T<seconds>\\n" sets the timeout, any byte
pets, "V" as the last byte before close disarms, a close without it leaves it armed.
hardwared adds the power rules (docs/lab.md, "Watchdog").
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
MAX_COMMAND = 32  # bytes of an unfinished "T..." line kept between reads

Event = tuple[str, dict[str, str]]


@dataclass
class Watchdog:
    """One watchdog's state; `now` arguments are time.monotonic() seconds."""

    timeout: float = DEFAULT_TIMEOUT
    deadline: float | None = None  # None: disarmed
    last_byte: bytes = b""
    pending: bytes = field(default=b"", repr=False)

    @property
    def armed(self) -> bool:
        return self.deadline is not None

    def feed(self, data: bytes, now: float) -> list[Event]:
        """Bytes written by the node: commands, pets. Returns the events to log."""
        if not data:
            return []
        events = self._commands(data)
        if not self.armed:
            events.append(("armed", {"timeout": f"{self.timeout:g}"}))
        self.deadline = now + self.timeout
        self.last_byte = data[-1:]
        return events

    def _commands(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        rest = self.pending + data
        while (start := rest.find(b"T")) >= 0:
            end = rest.find(b"\n", start)
            if end < 0:
                break
            events.append(self._set_timeout(rest[start + 1:end]))
            rest = rest[end + 1:]
        start = rest.find(b"T")
        self.pending = rest[start:] if start >= 0 and len(rest) - start <= MAX_COMMAND else b""
        return events

    def _set_timeout(self, text: bytes) -> Event:
        try:
            seconds = float(text)
        except ValueError:
            seconds = 0.0
        if not 0 < seconds <= MAX_TIMEOUT:
            return ("bad-timeout", {"value": text.decode(errors="replace")[:MAX_COMMAND]})
        self.timeout = seconds
        return ("timeout", {"timeout": f"{seconds:g}"})

    def closed(self, now: float) -> list[Event]:
        """Every writer closed the device."""
        self.pending = b""
        if not self.armed:
            return []
        if self.last_byte == b"V":
            self.deadline = None
            return [("disarmed", {})]
        return [("unexpected-close", {"remaining": f"{self.remaining(now):.3f}"})]

    def remaining(self, now: float) -> float:
        return (self.deadline - now) if self.deadline is not None else 0.0

    def expire(self, now: float) -> bool:
        """True (once) when armed and not petted for the timeout: time to pull the plug.
        It is disarmed afterwards."""
        if self.deadline is None or now < self.deadline:
            return False
        self.reset()
        return True

    def reset(self) -> None:
        """Disarmed, as after power-on."""
        self.deadline, self.pending, self.last_byte = None, b"", b""


@dataclass(frozen=True)
class WatchdogEvent:
    """One line of watchdog.log."""

    time: datetime.datetime
    event: str
    details: dict[str, str]


def format_event(event: str, details: dict[str, str]) -> str:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    return " ".join([now, event, *(f"{k}={v}" for k, v in details.items())]) + "\n"


def log_event(path: str, event: str, details: dict[str, str]) -> None:
    """Append one event line (a single write, so lines of two writers never mix)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, format_event(event, details).encode())
    finally:
        os.close(fd)


def parse_events(text: str) -> list[WatchdogEvent]:
    events = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        details = dict(f.split("=", 1) for f in fields[2:] if "=" in f)
        events.append(WatchdogEvent(datetime.datetime.fromisoformat(fields[0]), fields[1],
                                    details))
    return events


def read_events(path: str) -> list[WatchdogEvent]:
    try:
        with open(path) as f:
            return parse_events(f.read())
    except FileNotFoundError:
        return []
