"""An HTTPS load on the API of lab nodes, for `bench/failover.py --api-load N`.

Run in the lab's client namespace (only lab addresses): N threads, each asking every
target in turn for its status and its last 50 events, as fast as the answers come (one
request at a time per thread: the load is bounded by N). A node that is off counts as a
failed request and is asked again. On SIGTERM it prints what it did as one JSON object.

    python bench/api_load.py --connections 8 TARGETS.json
TARGETS.json: [{"url": "https://198.51.100.11:9443", "token": "tta_...", "cacert": "..."}]
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REQUEST_TIMEOUT = 2.0
PATHS = ("/api/v1/status", "/api/v1/events?limit=50")
MAX_CONNECTIONS = 64


class Load:
    def __init__(self, targets: list[dict[str, Any]]) -> None:
        self.targets = targets
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered = 0
        self.failed = 0

    def worker(self) -> None:
        clients = [httpx.Client(base_url=t["url"], timeout=REQUEST_TIMEOUT,
                                verify=ssl.create_default_context(cafile=t["cacert"]),
                                headers={"Authorization": f"Bearer {t['token']}"})
                   for t in self.targets]
        while not self.stop.is_set():
            for client in clients:
                for path in PATHS:
                    self._count(self._ask(client, path))

    @staticmethod
    def _ask(client: httpx.Client, path: str) -> bool:
        try:
            return client.get(path).status_code == 200
        except httpx.HTTPError:
            return False

    def _count(self, answered: bool) -> None:
        with self.lock:
            if answered:
                self.answered += 1
            else:
                self.failed += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("targets", type=Path)
    args = parser.parse_args()
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        sys.exit(f"--connections: 1 to {MAX_CONNECTIONS}")
    load = Load(json.loads(args.targets.read_text()))
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    started = time.monotonic()
    threads = [threading.Thread(target=load.worker, daemon=True)
               for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    load.stop.wait()
    seconds = time.monotonic() - started
    print(json.dumps({"connections": args.connections, "seconds": round(seconds, 1),
                      "answered": load.answered, "failed": load.failed,
                      "per_second": round(load.answered / seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
