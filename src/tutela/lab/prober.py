"""The client's view of an outage: fetch a URL every 10 ms and report the longest gap
between two good answers. Runs inside the lab's client namespace.

`python -m tutela.lab.prober URL EXPECTED` prints "probing" once its first probe is under
way, runs until stdin closes or SIGTERM, then prints JSON:
{"longest_gap": seconds, "answers": n, "failures": n}. `measure_outage` (on the host)
drives it: the fault strikes only after "probing", however long the start took.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import time
import urllib.request

PERIOD = 0.01
TIMEOUT = 0.1
"""Seconds a fetch may take before it counts as failed. A fetch sent to the old owner's MAC
just before the address moved waits this long, so it bounds how much the measurement can
add to an outage; a LAN answers in milliseconds."""


def probe(url: str, expected: str, stop: threading.Event,
          probing: threading.Event | None = None) -> dict[str, float]:
    last_good = time.monotonic()
    if probing is not None:
        probing.set()
    longest = answers = failures = 0.0
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while not stop.is_set():
        started = time.monotonic()
        try:
            with opener.open(url, timeout=TIMEOUT) as response:
                good = response.read().decode() == expected
        except (OSError, http.client.HTTPException):  # refused, reset, cut short: all outage
            good = False
        now = time.monotonic()
        if good:
            longest = max(longest, now - last_good)
            last_good = now
            answers += 1
        else:
            failures += 1
        stop.wait(max(0.0, PERIOD - (now - started)))  # the probing period
    return {"longest_gap": round(longest, 4), "answers": answers, "failures": failures}


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
