"""The shared-disk voter on a real block device: carries out the sans-IO core's
(`tutela.arbiter.disk_voter.DiskVoter`) writes and reads with O_DIRECT and O_DSYNC, in one
worker thread, so the event loop never waits on the disk (docs/leases.md, "A shared-disk
voter", "The driver").

One I/O at a time reaches the device: an I/O that does not return within the core's
`io_timeout` is reported failed, and until its thread returns every new one fails at once
instead of queueing behind it (so one process's writes never overtake each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
import mmap
import os
import secrets
import stat
import struct
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tutela import clock
from tutela.arbiter.disk_voter import (
    Answer,
    DiskArea,
    DiskEffect,
    DiskVoter,
    ReadArea,
    SectorError,
    WriteSlot,
    decode_area,
)
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming
from tutela.lcm.messenger import spawn
from tutela.model.config import DiskVoter as DiskVoterSettings

log = logging.getLogger("tutela.disk_voter")
BLKSSZGET = 0x1268
"""ioctl: the device's logical sector size (int)."""
BLKGETSIZE64 = 0x80081272
"""ioctl: the device's size in bytes (u64)."""
PROBE_EVERY = 2.0
"""Seconds without I/O after which the driver reads the area on its own, so that `tutela
status` tells a failing disk before a failover needs it."""
MAX_SLOTS = 64
"""`tutela disk init` clears this many slots, so that nodes added later find theirs empty."""


class DeviceProblem(Exception):
    """A device that cannot hold the area; the message says what and how to fix it."""


def area_of(settings: DiskVoterSettings) -> DiskArea:
    return DiskArea(bytes.fromhex(settings.id), settings.slots, settings.sector_size)


# -- the device (blocking: the worker thread and `tutela disk` call these) ------------------


