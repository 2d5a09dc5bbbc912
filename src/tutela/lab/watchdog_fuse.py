"""The lab's kernel-mode watchdogs as files: a FUSE filesystem (fusepy over libfuse2) with one
regular file per node, <root>/watchdogs/<node>, that answers open, write, ioctl and close the
way a Linux /dev/watchdog does (tutela.lab.kernel_watchdog behind it, hardwared's power rules
around that).

The kernel carries a regular FUSE file's ioctls itself ("restricted" ioctls): it takes the
argument's size and direction from the ioctl number, so WDIOC_SETTIMEOUT (_IOWR, an int)
arrives with 4 bytes in and returns 4 bytes out, exactly what a driver sees, and a caller's
fcntl.ioctl cannot tell the difference. For a number declared _IOR only (WDIOC_SETOPTIONS,
which drivers read all the same; WDIOC_KEEPALIVE) FUSE passes no bytes in, so the server
reads them from the caller's memory (/proc/PID/mem), as the kernel's get_user would, and
hands them back unchanged where a driver writes nothing.

No character device: `describe()` sees a regular file, a whole-second Linux watchdog whose
sysfs says nothing (min_timeout 1 s), which is what tutelad should see.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from tutela.lab import cmd, procs
from tutela.lab.errors import LabError

FSNAME = "tutela-lab-watchdog"
MOUNT_TIMEOUT = 10.0
_IOC_WRITE, _IOC_READ = 1, 2
INSTALL = ("install libfuse2 (apt-get install libfuse2) and fusepy (pip install fusepy), "
           "or build the lab with --watchdog emulated")


class Device(Protocol):
    """One watchdog file's behaviour; errors are OSError with the errno to answer."""

    def open(self) -> int: ...

    def write(self, handle: int, data: bytes) -> None: ...

    def ioctl(self, handle: int, cmd: int, arg: bytes) -> bytes: ...

    def release(self, handle: int) -> None: ...


class WatchdogFiles:
    """fusepy's operations (called as `ops(name, path, ...)`): "/" lists the devices."""

    use_ns = True  # fusepy: times in nanoseconds

    def __init__(self, devices: Mapping[str, Device]) -> None:
        self.devices = devices
        self.mounted_at = time.time_ns()

    def __call__(self, operation: str, *args: Any) -> Any:
        return getattr(self, operation)(*args)

    def _device(self, path: str) -> Device:
        device = self.devices.get(path.lstrip("/"))
        if device is None:
            raise OSError(errno.ENOENT, path)
        return device

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        if path == "/":
            mode, links = stat.S_IFDIR | 0o755, 2
        else:
            self._device(path)
            mode, links = stat.S_IFREG | 0o600, 1
        return {"st_mode": mode, "st_nlink": links, "st_size": 0, "st_uid": 0, "st_gid": 0,
                "st_atime": self.mounted_at, "st_mtime": self.mounted_at,
                "st_ctime": self.mounted_at}

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self.devices]

    def open(self, path: str, flags: int) -> int:
        return self._device(path).open()

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return 0  # `echo V > file` truncates first; a watchdog has nothing to truncate

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._device(path).write(fh, data)
        return len(data)

    def ioctl(self, path: str, command: int, arg: int | None, fh: int, flags: int,
              data: int | None) -> int:
        size, direction = (command >> 16) & 0x3FFF, command >> 30
        if direction & _IOC_WRITE and data:
            given = ctypes.string_at(data, size)
        else:
            given = _caller_bytes(arg, size)
        answer = self._device(path).ioctl(fh, command, given)
        if direction & _IOC_READ and data:
            ctypes.memmove(data, answer, min(size, len(answer)))
        return 0

    def release(self, path: str, fh: int) -> int:
        self._device(path).release(fh)
        return 0


def _caller_bytes(address: int | None, size: int) -> bytes:
    """`size` bytes at `address` in the calling process (zeros if they cannot be read)."""
    import fuse

    pid = fuse.fuse_get_context()[2]
    if not address or not size or pid <= 0:
        return bytes(size)
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
            memory.seek(address)
            return memory.read(size).ljust(size, b"\0")
    except (OSError, OverflowError, ValueError):
        return bytes(size)


def check_available() -> None:
    """LabError unless FUSE can run here: /dev/fuse, libfuse2 and fusepy."""
    if not os.path.exists("/dev/fuse"):
        raise LabError("the kernel-mode watchdogs need /dev/fuse, which this machine lacks",
                       "modprobe fuse, or build the lab with --watchdog emulated")
    try:
        import fuse  # noqa: F401
    except (ImportError, OSError) as exc:  # fusepy raises OSError without libfuse
        raise LabError(f"the kernel-mode watchdogs need FUSE: {exc}", INSTALL) from exc


def serve(mountpoint: str, devices: Mapping[str, Device]) -> threading.Thread:
    """Mount the watchdog files at `mountpoint` and serve them in a thread (one request at a
    time); return once they are mounted. LabError if the mount does not appear."""
    from fuse import FUSE

    os.makedirs(mountpoint, mode=0o755, exist_ok=True)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            FUSE(WatchdogFiles(devices), mountpoint, foreground=True, nothreads=True,
                 direct_io=True, fsname=FSNAME)
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting caller
            failure.append(exc)

    thread = threading.Thread(target=run, name="watchdog-fuse", daemon=True)
    thread.start()

    def mounted() -> bool:
        if failure or not thread.is_alive():
            raise LabError(f"cannot mount the watchdogs at {mountpoint}: "
                           f"{failure[0] if failure else 'FUSE ended'}", INSTALL)
        return os.path.ismount(mountpoint)

    procs.wait_for(mounted, MOUNT_TIMEOUT, f"the watchdogs mounted at {mountpoint}")
    return thread


def unmount(mountpoint: str) -> None:
    """Detach the mount, lazily: a dead server's mount ("transport endpoint is not
    connected"), or one a process still has open, goes too."""
    subprocess.run([cmd.tool("umount"), "--lazy", mountpoint], check=True,
                   capture_output=True, timeout=30)
