"""A watchdog device for tutelad to arm, pet and disarm: Linux /dev/watchdog or the lab's
emulated one (a FIFO), with the standard library only.

Timeout by the WDIOC_SETTIMEOUT ioctl on a real device, by "T<seconds>\\n" on the lab's FIFO.
"""

from __future__ import annotations

import fcntl
import math
import os
import stat
import struct

WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int)
DEFAULT_DEVICE = "/dev/watchdog"


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
        effect. OSError if there is no device (ENXIO: the lab's FIFO has no watchdog)."""
        if self._fd is None:
            # O_NONBLOCK: a FIFO without its reader fails at once instead of hanging.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if stat.S_ISFIFO(os.fstat(self._fd).st_mode):
            self._write(f"T{timeout:g}\n".encode())
            return timeout
        seconds = struct.pack("i", max(1, math.ceil(timeout)))
        return float(struct.unpack("i", fcntl.ioctl(self._fd, WDIOC_SETTIMEOUT, seconds))[0])

    def pet(self) -> None:
        """Tell the watchdog we are alive; OSError if the device has gone."""
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
