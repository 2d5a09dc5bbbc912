"""A watchdog device for tutelad to arm, pet and disarm: Linux /dev/watchdog or the lab's
emulated one (a FIFO), with the standard library only.

Timeout by the WDIOC_SETTIMEOUT ioctl on a real device (read back with WDIOC_GETTIMEOUT), by
"T<seconds>\\n" on the lab's FIFO. Pets are writes on both. The ioctl numbers and flags below
are Linux's watchdog ABI (include/uapi/linux/watchdog.h); the lab's kernel-mode watchdog
(tutela.lab.kernel_watchdog) answers the same numbers.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

_IOC_WRITE, _IOC_READ = 1, 2
WATCHDOG_INFO = struct.Struct("II32s")
"""struct watchdog_info: options, firmware_version, identity."""
INT = struct.Struct("i")


def _wdioc(direction: int, number: int, size: int = INT.size) -> int:
    """_IOC(direction, 'W', number, size): the kernel's encoding of an ioctl number."""
    return direction << 30 | size << 16 | ord("W") << 8 | number


WDIOC_GETSUPPORT = _wdioc(_IOC_READ, 0, WATCHDOG_INFO.size)
WDIOC_GETSTATUS = _wdioc(_IOC_READ, 1)
WDIOC_GETBOOTSTATUS = _wdioc(_IOC_READ, 2)
WDIOC_SETOPTIONS = _wdioc(_IOC_READ, 4)  # declared _IOR, although the driver reads it
WDIOC_KEEPALIVE = _wdioc(_IOC_READ, 5)
WDIOC_SETTIMEOUT = _wdioc(_IOC_READ | _IOC_WRITE, 6)  # 0xC0045706
WDIOC_GETTIMEOUT = _wdioc(_IOC_READ, 7)
WDIOC_GETTIMELEFT = _wdioc(_IOC_READ, 10)
WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
WDIOF_KEEPALIVEPING = 0x8000
WDIOS_DISABLECARD = 0x0001
WDIOS_ENABLECARD = 0x0002
DEFAULT_DEVICE = "/dev/watchdog"
DEVICE_ENV = "TUTELA_WATCHDOG_DEVICE"
"""Names the device instead of DEFAULT_DEVICE (the lab's nodes, tests).
"""
SYSFS_CLASS = Path("/sys/class/watchdog")
WHOLE_SECOND_MIN = 1.0
"""The shortest timeout of a whole-second device whose driver does not tell (softdog's)."""


@dataclass(frozen=True)
class DeviceInfo:
    """What a node can tell of its watchdog without opening (arming) it."""

    path: str
    present: bool
    min_timeout: float
    """The shortest timeout it can be set to: 0 for the lab's emulated (fractional) one,
    whole seconds for a Linux device (its driver's min_timeout, 1 s if sysfs does not say)."""
    identity: str = ""
    nowayout: bool = False
    """The kernel refuses the magic close: once armed, only a reset stops it."""


def describe(path: str = DEFAULT_DEVICE) -> DeviceInfo:
    """Probe `path` without opening it (opening arms a Linux watchdog)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return DeviceInfo(path, present=False, min_timeout=WHOLE_SECOND_MIN)
    if stat.S_ISFIFO(mode):
        return DeviceInfo(path, present=True, min_timeout=0.0, identity="lab emulated")
    sysfs = _sysfs_dir(path, mode)
    if sysfs is None:
        return DeviceInfo(path, present=True, min_timeout=WHOLE_SECOND_MIN)
    return DeviceInfo(path, present=True,
                      min_timeout=max(WHOLE_SECOND_MIN, _number(sysfs / "min_timeout")),
                      identity=_text(sysfs / "identity"),
                      nowayout=_number(sysfs / "nowayout") == 1)


def _sysfs_dir(path: str, mode: int) -> Path | None:
    """/sys/class/watchdog/watchdogN of a character device; /dev/watchdog (the legacy misc
    node, 10:130) is watchdog0."""
    if not stat.S_ISCHR(mode):
        return None
    rdev = os.stat(path).st_rdev
    name = "watchdog0" if (os.major(rdev), os.minor(rdev)) == (10, 130) else None
    for entry in (SYSFS_CLASS.iterdir() if SYSFS_CLASS.is_dir() else ()):
        if name == entry.name or _text(entry / "dev") == f"{os.major(rdev)}:{os.minor(rdev)}":
            return entry
    return None


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _number(path: Path) -> float:
    try:
        return float(_text(path))
    except ValueError:
        return 0.0


class Watchdog:
    """`Watchdog(path).arm(timeout)`, then `pet()` more often than `timeout`, then
    `disarm()`; a daemon that dies or hangs instead gets its machine reset (powered off)."""

    def __init__(self, path: str = DEFAULT_DEVICE) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def armed(self) -> bool:
        return self._fd is not None

    def arm(self, timeout: float) -> float:
        """Open (arm) the device, if not yet open, and set `timeout`; return the timeout in
        effect. OSError if there is no device (ENXIO: the lab's FIFO has no watchdog), or if
        the timeout cannot be set; an open that this call made is then undone by the magic
        close, as the watchdog it started runs with a timeout nobody asked for."""
        if self._fd is not None:
            return self._set_timeout(timeout)
        # O_NONBLOCK: a FIFO without its reader fails at once instead of hanging.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return self._set_timeout(timeout)
        except OSError:
            with contextlib.suppress(OSError):
                self.disarm()
            raise

    def _set_timeout(self, timeout: float) -> float:
        assert self._fd is not None
        if stat.S_ISFIFO(os.fstat(self._fd).st_mode):
            self._write(f"T{timeout:g}\n".encode())
            return timeout
        # Whole seconds, and no fewer than the driver takes (else EINVAL): the caller
        # compares what it got with what it needs.
        seconds = max(math.ceil(timeout), math.ceil(describe(self.path).min_timeout))
        fcntl.ioctl(self._fd, WDIOC_SETTIMEOUT, INT.pack(seconds))
        # Read back: what the driver really counts (some round it to their hardware's steps).
        return float(INT.unpack(fcntl.ioctl(self._fd, WDIOC_GETTIMEOUT, INT.pack(0)))[0])

    def pet(self) -> None:
        """Tell the watchdog we are alive; OSError if the device has gone. A write, not
        WDIOC_KEEPALIVE: every driver takes writes (KEEPALIVE only those that announce
        WDIOF_KEEPALIVEPING), the lab's FIFO too, and a write drops a stale magic "V"."""
        self._write(b".")

    def disarm(self) -> None:
        """Magic close: the watchdog stops (unless the kernel's nowayout forbids it)."""
        if self._fd is not None:
            try:
                self._write(b"V")
            finally:
                self.close()

    def close(self) -> None:
        """Close without disarming: the watchdog keeps running and fires unless re-armed."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError(f"watchdog {self.path} is not armed")
        os.write(self._fd, data)
