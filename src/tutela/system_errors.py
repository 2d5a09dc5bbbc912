"""Expected operating-system conditions as plain sentences: a full disk, a read-only or
unwritable state directory, a failing device.

The daemon answers a request that hit one of these with the sentence (and logs it on one
line, without a traceback: nothing is wrong with tutela); anything else stays a bug.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

# SQLite's primary result codes (https://sqlite.org/rescode.html), for the conditions
# that are the operating system's, not the database's.
SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 3, 8, 10, 13, 14
_SQLITE_ERRNO = {SQLITE_FULL: errno.ENOSPC, SQLITE_READONLY: errno.EROFS,
                 SQLITE_PERM: errno.EACCES, SQLITE_IOERR: errno.EIO,
                 SQLITE_CANTOPEN: errno.EACCES}
_SQLITE_MESSAGES = {"database or disk is full": errno.ENOSPC,
                    "unable to open database file": errno.EACCES,
                    "attempt to write a readonly database": errno.EROFS,
                    "disk I/O error": errno.EIO}
"""For an error without a result code (raised by hand, or by an older sqlite3 module)."""


def explain(error: BaseException, directory: Path) -> str | None:
    """A sentence naming what to free or fix, if `error` is an expected OS condition
    while working in `directory` (the state directory); None for anything else."""
    code = _errno_of(error)
    if code is None:
        return None
    where = Path(error.filename).parent if isinstance(error, OSError) and isinstance(
        error.filename, str) else directory
    if code in (errno.ENOSPC, errno.EDQUOT):
        full = "full" if code == errno.ENOSPC else "over its disk quota"
        return (f"the filesystem holding {where} is {full} ({_space(where)}); "
                f"free space on {_mount_point(where)} (old logs, core files) and try again")
    if code == errno.EROFS:
        mount = _mount_point(where)
        return (f"{where} is on a read-only filesystem ({mount}); remount it read-write "
                f"(mount -o remount,rw {mount}) or fix the disk, then try again")
    if code in (errno.EACCES, errno.EPERM):
        if not where.is_dir():
            return (f"the state directory {where} does not exist or is not a directory; "
                    "create it (mkdir -p) or point --state-dir at the node's directory")
        return (f"{where} may not be written (permission denied); it must be a directory "
                f"root can write: check 'ls -ld {where}' and its files")
    return (f"the disk holding {where} reported an I/O error ({os.strerror(code)}); "
            "check the device (dmesg) before trying again")


def _errno_of(error: BaseException) -> int | None:
    expected = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
    if isinstance(error, OSError):
        return error.errno if error.errno in expected else None
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_ERRNO:
            return _SQLITE_ERRNO[code & 0xFF]  # the low byte: the primary result code
        return _SQLITE_MESSAGES.get(str(error))
    return None


def _space(directory: Path) -> str:
    try:
        stats = os.statvfs(_existing(directory))
    except OSError:
        return "free space unknown"
    return (f"{_size(stats.f_bavail * stats.f_frsize)} free of "
            f"{_size(stats.f_blocks * stats.f_frsize)}")


def _mount_point(path: Path) -> Path:
    path = _existing(path).resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(count: float) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while count >= 1024 and power < len(units) - 1:
        count, power = count / 1024, power + 1
    return f"{count:.0f} bytes" if power == 0 else f"{count:.1f} {units[power]}"
