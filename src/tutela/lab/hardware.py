"""The lab's hardware as the lab sees it: start, ask and stop hardwared, the host process
that is the power switch, every node's watchdog and the serial cables.

It answers on <root>/hardware.sock (nodes reach it too), one line each way, "ok[ TEXT]" or
"error TEXT", to: off NODE | state NODE | gates A B AB BA ... | counters A B.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tutela.lab import cmd, node, procs
from tutela.lab.errors import LabError

MODULE = "tutela.lab.hardwared"
SOCKET = "hardware.sock"
READY = "hardware.ready"
LOG = "hardware.log"
TTY_DIR = "tty"
WATCHDOG_MOUNT = "watchdogs"
START_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0  # "off" waits for the power-off, which waits for the node to die


@dataclass(frozen=True)
class HardwareProcess:
    pid: int
    starttime: int


def socket_path(root: str) -> str:
    return os.path.join(root, SOCKET)


def tty_link(root: str, node_name: str, peer: str) -> str:
    """The path `node_name` opens to talk to `peer` over their serial cable."""
    return os.path.join(root, TTY_DIR, f"{node_name}-{peer}")


def watchdog_fifo(root: str, node_name: str) -> str:
    return os.path.join(root, node_name, "watchdog")


def watchdog_mount(root: str) -> str:
    """Where the kernel-mode watchdog files are mounted (watchdog_fuse)."""
    return os.path.join(root, WATCHDOG_MOUNT)


def watchdog_file(root: str, node_name: str) -> str:
    """The node's kernel-mode watchdog: a file that answers like /dev/watchdog."""
    return os.path.join(watchdog_mount(root), node_name)


def watchdog_log(root: str, node_name: str) -> str:
    return os.path.join(root, node_name, "watchdog.log")


def looks_like_hardware(pid: int, root: str) -> bool:
    """True if `pid` runs hardwared for the lab at `root` (safe to kill as ours)."""
    argv = procs.cmdline(pid)
    return MODULE in argv and any(a == "--root" and b == root
                                  for a, b in itertools.pairwise(argv))


def find(root: str) -> list[int]:
    """PIDs of every hardwared of the lab at `root` (also one a crash left behind)."""
    return [p for p in procs.all_pids() if procs.alive(p) and looks_like_hardware(p, root)]


def start(name: str, root: str, nodes: Sequence[str], tty: bool) -> HardwareProcess:
    """Start hardwared detached (`setsid --fork`, so it outlives a CLI command) and wait,
    with a deadline, until it has made its devices and written its ready file."""
    ready = os.path.join(root, READY)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ready)
    argv = [cmd.tool("setsid"), "--fork", sys.executable, "-m", MODULE, "--name", name,
            "--root", root, "--nodes", ",".join(nodes), "--ready", ready,
            *(["--tty"] if tty else [])]
    log_path = os.path.join(root, LOG)
    with open(log_path, "ab") as log:
        logged_before = log.tell()
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True,
                       timeout=30, cwd="/")

    def started() -> HardwareProcess | None:
        if not os.path.exists(ready):
            # `setsid --fork` returns before its child has become hardwared, so "not
            # found" alone may only mean "not exec'd yet" on a busy machine: it failed
            # once it is gone and has said something.
            if not find(root) and os.path.getsize(log_path) > logged_before:
                raise LabError(f"the lab's hardware failed to start: {node.tail(log_path)}",
                               f"see {log_path}")
            return None
        with open(ready) as f:
            pid = int(f.read().split()[0])
        st = procs.stat(pid)
        return HardwareProcess(pid, st.starttime) if st else None

    try:
        return procs.wait_for(started, START_TIMEOUT, "the lab's hardware to start")
    except TimeoutError as exc:
        raise LabError(f"the lab's hardware did not start within {START_TIMEOUT:g}s: "
                       f"{node.tail(log_path)}", f"see {log_path}") from exc


def kill(proc: HardwareProcess | None, root: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL the lab's hardwared (recorded, and any other found for `root`), checking
    start time and command line first; wait until gone. Its ptys vanish with it."""
    victims = set(find(root))
    if proc is not None and procs.alive(proc.pid, proc.starttime) and \
            looks_like_hardware(proc.pid, root):
        victims.add(proc.pid)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    procs.wait_for(lambda: not any(procs.alive(p) for p in victims), timeout,
                   "the lab's hardware to stop")
    return sorted(victims)


def request(root: str, line: str, timeout: float = REQUEST_TIMEOUT) -> str:
    """Send one request to the lab's hardware; return the text after "ok", or raise
    LabError with its error text (or when it does not answer)."""
    path = socket_path(root)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(line.encode() + b"\n")
            reply = read_line(sock)
    except OSError as exc:
        raise LabError(f"the lab's hardware does not answer at {path}: {exc}",
                       "rebuild the lab (`tutela lab down`, `tutela lab up`)") from exc
    status, _, text = reply.partition(" ")
    if status != "ok":
        raise LabError(text or f"the lab's hardware answered {reply!r}")
    return text


def read_line(sock: socket.socket, limit: int = 4096) -> str:
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = sock.recv(limit)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace").strip()