def open_device(path: str, offset: int, length: int, sector_size: int,
                exclusive: bool = False) -> int:
    """An O_DIRECT | O_DSYNC descriptor of `path`, after checking that it is a block device
    that holds `length` bytes from `offset` in sectors no larger than `sector_size`.
    `exclusive` (O_EXCL) fails on a device that is mounted or held by LVM, md or swap."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DeviceProblem(f"{path}: no such device on this node") from None
    if not stat.S_ISBLK(mode):
        raise DeviceProblem(f"{path} is not a block device; name the shared LUN (a path "
                            "under /dev/disk/by-id/)")
    flags = os.O_RDWR | os.O_DIRECT | os.O_DSYNC | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | (os.O_EXCL if exclusive else 0))
    except OSError as error:
        if error.errno == errno.EBUSY:
            raise DeviceProblem(f"{path} is in use (mounted, a swap area, or held by LVM, "
                                "md or multipath): a disk voter needs a LUN or partition "
                                "of its own") from None
        raise DeviceProblem(f"{path}: {error.strerror}") from None
    try:
        _check_geometry(fd, path, offset + length, sector_size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def logical_sector_size(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, bytes(4)))[0])


def _check_geometry(fd: int, path: str, end: int, sector_size: int) -> None:
    logical = logical_sector_size(fd)
    size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, bytes(8)))[0]
    if logical > sector_size:
        raise DeviceProblem(f"{path} has {logical}-byte sectors, larger than the slots' "
                            f"{sector_size}: set disk_voter.sector_size to {logical}")
    if size < end:
        raise DeviceProblem(f"{path} has {size} bytes, the area needs {end} (offset plus "
                            "one slot per node): use a larger LUN or a smaller offset")


def write_at(fd: int, offset: int, data: bytes) -> None:
    """Write `data` at `offset` through a page-aligned buffer (O_DIRECT needs one)."""
    with _aligned(len(data)) as buffer:
        buffer[:len(data)] = data
        done = os.pwritev(fd, [memoryview(buffer)[:len(data)]], offset)
    if done != len(data):
        raise OSError(errno.EIO, f"short write: {done} of {len(data)} bytes")


def read_at(fd: int, offset: int, length: int) -> bytes:
    with _aligned(length) as buffer:
        done = os.preadv(fd, [memoryview(buffer)[:length]], offset)
        if done != length:
            raise OSError(errno.EIO, f"short read: {done} of {length} bytes (past the end?)")
        return bytes(buffer[:length])


@contextlib.contextmanager
def _aligned(length: int) -> Iterator[mmap.mmap]:
    pages = max(1, -(-length // mmap.PAGESIZE))
    buffer = mmap.mmap(-1, pages * mmap.PAGESIZE)
    try:
        yield buffer
    finally:
        buffer.close()


def signature(path: str) -> str | None:
    """What `blkid -p` finds on the device (a filesystem, LVM, a partition table), if any."""
    result = subprocess.run(["blkid", "-p", "-o", "export", path], capture_output=True,
                            text=True, check=False, timeout=30)
    fields = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
    if "TYPE" in fields:
        return f"data of type {fields['TYPE']}"
    if "PTTYPE" in fields:
        return f"a partition table ({fields['PTTYPE']})"
    return None


def command_timeout(path: str) -> float | None:
    """The SCSI command timeout of the device (/sys/block/DEV/device/timeout), if it has one."""
    name = os.path.basename(os.path.realpath(path))
    for candidate in (f"/sys/class/block/{name}/device/timeout",
                      f"/sys/class/block/{name}/../device/timeout"):
        with contextlib.suppress(OSError, ValueError), open(candidate) as f:
            return float(f.read().strip())
    return None


class Device:
    """The area on one node's path to the LUN; used only from the driver's worker thread.
    A failed I/O closes the descriptor: the next one opens the path afresh (a path that
    came back, a renamed multipath device)."""

    def __init__(self, path: str, offset: int, length: int, sector_size: int) -> None:
        self.path, self.offset, self.length, self.sector_size = path, offset, length, sector_size
        self._fd: int | None = None

    def write(self, offset: int, data: bytes) -> None:
        self._io(lambda fd: write_at(fd, self.offset + offset, data))

    def read(self, offset: int, length: int) -> bytes:
        result: list[bytes] = []
        self._io(lambda fd: result.append(read_at(fd, self.offset + offset, length)))
        return result[0]

    def _io(self, action: Callable[[int], None]) -> None:
        if self._fd is None:
            self._fd = open_device(self.path, self.offset, self.length, self.sector_size)
        try:
            action(self._fd)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# -- the driver (event loop) ----------------------------------------------------------------


@dataclass
class DiskStats:
    """What `tutela status` shows of the disk voter on this node."""

    ok: bool | None = None
    """The last I/O succeeded; None before the first."""
    error: str = ""
    last_ok_at: float | None = None
    failures: int = 0
    grants: int = 0
    refusals: int = 0


class DiskVoterDriver:
    """This node's side of the disk voter: requests from its holder in, the disk's votes
    (`AcquireReply`) out through `on_answer`."""

    def __init__(self, settings: DiskVoterSettings, node: str, timing: LeaseTiming,
                 on_answer: Callable[[AcquireReply], None]) -> None:
        self.settings = settings
        self.voter_id = settings.voter_id
        area = area_of(settings)
        path = settings.device_of(node)
        assert path is not None  # the model gives every slot a device
        # A fresh incarnation for each driver: no two writes of any life leave equal bytes.
        self.core = DiskVoter(self.voter_id, area, node, timing, incarnation=secrets.randbits(63),
                              started_at=clock.now(), io_limit=settings.io_limit)
        self.device = Device(path, settings.offset, area.length, settings.sector_size)
        self._field = (f"disk_voter.devices.{node}" if node in settings.devices
                       else "disk_voter.device")
        """Where the path comes from, named in a problem with the device."""
        self.stats = DiskStats()
        self._on_answer = on_answer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk-voter")
        self._busy = False
        """An I/O is in the worker thread (the core's, or a probe)."""
        self._probing = False
        self._queued: WriteSlot | ReadArea | None = None
        """The core's I/O that came during a probe: it starts when the probe returns."""
        self._last_io = clock.now()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._warn_timeout(path)

    def _warn_timeout(self, path: str) -> None:
        timeout = command_timeout(path)
        if timeout is not None and timeout > self.settings.io_limit:
            log.warning("%s: the device's command timeout is %gs, above disk_voter.io_limit "
                        "%gs: a write may land later than the disk voter assumes; lower it "
                        "(echo %d > /sys/block/DEV/device/timeout, by a udev rule) or raise "
                        "io_limit", path, timeout, self.settings.io_limit,
                        int(self.settings.io_limit))

    def start(self) -> None:
        self._tasks = [spawn(self._tick_loop(), name="disk-voter"),
                       spawn(self._probe_loop(), name="disk-voter-probe")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A stuck I/O keeps its thread; nothing waits for it.
        self._executor.shutdown(wait=False, cancel_futures=True)

    def deliver(self, message: AcquireRequest | Release) -> None:
        now = clock.now()
        if isinstance(message, AcquireRequest):
            self._run(self.core.on_acquire(message, now))
        else:
            self._run(self.core.on_release(message, now))

    def status(self) -> dict[str, object]:
        now = clock.now()
        core, stats = self.core, self.stats
        starting = now < core.ready_at
        state = ("starting" if starting else "unknown" if stats.ok is None
                 else "ok" if stats.ok else "failing")
        return {"voter": self.voter_id, "device": self.device.path, "slot": core.slot,
                "state": state, "error": stats.error,
                "ready_in": round(max(0.0, core.ready_at - now), 3),
                "last_ok": None if stats.last_ok_at is None
                else round(now - stats.last_ok_at, 3),
                "claims": sorted(core.state.claims), "failures": stats.failures,
                "grants": stats.grants, "refusals": stats.refusals,
                "others": {core.area.nodes[slot]: {
                    "claims": list(seen.record.claims) if seen.record else [],
                    "unchanged_for": round(now - seen.since, 3)}
                    for slot, seen in sorted(core.state.seen.items())}}

    # -- effects ----------------------------------------------------------------------

    def _run(self, effects: list[DiskEffect]) -> None:
        for effect in effects:
            if isinstance(effect, Answer):
                self.stats.grants += bool(effect.reply.granted)
                self.stats.refusals += bool(effect.reply.refused)
                self._on_answer(effect.reply)
            else:
                self._submit(effect)
        self._wake.set()

    def _submit(self, effect: WriteSlot | ReadArea) -> None:
        loop = asyncio.get_running_loop()
        if self._busy and self._probing and self._queued is None:
            self._queued = effect
            return
        if self._busy:  # the last I/O is stuck in the device: never two at once
            loop.call_soon(self._done, effect, None, "the previous I/O has not returned")
            return
        self._busy, self._last_io = True, clock.now()
        job: Callable[[], bytes | None] = (
            functools.partial(self.device.write, effect.offset, effect.data)
            if isinstance(effect, WriteSlot)
            else functools.partial(self.device.read, effect.offset, effect.length))
        future = self._executor.submit(job)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._idle))
        spawn(self._await(effect, asyncio.wrap_future(future)), name="disk-io")

    def _idle(self) -> None:
        self._busy = self._probing = False
        queued, self._queued = self._queued, None
        if queued is not None:
            self._submit(queued)

    async def _probe_loop(self) -> None:
        """Read the area when nothing else did for PROBE_EVERY, for status only: the core
        decides nothing on it."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PROBE_EVERY / 4)
            now = clock.now()
            if self._busy or now < self.core.ready_at or now - self._last_io < PROBE_EVERY:
                continue
            self._busy, self._probing, self._last_io = True, True, now
            future = self._executor.submit(self.device.read, 0, self.device.length)
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._idle))
            waited = asyncio.wrap_future(future)
            try:
                async with asyncio.timeout(self.core.io_timeout):
                    data = await asyncio.shield(waited)
            except TimeoutError:
                waited.add_done_callback(_ignore_result)
                self._probe_stuck(f"no answer within {self.core.io_timeout:g}s")
            except DeviceProblem as error:
                self._note_failure(f"{self._field}: {error}")
            except OSError as error:
                self._note_failure(str(error))
            else:
                self._note_read(data, clock.now())

    def _probe_stuck(self, error: str) -> None:
        """The probe hangs in the device: fail the core's I/O waiting behind it at once."""
        self._note_failure(error)
        queued, self._queued = self._queued, None
        if queued is not None:
            self._done(queued, None, "the previous I/O has not returned")

    async def _await(self, effect: WriteSlot | ReadArea,
                     future: asyncio.Future[bytes | None]) -> None:
        try:
            async with asyncio.timeout(self.core.io_timeout):
                data = await asyncio.shield(future)
        except TimeoutError:
            future.add_done_callback(_ignore_result)
            self._done(effect, None, f"no answer within {self.core.io_timeout:g}s")
        except DeviceProblem as error:
            self._done(effect, None, f"{self._field}: {error}")
        except OSError as error:
            self._done(effect, None, str(error))
        else:
            self._done(effect, data if isinstance(effect, ReadArea) else b"", "")

    def _done(self, effect: WriteSlot | ReadArea, data: bytes | None, error: str) -> None:
        now = clock.now()
        if error:
            self._note_failure(error)
        elif isinstance(effect, ReadArea) and data is not None:
            self._note_read(data, now)
        if isinstance(effect, WriteSlot):
            self._run(self.core.on_written(not error, now))
        else:
            self._run(self.core.on_read(None if error else data, now))

    def _note_failure(self, error: str) -> None:
        if self.stats.ok is not False:
            log.warning("disk voter %s on %s: I/O failed (%s); no vote from the disk until "
                        "it answers again", self.voter_id, self.device.path, error)
        self.stats.ok, self.stats.error = False, error
        self.stats.failures += 1

    def _note_read(self, data: bytes, now: float) -> None:
        try:
            decode_area(self.core.area, data)
        except SectorError as error:
            self._note_failure(f"{error}: another cluster's or program's data, or a torn "
                               "write; check disk_voter.device on every node")
            return
        if self.stats.ok is False:
            log.info("disk voter %s on %s answers again", self.voter_id, self.device.path)
        self.stats.ok, self.stats.error, self.stats.last_ok_at = True, "", now

    async def _tick_loop(self) -> None:
        while True:
            now = clock.now()
            deadline = self.core.next_deadline()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if deadline is None else max(0, deadline - now)):
                    await self._wake.wait()
            self._run(self.core.tick(clock.now()))


def _ignore_result(future: asyncio.Future[Any]) -> None:
    """A late I/O's outcome was reported as a failure already; fetch it so that asyncio
    does not log an exception nobody retrieved."""
    if not future.cancelled():
        future.exception()
