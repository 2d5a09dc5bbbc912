"""Which records go to which target, and their delivery off the event loop.

The journal tells `Dispatcher.record` every record in the event loop; it only filters and
appends to each chosen target's `Outbox` (a bounded deque: when full the oldest record is
dropped, counted and logged) and returns. Each target has a thread of its own that delivers
its records in order, one at a time, retrying a failed one after 1, 2, 4, 8, 16... seconds
(at most BACKOFF_MAX) up to the target's `retries`; so a target that hangs holds up only
its own later records, never the loop, a failover, or another target.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tutela.journal.events import SEVERITIES, Event
from tutela.model.config import ClusterConfig, Notification
from tutela.notifications.channels import DeliveryFailed, body_of, deliver

log = logging.getLogger("tutela.notifications")
QUEUE_LIMIT = 256
"""Records waiting per target; beyond it the oldest is dropped (and counted)."""
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
TEST_KIND = "notify.test"
Deliver = Callable[[Notification, bytes], None]


def backoff(retry: int) -> float:
    """Seconds before retry number `retry` (1, 2, ...): 1, 2, 4, 8... at most 60."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (retry - 1)))


def wanted(target: Notification, event: Event) -> bool:
    """Whether `target` is sent `event`: its kind matches one of the target's kinds ('*',
    the kind itself, or PREFIX.*) and its severity is at least min_severity."""
    if SEVERITIES.index(event.severity) < SEVERITIES.index(target.min_severity):
        return False
    return any(p in ("*", event.kind) or (p.endswith(".*") and event.kind.startswith(p[:-1]))
               for p in target.kinds)


class Outbox:
    """One target's waiting records and the thread that delivers them."""

    def __init__(self, target: Notification, send: Deliver = deliver,
                 limit: int = QUEUE_LIMIT) -> None:
        self.target = target
        self.send = send
        self.waiting: deque[bytes] = deque()
        self.limit = limit
        self.dropped = 0
        self.stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"notify-{target.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, body: bytes) -> None:
        """Queue `body` (never waits on a delivery)."""
        with self._changed:
            if len(self.waiting) >= self.limit:
                self.waiting.popleft()
                self.dropped += 1
                log.warning("notification %s: %d records waiting, the oldest dropped (%d "
                            "dropped so far)", self.target.name, self.limit, self.dropped)
            self.waiting.append(body)
            self._changed.notify()

    def stop(self) -> None:
        """End the thread after the delivery it is in (the target left the configuration)."""
        with self._changed:
            self.stopped = True
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self.waiting or self.stopped)
                if self.stopped:
                    return
                body = self.waiting.popleft()
            self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        """Try, then retry after backoff(1), backoff(2)... until retries are spent."""
        name, retries = self.target.name, self.target.retries
        for retry in range(retries + 1):
            try:
                self.send(self.target, body)
            except DeliveryFailed as error:
                if retry == retries:
                    log.error("notification %s: not delivered after %d attempt(s), given "
                              "up: %s", name, retries + 1, error)
                    return
                delay = backoff(retry + 1)
                log.warning("notification %s: not delivered (attempt %d of %d), retrying in "
                            "%gs: %s", name, retry + 1, retries + 1, delay, error)
                with self._changed:  # the backoff's wait; a stop ends it
                    if self._changed.wait_for(lambda: self.stopped, delay):
                        return
            else:
                log.info("notification %s: delivered%s", name,
                         f" (attempt {retry + 1})" if retry else "")
                return


class Dispatcher:
    """The journal's listener: the records each configured target wants, to its Outbox.
    `config` gives the current configuration (read at each record, so a change of the
    notifications takes effect at the next record)."""

    def __init__(self, config: Callable[[], ClusterConfig], send: Deliver = deliver) -> None:
        self._config = config
        self._send = send
        self._targets: tuple[Notification, ...] = ()
        self.outboxes: dict[str, Outbox] = {}

    def record(self, event: Event) -> None:
        """Called in the event loop for each record: filter and queue, nothing more; a
        fault here is logged, never raised into the part that emitted the record."""
        try:
            self._queue(event)
        except Exception:  # a notification bug must not stop a failover
            log.exception("notifications: record %s of %s not queued", event.kind,
                          event.subject)

    def _queue(self, event: Event) -> None:
        config = self._config()
        self._follow(config.notifications)
        body: bytes | None = None
        for target in config.notifications:
            if wanted(target, event):
                body = body or body_of(event.to_json(), config.name)
                self.outboxes[target.name].put(body)

    def _follow(self, targets: tuple[Notification, ...]) -> None:
        """Outboxes for the targets configured now: a changed or removed one's thread ends."""
        if targets is self._targets:
            return
        for name, outbox in list(self.outboxes.items()):
            if outbox.target not in targets:
                outbox.stop()
                del self.outboxes[name]
        for target in targets:
            if target.name not in self.outboxes:
                self.outboxes[target.name] = Outbox(target, self._send)
                self.outboxes[target.name].start()
        self._targets = targets


@dataclass(frozen=True)
class TestResult:
    name: str
    kind: str
    delivered: bool
    error: str = ""
    seconds: float = 0.0


def test_record(node: str, target: str, now: datetime.datetime) -> Event:
    """The record `tutela notify test` sends (kind notify.test, not a journal kind)."""
    return Event(now.astimezone(datetime.UTC).isoformat(timespec="milliseconds"), node,
                 TEST_KIND, target, "info", "a test record sent by 'tutela notify test'")


def send_tests(config: ClusterConfig, node: str, targets: Iterable[Notification],
               send: Deliver = deliver) -> list[TestResult]:
    """One test record to each target at once, one attempt each (no retries): results
    in the order of `targets`."""
    def one(target: Notification) -> TestResult:
        started = datetime.datetime.now(datetime.UTC)
        body = body_of(test_record(node, target.name, started).to_json(), config.name)
        try:
            send(target, body)
        except DeliveryFailed as error:
            failure = str(error)
        else:
            failure = ""
        took = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
        return TestResult(target.name, target.kind, not failure, failure, round(took, 3))

    chosen = list(targets)
    if not chosen:
        return []
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        return list(pool.map(one, chosen))
