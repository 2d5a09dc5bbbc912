"""tutela.lab.prober: the client's measure of an outage in the lab's benchmarks and demo."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import wait_until
from tutela.lab import outages, prober

GREETING = "hello\n"
DEADLINE = 10.0


class Service:
    """A web server on the loopback that, until `answering`, takes requests and never
    answers them (a packet sent to a node that is gone), and counts how many of them the
    client waits for at once (a request is held until the client gives up on it)."""

    def __init__(self) -> None:
        self.answering = threading.Event()
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.held = self.most_held_at_once = self.answered = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not service.answering.is_set():
                    service.hold(self.connection)
                    return
                with service.lock:
                    service.answered += 1
                body = GREETING.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def hold(self, connection: socket.socket) -> None:
        with self.lock:
            self.held += 1
            self.most_held_at_once = max(self.most_held_at_once, self.held)
        # The client's timeout closes its end: the connection reads as ended.
        ended = time.monotonic() + DEADLINE
        while not self.released.is_set() and time.monotonic() < ended:
            if select.select([connection], [], [], 0.01)[0]:
                break
        with self.lock:
            self.held -= 1


@pytest.fixture
def service() -> Iterator[Service]:
    made = Service()
    serving = threading.Thread(target=made.server.serve_forever)
    serving.start()
    try:
        yield made
    finally:
        made.released.set()
        made.server.shutdown()
        serving.join()
        made.server.server_close()


def test_the_longest_gap_is_between_good_answers_by_their_time() -> None:
    answers = prober.Answers(since=10.0)
    for at, good in [(10.01, True), (10.05, False), (10.4, True), (10.3, True), (10.41, True)]:
        answers.add(good, at=at)
    assert answers.summary() == {"longest_gap": 0.29, "answers": 4, "failures": 1}


@contextlib.contextmanager
def running(probe: Callable[[threading.Event], Mapping[str, object]],
            result: dict[str, object]) -> Iterator[None]:
    """Run `probe` in a thread for the block; its outcome lands in `result`."""
    stop = threading.Event()
    thread = threading.Thread(target=lambda: result.update(probe(stop)))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_a_fetch_waiting_for_a_lost_answer_does_not_hold_up_the_next(
        service: Service) -> None:
    result: dict[str, object] = {}
    with running(lambda stop: prober.probe(service.url, GREETING, stop), result):
        # While the service is down, fetches go on starting beside those still waiting.
        wait_until(lambda: service.most_held_at_once >= 3, DEADLINE,
                   what="three fetches waiting at once")
        service.answering.set()
        wait_until(lambda: service.answered >= 3, DEADLINE, what="three good answers")
    assert result["answers"] >= 3  # type: ignore[operator]
    assert result["failures"] >= 3  # type: ignore[operator]


def test_the_campaign_prober_fetches_the_same_way(service: Service) -> None:
    """tutela.lab.outages (the chaos campaign's client) shares the prober's fetch."""
    service.answering.set()
    result: dict[str, object] = {}
    with running(lambda stop: outages.run(service.url, GREETING, stop), result):
        wait_until(lambda: service.answered >= 3, DEADLINE, what="three good answers")
    assert result["outages"] == [] and result["failures"] == 0
