"""A Linux watchdog as user space sees it through /dev/watchdog, for the lab's kernel mode: the
semantics of the kernel's watchdog_dev.c over a driver like softdog, as a pure state machine
(no I/O; `now` is passed in, time.monotonic() seconds).

- open arms it (timeout 60 s unless set; softdog's default); a second open while it is open
  fails with EBUSY;
- a write pets it; a "V" anywhere in the written bytes allows the next close to stop it
  (the magic close), and any later write without one forgets that;
- the close (release) stops it after a "V"; without one it keeps running ("watchdog did not
  stop!") and is petted once more, as the kernel does;
- ioctls: WDIOC_SETTIMEOUT takes whole seconds in [1, 65535] (EINVAL outside), pets and
  answers the timeout set; GETTIMEOUT, GETTIMELEFT (whole seconds, rounded down), KEEPALIVE,
  GETSUPPORT, GETSTATUS (MAGICCLOSE while a "V" is pending, KEEPALIVEPING once after a pet),
  GETBOOTSTATUS (0), SETOPTIONS (WDIOS_DISABLECARD stops, WDIOS_ENABLECARD starts); any
  other number: ENOTTY.

Not emulated: nowayout, pretimeouts, a driver's minimum interval between pings.
Every change worth logging comes back as events of tutela.lab.watchdog's vocabulary
(docs/lab.md, "Watchdog"); hardwared adds the power rules.
"""

from __future__ import annotations

import errno
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from tutela.lab.watchdog import Event
from tutela.watchdog_device import (
    INT,
    WATCHDOG_INFO,
    WDIOC_GETBOOTSTATUS,
    WDIOC_GETSTATUS,
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMELEFT,
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETOPTIONS,
    WDIOC_SETTIMEOUT,
    WDIOF_KEEPALIVEPING,
    WDIOF_MAGICCLOSE,
    WDIOF_SETTIMEOUT,
    WDIOS_DISABLECARD,
    WDIOS_ENABLECARD,
)

IDENTITY = "tutela lab watchdog"
OPTIONS = WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING
DEFAULT_TIMEOUT = 60  # softdog's soft_margin
MIN_TIMEOUT = 1
MAX_TIMEOUT = 65535  # softdog's
MAGIC = b"V"


class WatchdogError(OSError):
    """What the kernel would answer with -errno, and the events to log all the same."""

    def __init__(self, code: int, events: list[Event] | None = None) -> None:
        super().__init__(code, errno.errorcode.get(code, str(code)))
        self.events = events or []


