"""Watches physical truth on every lab node while a test runs: an address or a mount held
by two nodes at the same instant is a split brain, and the checker records it.

It reads the kernel's state (addresses per network namespace, mounts per mount namespace).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tutela.lab import Lab

PERIOD = 0.05


@dataclass
class SplitBrainChecker:
    lab: Lab
    address: str
    mountpoint: str
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SplitBrainChecker:
        self._thread = threading.Thread(target=self._run, name="split-brain", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(PERIOD):
            self.sample()

    def sample(self) -> None:
        holders, mounted = [], []
        for node in self.lab.nodes:
            if self.lab.node_state(node) == "off":
                continue
            try:
                if self.address in self.lab.addresses(node):
                    holders.append(node)
                if any(m == self.mountpoint for _, m in self.lab.mounts(node)):
                    mounted.append(node)
            except Exception:  # noqa: BLE001 - a node powering off mid-read is no verdict
                continue
        self.samples += 1
        when = time.strftime("%H:%M:%S")
        if len(holders) > 1:
            self.violations.append(f"{when} {self.address} on {', '.join(holders)}")
        if len(mounted) > 1:
            self.violations.append(f"{when} {self.mountpoint} mounted on {', '.join(mounted)}")
