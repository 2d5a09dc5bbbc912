"""Every outage a client sees over a long run: fetch a URL every 50 ms and record each
stretch without a good answer. Runs inside the lab's client namespace (the chaos campaign).

`python -m tutela.lab.outages URL EXPECTED` prints "probing" once its first probe is under
way, runs until stdin closes or SIGTERM, then prints JSON:
{"outages": [[start, seconds], ...], "answers": n, "failures": n}, where an outage runs
from the last good answer before a failed fetch to the next good answer (start: Unix
time), and one still going at the end is cut off there. `tutela.lab.prober` measures one
fault's longest gap at 10 ms instead; over half an hour this coarser period keeps the
load low, at the cost of up to 50 ms on each outage.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.request

from tutela.lab.prober import fetch

PERIOD = 0.05
TIMEOUT = 0.25
"""Seconds a fetch may take before it counts as failed: a loaded lab answers well within
it, and a fetch caught by an address move costs at most this much extra outage."""


class OutageLog:
    """Folds fetch results, in time order, into outages."""

    def __init__(self, now: float) -> None:
        self.last_good = now
        self.failing = False
        self.outages: list[list[float]] = []
        self.answers = self.failures = 0

    def record(self, good: bool, now: float) -> None:
        if good:
            if self.failing:
                self.outages.append([round(self.last_good, 3), round(now - self.last_good, 3)])
            self.failing, self.last_good = False, now
            self.answers += 1
        else:
            self.failing = True
            self.failures += 1

    def finish(self, now: float) -> dict[str, object]:
        if self.failing:
            self.outages.append([round(self.last_good, 3), round(now - self.last_good, 3)])
        return {"outages": self.outages, "answers": self.answers, "failures": self.failures}


def run(url: str, expected: str, stop: threading.Event) -> dict[str, object]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    log = OutageLog(time.time())
    while not stop.is_set():
        started = time.monotonic()
        good = fetch(opener, url, expected, TIMEOUT)
        log.record(good, time.time())
        stop.wait(max(0.0, PERIOD - (time.monotonic() - started)))  # the probing period
    return log.finish(time.time())


def main() -> None:
    url, expected = sys.argv[1], sys.argv[2].encode().decode("unicode_escape")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the campaign stops us when it ends
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(run(url, expected, stop)))
    worker.start()
    print("probing", flush=True)

    def stop_at_end_of_input() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    worker.join()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
