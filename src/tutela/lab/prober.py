"""The client's view of an outage: start a fetch of a URL every 10 ms and report the longest
gap between two good answers. Runs inside the lab's client namespace.

Fetches overlap: each runs on a thread of its own, so a fetch that waits for an answer
that will never come (sent to the old owner's MAC just before the address moved, or to a
frozen node) does not hold up the ones after it. The first fetch started once the service
answers again gets the next good answer, so the measurement adds at most one period and a
round trip to an outage. (A prober that waited for each fetch in turn added up to its whole
timeout: outages then fell on steps of 0.11 s.)

`python -m tutela.lab.prober URL EXPECTED` prints "probing" once its first probe is under
way, runs until stdin closes or SIGTERM, then prints JSON:
{"longest_gap": seconds, "answers": n, "failures": n}. `measure_outage` (on the host)
drives it: the fault strikes only after "probing", however long the start took.
"""

from __future__ import annotations

import http.client
import itertools
import json
import signal
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

PERIOD = 0.01
"""Seconds between the starts of two fetches."""
TIMEOUT = 0.1
"""Seconds a fetch may wait (to connect, then for the answer) before it counts as failed;
a LAN answers in milliseconds."""
IN_FLIGHT = 64
"""Fetches that may be under way at once: a fetch that fails takes at most about two
TIMEOUTs (connect, then read), twenty periods, so this is never the limit."""


class Answers:
    """Good answers by the time they came, and the count of failed fetches."""

    def __init__(self, since: float) -> None:
        self._lock = threading.Lock()
        self._good = [since]
        self.failures = 0

    def add(self, good: bool, at: float | None = None) -> None:
        """A fetch's outcome, as it came `at` (now by default)."""
        now = time.monotonic() if at is None else at
        with self._lock:
            if good:
                self._good.append(now)
            else:
                self.failures += 1

    def summary(self) -> dict[str, float]:
        with self._lock:
            times = sorted(self._good)
            failures = self.failures
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        return {"longest_gap": round(max(gaps, default=0.0), 4),
                "answers": len(times) - 1, "failures": failures}


def fetch(opener: urllib.request.OpenerDirector, url: str, expected: str,
          timeout: float = TIMEOUT) -> bool:
    """One fetch on a connection of its own: whether it brought `expected` in time."""
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.read().decode() == expected)
    except (OSError, http.client.HTTPException):  # refused, reset, cut short: all outage
        return False


def probe(url: str, expected: str, stop: threading.Event,
          probing: threading.Event | None = None) -> dict[str, float]:
    answers = Answers(time.monotonic())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    if probing is not None:
        probing.set()
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        next_start = time.monotonic()
        while not stop.is_set():
            pool.submit(lambda: answers.add(fetch(opener, url, expected)))
            # a prober held up (a starved CPU) starts again from now, not with a burst
            next_start = max(next_start + PERIOD, time.monotonic())
            stop.wait(max(0.0, next_start - time.monotonic()))  # the probing period
    return answers.summary()


def main() -> None:
    url, expected = sys.argv[1], sys.argv[2].encode().decode("unicode_escape")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    def stop_at_end_of_input() -> None:
        sys.stdin.read()
        stop.set()

    probing, result = threading.Event(), {}
    worker = threading.Thread(target=lambda: result.update(probe(url, expected, stop, probing)))
    worker.start()
    probing.wait()
    print("probing", flush=True)
    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    worker.join()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
