"""tutelad's watchdog fence against a real FIFO read as the lab's hardware reads a node's
watchdog (the lab's state machine, tutela.lab.watchdog): armed at once, petted, disarmed by
the magic close when nothing is held; starved, not disarmed, when a lease runs short, so
the watchdog fires.

No assertion here is on elapsed time: how often it pets is a speed (bench/), while what is
checked is what it writes, in which order, and what the watchdog does with it.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tutela import clock
from tutela.arbiter.timing import LeaseTiming
from tutela.daemon import watchdog as fence_module
from tutela.daemon.watchdog import WatchdogFence
from tutela.lab.watchdog import Event, Watchdog
from tutela.watchdog_pets import Petter, WatchdogPets

LOOK = 0.05
"""Seconds the reader waits for the FIFO before it looks at its clock and its stop flag."""


class EmulatedWatchdog:
    """The FIFO and the watchdog behind it: a thread reads every byte the fence writes and
    every close, feeds the lab's state machine and lets it expire, as hardwared does.
    `close()` drains: it returns once the FIFO is empty and no writer is left."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.data = bytearray()
        self.closes = 0
        self.events: list[Event] = []
        self._state = Watchdog()
        self._lock = threading.Lock()
        self._fd = self._open()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _open(self) -> int:
        """A fresh read end: it reports no hang-up until a writer came and went."""
        return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd], [], [], LOOK)
            self._expire()
            if not ready:  # empty, and no writer hung up: done once asked to stop
                if self._stop.is_set():
                    return
                continue
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            with self._lock:
                if data:
                    self.data += data
                    self.events += self._state.feed(data, time.monotonic())
                else:  # the writer closed: a fresh read end, the new one first
                    self.closes += 1
                    self.events += self._state.closed(time.monotonic())
                    old, self._fd = self._fd, self._open()
                    os.close(old)

    def _expire(self) -> None:
        with self._lock:
            if self._state.expire(time.monotonic()):
                self.events.append(("expired", {}))

    def pets(self) -> int:
        """Bytes written besides "T<seconds>\\n" commands and the magic "V"."""
        with self._lock:
            return len(re.sub(rb"T[^\n]*\n|V", b"", bytes(self.data)))

    def fired(self) -> bool:
        with self._lock:
            return ("expired", {}) in self.events

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)


class ObservedFence(WatchdogFence):
    """The fence, counting the checks of its loop (so a test can wait for the first)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.checks = 0

    def check(self) -> None:
        super().check()
        self.checks += 1


async def eventually(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait on the running loop (the fence's) until `condition` holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
def dog(tmp_path: Path) -> Path:
    return tmp_path / "watchdog"


@pytest.fixture(autouse=True)
def _idle_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disarmed, the loop sleeps for days: only arming itself can wake it up to pet."""
    monkeypatch.setattr(fence_module, "IDLE_CHECK", 1e6)


def test_armed_at_acquire_petted_then_disarmed_by_the_magic_close(dog: Path) -> None:
    device = EmulatedWatchdog(dog)
    held = {"end": 0.0}
    timing = LeaseTiming()

    async def scenario() -> None:
        fence = ObservedFence(timing, lambda: True,
                              lambda: [held["end"]] if held["end"] else [],
                              lambda: bool(held["end"]), path=str(dog))
        fence.start()
        await eventually(lambda: fence.checks, "the loop's first check")  # now asleep
        held["end"] = clock.now() + 60  # a lease won; the acquire arms at once
        fence.ensure_armed()
        await eventually(lambda: device.pets() >= 5, "five pets")  # the loop woke up
        held["end"] = 0.0  # released and out of service
        await eventually(lambda: not fence.armed, "the next check to disarm")
        await fence.stop()

    try:
        asyncio.run(scenario())
    finally:
        device.close()
    assert re.fullmatch(rb"T0\.4\n\.{5,}V", device.data), (bytes(device.data), device.events)
    assert device.closes == 1
    assert device.events[:2] == [("timeout", {"timeout": "0.4"}), ("armed", {"timeout": "0.4"})]
    assert device.events[-1] == ("disarmed", {})


def test_starves_the_watchdog_when_the_lease_runs_short(dog: Path) -> None:
    """Starving is not disarming: the device stays open, no byte follows, and it fires."""
    device = EmulatedWatchdog(dog)
    timing = LeaseTiming()
    end = {"at": clock.now() + 60}

    async def scenario() -> None:
        fence = WatchdogFence(timing, lambda: True, lambda: [end["at"]], lambda: True,
                              path=str(dog))
        fence.start()
        fence.ensure_armed()
        await eventually(lambda: device.pets() >= 2, "the fence to pet")
        end["at"] = clock.now() + timing.watchdog_timeout / 2  # renewals stopped
        await eventually(lambda: not fence.status()["petting"], "the fence to stop petting")
        assert fence.armed, "the watchdog was disarmed instead of starved"
        await eventually(device.fired, "the starved watchdog to fire")
        assert device.events[-1] == ("expired", {}), device.events  # no pet came after
        assert (device.closes, bytes(device.data[-1:])) == (0, b"."), "closed or magic-closed"
        assert fence.status()["armed"]
        await fence.stop()  # an orderly stop disarms (the node was not reset, in here)

    try:
        asyncio.run(scenario())
    finally:
        device.close()
    assert device.data.endswith(b"V") and device.closes == 1