@dataclass
class KernelWatchdog:
    """One watchdog device; `handle`s are what open() returned, one per open file."""

    timeout: int = DEFAULT_TIMEOUT
    deadline: float | None = None  # None: stopped
    handle: int | None = None  # the open file; None: closed
    expect_close: bool = False  # a "V" was written: the next close stops it
    pinged: bool = False  # pinged since GETSTATUS last said so
    _handles: itertools.count[int] = field(default_factory=lambda: itertools.count(1),
                                          repr=False)

    @property
    def armed(self) -> bool:
        return self.deadline is not None

    def open(self, now: float) -> tuple[int, list[Event]]:
        """Open (and start) it: the new handle, or WatchdogError(EBUSY) if it is open."""
        if self.handle is not None:
            raise WatchdogError(errno.EBUSY)
        self.handle = next(self._handles)
        return self.handle, self._start(now)

    def write(self, handle: int, data: bytes, now: float) -> list[Event]:
        self._check(handle)
        if data:
            self.expect_close = MAGIC in data
            self._ping(now)
        return []

    def ioctl(self, handle: int, cmd: int, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        """Answer ioctl `cmd` with the bytes the kernel would copy back (for the commands
        that write a value, `arg` is what the caller passed); WatchdogError on failure."""
        self._check(handle)
        answer = self._IOCTLS.get(cmd)
        if answer is None:
            raise WatchdogError(errno.ENOTTY)
        return answer(self, arg, now)

    def release(self, handle: int, now: float) -> list[Event]:
        """The last close of the open file: stopped after a "V", else still running."""
        self._check(handle)
        self.handle = None
        if not self.armed:
            return []
        if self.expect_close:
            self._stop()
            return [("disarmed", {})]
        self._ping(now)  # "watchdog did not stop!", and the kernel pings it once more
        return [("unexpected-close", {"remaining": f"{self.remaining(now):.3f}"})]

    def remaining(self, now: float) -> float:
        return (self.deadline - now) if self.deadline is not None else 0.0

    def expire(self, now: float) -> bool:
        """True (once) when running and not petted for the timeout: the machine resets.
        Everything is as after power-on afterwards (reset())."""
        if self.deadline is None or now < self.deadline:
            return False
        self.reset()
        return True

    def reset(self) -> None:
        """As after power-on: stopped, closed (the files of the old boot are gone), default
        timeout."""
        self.timeout, self.deadline, self.handle = DEFAULT_TIMEOUT, None, None
        self.expect_close = self.pinged = False

    # ------------------------------------------------------------------ the driver

    def _check(self, handle: int) -> None:
        """A handle of an earlier boot: its device is gone (ENODEV, as for an unregistered
        driver). Cannot happen on a real machine, whose files die with its processes."""
        if handle != self.handle:
            raise WatchdogError(errno.ENODEV)

    def _start(self, now: float) -> list[Event]:
        if self.armed:
            return []
        self.deadline, self.pinged = now + self.timeout, True
        return [("armed", {"timeout": str(self.timeout)})]

    def _stop(self) -> None:
        self.deadline = None
        self.expect_close = False

    def _ping(self, now: float) -> None:
        if self.armed:
            self.deadline, self.pinged = now + self.timeout, True

    def _get_support(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        return WATCHDOG_INFO.pack(OPTIONS, 0, IDENTITY.encode()), []

    def _get_status(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        status = (WDIOF_MAGICCLOSE if self.expect_close else 0) | \
            (WDIOF_KEEPALIVEPING if self.pinged else 0)
        self.pinged = False
        return INT.pack(status), []

    def _get_boot_status(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        return INT.pack(0), []

    def _set_options(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        options = _unsigned(arg)
        events: list[Event] = []
        if options & WDIOS_DISABLECARD and self.armed:
            self._stop()
            events.append(("disarmed", {"by": "WDIOS_DISABLECARD"}))
        if options & WDIOS_ENABLECARD:
            events += self._start(now)
        return arg, events

    def _keepalive(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        self._ping(now)
        return arg, []

    def _set_timeout(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        seconds = _unsigned(arg)  # the kernel reads it into an unsigned int
        if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
            raise WatchdogError(errno.EINVAL, [("bad-timeout", {"value": str(seconds)})])
        self.timeout = seconds
        self._ping(now)
        return INT.pack(seconds), [("timeout", {"timeout": str(seconds)})]

    def _get_timeout(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        return INT.pack(self.timeout), []

    def _get_time_left(self, arg: bytes, now: float) -> tuple[bytes, list[Event]]:
        return INT.pack(max(0, math.floor(self.remaining(now)))), []

    _IOCTLS: ClassVar[dict[int, Callable[[KernelWatchdog, bytes, float],
                                         tuple[bytes, list[Event]]]]] = {
        WDIOC_GETSUPPORT: _get_support,
        WDIOC_GETSTATUS: _get_status,
        WDIOC_GETBOOTSTATUS: _get_boot_status,
        WDIOC_SETOPTIONS: _set_options,
        WDIOC_KEEPALIVE: _keepalive,
        WDIOC_SETTIMEOUT: _set_timeout,
        WDIOC_GETTIMEOUT: _get_timeout,
        WDIOC_GETTIMELEFT: _get_time_left,
    }


def _unsigned(arg: bytes) -> int:
    """The int argument as the kernel's `unsigned int val` holds it (-1 is 4294967295)."""
    value: int = INT.unpack(arg[:INT.size].ljust(INT.size, b"\0"))[0]
    return value & 0xFFFFFFFF
