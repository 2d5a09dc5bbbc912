"""Reading processes from the host's /proc, and waiting on conditions with a deadline.

Everything here reads physical truth from /proc of the host (the lab runs as root in the
host's PID namespace), so it sees every process of every node with its host PID.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.01, max_interval: float = 0.1) -> T:
    """Poll `condition` until it returns a truthy value and return that value.

    Raises TimeoutError naming `what` after `timeout` seconds. The poll interval starts
    small and grows, so a fast condition is seen quickly and a slow one costs little CPU.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 2, max_interval)


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, T, t, Z, X, I ...
    ppid: int
    starttime: int  # clock ticks after boot; with the pid it identifies one process


def stat(pid: int) -> ProcStat | None:
    """Parse /proc/PID/stat; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), starttime=int(rest[19]))


def alive(pid: int | None, starttime: int | None = None) -> bool:
    """True if `pid` is a live process (not a zombie), and has `starttime` if given."""
    if not pid:
        return False
    st = stat(pid)
    if st is None or st.state in ("Z", "X"):
        return False
    return starttime is None or st.starttime == starttime


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` ([] for a zombie, a kernel thread or a vanished process)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [a.decode(errors="replace") for a in data.split(b"\0") if a]


def ns_inode(pid: int, kind: str) -> int | None:
    """Inode of namespace `kind` (net, pid, mnt, uts) of `pid`; None if it has gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def all_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def pids_in_ns(kind: str, inode: int) -> list[int]:
    """Host PIDs of all processes whose namespace `kind` has inode `inode`."""
    found = []
    for pid in all_pids():
        if ns_inode(pid, kind) == inode:
            found.append(pid)
    return found


def children(ppid: int) -> list[int]:
    """Host PIDs of the live children of `ppid` (scans /proc; needs no CONFIG_PROC_CHILDREN)."""
    found = []
    for pid in all_pids():
        st = stat(pid)
        if st is not None and st.ppid == ppid and st.state not in ("Z", "X"):
            found.append(pid)
    return found


def host_pid(inner_pid: int, pidns_inode: int) -> int | None:
    """Translate a PID as seen inside the PID namespace `pidns_inode` to the host PID."""
    for pid in pids_in_ns("pid", pidns_inode):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == inner_pid:
                            return pid
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return None