def block_until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait, blocking the calling thread, until `condition` holds; fail after `timeout`.
    Called from a coroutine it holds the event loop up (a burst of work that does not
    yield, as a node restoring dozens of hierarchies at once): the loop's checks cannot
    run meanwhile, so whatever happens is the pet process's doing."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)


def test_pets_go_on_while_the_event_loop_is_held_up(dog: Path) -> None:
    """A held-up loop renews nothing, but a lease with a minute left allows pets for most
    of it: the pets come from their own process, and the watchdog does not fire."""
    device = EmulatedWatchdog(dog)
    timing = LeaseTiming()

    async def scenario() -> None:
        fence = ObservedFence(timing, lambda: True, lambda: [clock.now() + 60],
                              lambda: True, path=str(dog))
        fence.start()
        fence.ensure_armed()
        await eventually(lambda: fence.checks, "the loop's first check")
        checks, pets = fence.checks, device.pets()
        # Three timeouts' worth of pets: with pets from the loop, the watchdog would fire.
        block_until(lambda: device.pets() >= pets + 12, "pets while the loop is held")
        assert fence.checks == checks, "the loop ran: the test did not hold it up"
        assert not device.fired(), device.events
        await fence.stop()

    try:
        asyncio.run(scenario())
    finally:
        device.close()
    assert device.events[-1] == ("disarmed", {}), device.events


def test_a_held_up_loop_stops_the_pets_before_its_lease_ends(dog: Path) -> None:
    """The process pets only up to the limit the loop last set (W before the earliest lease
    end): a loop that stays stuck renews nothing, so its node is reset, as before."""
    device = EmulatedWatchdog(dog)
    timing = LeaseTiming()
    end = clock.now() + 2 * timing.watchdog_timeout  # no renewal moves it on

    async def scenario() -> None:
        fence = WatchdogFence(timing, lambda: True, lambda: [end], lambda: True,
                              path=str(dog))
        fence.start()
        fence.ensure_armed()
        block_until(device.fired, "the watchdog to fire")
        assert fence.status()["armed"]
        await fence.stop()

    try:
        asyncio.run(scenario())
    finally:
        device.close()
    assert ("expired", {}) in device.events


def test_the_pet_process_never_pets_past_the_limit(dog: Path) -> None:
    """However late it wakes up, it reads the clock right before it writes: a pet due
    before the limit and written after it is not written at all."""
    device = EmulatedWatchdog(dog)
    try:
        petter = Petter(str(dog))
        assert petter.handle("arm 0.4") == "ok 0.4"
        petter.next_pet = clock.now()  # a pet is due
        petter.handle(f"until {clock.now() - 0.001!r}")  # and the limit has just passed
        petter.pet_if_due()
        petter.handle(f"until {clock.now() + 60!r}")
        petter.pet_if_due()
        assert petter.handle("disarm") == "ok"
    finally:
        device.close()
    assert re.fullmatch(rb"T0\.4\n\.V", device.data), bytes(device.data)


@dataclass
class Petting:
    device: EmulatedWatchdog
    pets: WatchdogPets
    process: subprocess.Popen[bytes]


@pytest.fixture
def petting(dog: Path) -> Iterator[Petting]:
    """A pet process started as tutelad starts it, the watchdog armed and pets allowed for a
    minute; stopped and the FIFO drained at the end."""
    device = EmulatedWatchdog(dog)
    pets = WatchdogPets(str(dog))
    try:
        pets.start()
        assert pets.arm(0.4) == 0.4
        pets.allow_until(clock.now() + 60)
        process = pets._process  # the tests signal and kill what tutelad started
        assert process is not None
        yield Petting(device, pets, process)
    finally:
        pets.stop()
        device.close()


def test_an_armed_watchdog_fires_when_tutelad_is_gone(petting: Petting) -> None:
    """tutelad's end of the socket closes (it exited or died) while armed: the process
    exits without the magic close, and the watchdog fires, as when tutelad held it."""
    device = petting.device
    block_until(lambda: device.pets() >= 2, "two pets")
    petting.pets.stop()  # as a dying tutelad's socket closes; the process ends
    block_until(device.fired, "the watchdog to fire")
    assert not device.data.endswith(b"V"), bytes(device.data)


def test_a_dead_pet_process_leaves_the_watchdog_to_fire_and_says_so(petting: Petting) -> None:
    petting.process.kill()
    petting.process.wait()
    block_until(petting.device.fired, "the watchdog to fire")
    with pytest.raises(OSError, match=r"pet process .* has gone"):
        petting.pets.allow_until(clock.now() + 60)
    assert not petting.pets.armed


def test_the_pet_process_outlives_signals_meant_for_tutelad(petting: Petting) -> None:
    """Ctrl-C in tutelad's terminal or a TERM to its process group reaches the pet process
    too: it must go on petting (a dead pet process resets an armed node)."""
    device = petting.device
    block_until(lambda: device.pets() >= 1, "a pet")  # past its start: signals set
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        petting.process.send_signal(number)
    pets_then = device.pets()
    block_until(lambda: device.pets() >= pets_then + 4, "pets after the signals")
    assert petting.process.poll() is None and not device.fired()
    petting.pets.disarm()
    petting.pets.stop()
    # The process has written and closed; the reader thread may not have read it yet.
    block_until(lambda: device.closes >= 1, "the device closed")
    assert device.data.endswith(b"V"), bytes(device.data)
