"""tutelad's watchdog fence against a real FIFO speaking the /dev/watchdog protocol (as the
lab's emulated watchdog does): armed at once, petted well within its timeout, disarmed."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from pathlib import Path

from tutela.arbiter.timing import LeaseTiming
from tutela.daemon.watchdog import WatchdogFence


class FifoReader:
    """Reads the FIFO in a thread and keeps (monotonic time, bytes) of every write."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.writes: list[tuple[float, bytes]] = []
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.wait(0.005):  # polling the non-blocking FIFO
            try:
                data = os.read(self._fd, 1024)
            except BlockingIOError:
                continue
            if data:
                self.writes.append((time.monotonic(), data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)


def test_armed_at_acquire_petted_within_its_timeout_then_disarmed(tmp_path: Path) -> None:
    reader = FifoReader(tmp_path / "watchdog")
    held = {"end": 0.0}
    timing = LeaseTiming()

    async def scenario() -> None:
        fence = WatchdogFence(timing, lambda: True,
                              lambda: [held["end"]] if held["end"] else [],
                              lambda: bool(held["end"]), path=str(tmp_path / "watchdog"))
        fence.start()
        await asyncio.sleep(0.05)  # the loop is now in its long disarmed sleep
        held["end"] = time.monotonic() + 60  # a lease won; the acquire arms at once
        fence.ensure_armed()
        await asyncio.sleep(1.0)  # one second of pets to look at
        held["end"] = 0.0  # released and out of service
        deadline = time.monotonic() + 5
        while fence.armed:  # the next check disarms it
            assert time.monotonic() < deadline, "the fence stayed armed"
            await asyncio.sleep(0.01)
        await fence.stop()

    try:
        asyncio.run(scenario())
    finally:
        reader.close()
    data = b"".join(chunk for _, chunk in reader.writes)
    assert data.startswith(b"T0.4\n")
    assert data.endswith(b"V")
    times = [t for t, _ in reader.writes]
    gaps = [b - a for a, b in itertools.pairwise(times)][:-1]  # before the disarm
    assert len(times) >= 5
    assert max(gaps) < timing.watchdog_timeout, gaps


def test_starves_when_the_lease_runs_short(tmp_path: Path) -> None:
    reader = FifoReader(tmp_path / "watchdog")
    timing = LeaseTiming()
    end = {"at": time.monotonic() + 60}

    async def scenario() -> None:
        fence = WatchdogFence(timing, lambda: True, lambda: [end["at"]], lambda: True,
                              path=str(tmp_path / "watchdog"))
        fence.start()
        fence.ensure_armed()
        await asyncio.sleep(0.3)
        end["at"] = time.monotonic() + timing.watchdog_timeout / 2  # renewals stopped
        deadline = time.monotonic() + 5
        while fence.status()["petting"]:  # the loop notices within a pet period
            assert time.monotonic() < deadline, "the fence kept petting"
            await asyncio.sleep(0.01)
        count = len(reader.writes)
        await asyncio.sleep(0.6)  # no pet may follow: the watchdog must fire
        assert len(reader.writes) == count
        await fence.stop()

    try:
        asyncio.run(scenario())
    finally:
        reader.close()
