"""The live event stream: one poller thread reads every reachable node's journal records
(as `tutela events --follow` does) while anybody listens, and hands each new record to
every listener's queue."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Callable
from pathlib import Path

from tutela.journal.events import Event

INTERVAL = 1.0
"""Seconds between polls of the journals."""
LATE_RECORDS = datetime.timedelta(seconds=30)
"""How far back each poll reads again, for a peer's records that arrive late."""
QUEUE_LIMIT = 1000
"""Records held for one slow listener; beyond that, it misses the oldest."""

Gather = Callable[[Path, datetime.datetime | None], list[Event]]


class Feed:
    def __init__(self, state_dir: Path, gather: Gather) -> None:
        self.state_dir = state_dir
        self.gather = gather
        self._listeners: dict[asyncio.Queue[Event], asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def listen(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)
        with self._lock:
            self._listeners[queue] = asyncio.get_running_loop()
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="api-feed",
                                                daemon=True)
                self._thread.start()
        return queue

    def leave(self, queue: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._listeners.pop(queue, None)

    def _poll(self) -> None:
        started = datetime.datetime.now(datetime.UTC)
        floor = _stamp(started)  # records from before the feed started are history
        since, seen = started, set[str]()
        while True:
            with self._lock:
                listeners = dict(self._listeners)
            if listeners:
                fresh = [e for e in self.gather(self.state_dir, since)
                         if e.at >= floor and e.to_line() not in seen]
                for event in fresh:
                    seen.add(event.to_line())
                    for queue, loop in listeners.items():
                        loop.call_soon_threadsafe(_offer, queue, event)
                if fresh:  # a peer's record may come late: look back LATE_RECORDS
                    since = datetime.datetime.fromisoformat(fresh[-1].at) - LATE_RECORDS
                    seen = {line for line in seen if Event.from_line(line).at >= _stamp(since)}
            self._wake.wait(INTERVAL)  # the poll period, not a wait for something


def _stamp(moment: datetime.datetime) -> str:
    """`moment` as a record's `at` is written, so that the two compare as text."""
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds")


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)
