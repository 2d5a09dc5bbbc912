"""Processes of a lab node: its PID 1 (nodeinit), entering it, spawning in it, signalling it.

A node is four namespaces: its own network namespace (a named netns, `tl-LAB-NODE`) and the
mount, UTS and PID namespaces created by `unshare` for nodeinit. The node's identity on the
host is nodeinit's host PID (and its start time, against PID reuse): `nsenter --target PID`
enters the node, /proc/PID/mounts lists its mounts, /proc/PID/ns/pid names its processes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tutela.lab import cmd, procs
from tutela.lab.errors import LabError

START_TIMEOUT = 15.0


@dataclass(frozen=True)
class NodeProcess:
    """The host's handles on a running node."""

    pid: int  # host PID of nodeinit (PID 1 of the node)
    starttime: int  # of nodeinit, from /proc/PID/stat
    unshare_pid: int  # host PID of the unshare that is nodeinit's parent


HERE = os.path.dirname(os.path.abspath(__file__))
NODEINIT = os.path.join(HERE, "nodeinit.py")
LAUNCH = os.path.join(HERE, "launch.py")


def script(path: str) -> list[str]:
    """argv running one of our standard-library-only scripts: -I -S for a quick start (no
    site, no environment, the script's directory not on sys.path)."""
    return [sys.executable, "-I", "-S", path]


def bin_dir() -> str:
    """Directory of the running interpreter: the venv's bin, with `tutela` and `tutelad`."""
    return os.path.dirname(sys.executable)


def _runs_nodeinit(argv: list[str]) -> bool:
    return any(a.endswith("tutela/lab/nodeinit.py") or a == "tutela.lab.nodeinit"
               for a in argv)


def _for_node(argv: list[str], node: str | None) -> bool:
    if node is None:
        return True
    return any(a == "--hostname" and b == node for a, b in itertools.pairwise(argv))


def looks_like_nodeinit(pid: int, node: str | None = None) -> bool:
    """True if `pid` runs our nodeinit (for `node`, if given): safe to kill as ours."""
    argv = procs.cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) != "unshare" and \
        _runs_nodeinit(argv) and _for_node(argv, node)


def looks_like_unshare(pid: int, node: str | None = None) -> bool:
    """True if `pid` is the unshare that started our nodeinit (for `node`, if given)."""
    argv = procs.cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) == "unshare" and \
        _runs_nodeinit(argv) and _for_node(argv, node)


def cmdline_text(pid: int) -> str:
    return " ".join(procs.cmdline(pid))


def start(netns: str, node: str, node_dir: str) -> NodeProcess:
    """Start nodeinit for `node` in the (fresh, plugged) named network namespace `netns`.

    `setsid --fork` detaches unshare from the caller, so the node outlives a CLI command.
    Waits (with a deadline) for nodeinit's ready file, then finds its host PID: the child
    of the one `unshare` living in `netns`.
    """
    ready = os.path.join(node_dir, "nodeinit.ready")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ready)
    log_path = os.path.join(node_dir, "nodeinit.log")
    argv = [cmd.tool("ip"), "netns", "exec", netns, cmd.tool("setsid"), "--fork",
            cmd.tool("unshare"), "--mount", "--uts", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--propagation", "private",
            *script(NODEINIT), "--hostname", node, "--ready", ready]
    with open(log_path, "ab") as log:
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            check=False, timeout=30).returncode
    if rc != 0:
        raise LabError(f"cannot start {node}: '{' '.join(argv[:4])} ...' exited {rc}; "
                       f"see {log_path}")
    netns_ino = os.stat(f"/run/netns/{netns}").st_ino

    def unshare_pid() -> int | None:
        for pid in procs.pids_in_ns("net", netns_ino):
            if looks_like_unshare(pid, node):
                return pid
        return None

    def nodeinit_ready() -> NodeProcess | None:
        if not os.path.exists(ready):
            if not procs.pids_in_ns("net", netns_ino):  # setsid's child, unshare: all gone
                raise LabError(f"{node} failed to start: {tail(log_path)}", f"see {log_path}")
            return None
        parent = unshare_pid()
        if parent is None:
            return None
        for pid in procs.children(parent):
            st = procs.stat(pid)
            if st is not None and looks_like_nodeinit(pid, node):
                return NodeProcess(pid=pid, starttime=st.starttime, unshare_pid=parent)
        return None

    try:
        return procs.wait_for(nodeinit_ready, START_TIMEOUT, f"{node} to start")
    except TimeoutError as exc:
        raise LabError(f"{node} did not start within {START_TIMEOUT:g}s: "
                       f"{tail(log_path)}", f"see {log_path}") from exc


def tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def nsenter_argv(pid: int, argv: Sequence[str], cwd: str | None = None) -> list[str]:
    """argv that runs `argv` inside the node whose nodeinit has host PID `pid`."""
    full = [cmd.tool("nsenter"), "--target", str(pid), "--net", "--mount", "--uts", "--pid"]
    if cwd:
        full.append(f"--wd={cwd}")
    return [*full, "--", *argv]


def spawn(pid: int, argv: Sequence[str], log_path: str, env: Mapping[str, str],
          cwd: str = "/", timeout: float = 15.0) -> int:
    """Start `argv` detached inside the node (see launch.py); return its host PID."""
    pidns = procs.ns_inode(pid, "pid")
    if pidns is None:
        raise LabError(f"node process {pid} has gone", "power the node on")
    launcher = [*script(LAUNCH), "--log", log_path, "--cwd", cwd, "--", *argv]
    p = subprocess.Popen(nsenter_argv(pid, launcher), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(env), start_new_session=True)
    assert p.stdin is not None and p.stdout is not None and p.stderr is not None
    try:
        line = p.stdout.readline().strip()
        found = procs.host_pid(int(line), pidns) if line.isdigit() else None
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        err = p.stderr.read().strip()
        p.stdout.close()
        p.stderr.close()
    if found is None:
        raise LabError(f"cannot start {argv[0]!r} in the node: "
                       f"{err or f'launcher exited {p.returncode}'}")
    return found


def node_pids(pid: int) -> list[int]:
    """Host PIDs of every process in the PID namespace of nodeinit `pid` (nodeinit first)."""
    pidns = procs.ns_inode(pid, "pid")
    if pidns is None:
        return []
    others = [p for p in procs.pids_in_ns("pid", pidns) if p != pid]
    return [pid, *others]


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def freeze(pid: int, timeout: float = 5.0) -> list[int]:
    """SIGSTOP every process of the node, PID 1 first; repeat until no process of the node
    is left running (a process may fork while we enumerate). Returns the stopped PIDs."""
    stopped: set[int] = set()

    def all_stopped() -> bool:
        running = False
        for p in node_pids(pid):
            st = procs.stat(p)
            if st is None or st.state in ("T", "t", "Z", "X"):
                continue
            running = True
            if p not in stopped or st.state != "T":
                _signal(p, signal.SIGSTOP)
                stopped.add(p)
        return not running

    procs.wait_for(all_stopped, timeout, "every process of the node to stop")
    return sorted(stopped)


def waiting_nsenters(pid: int) -> list[int]:
    """nsenter processes (on the host side) that entered the node of nodeinit `pid` and
    wait for a command there (`Lab.exec`)."""
    found = []
    for p in procs.all_pids():
        argv = procs.cmdline(p)
        if argv and os.path.basename(argv[0]) == "nsenter" and "--target" in argv[:-1] \
                and argv[argv.index("--target") + 1] == str(pid):
            found.append(p)
    return found


def thaw(pid: int, timeout: float = 5.0) -> None:
    """SIGCONT every process of the node (children first, PID 1 last), until none is stopped.

    Also continues the nsenter of a `Lab.exec` that was running during the freeze: nsenter
    stops itself when its child in the node stops, and would otherwise stay stopped."""

    def none_stopped() -> bool:
        stopped = False
        for p in [*reversed(node_pids(pid)), *waiting_nsenters(pid)]:
            st = procs.stat(p)
            if st is not None and st.state == "T":
                stopped = True
                _signal(p, signal.SIGCONT)
        return not stopped

    procs.wait_for(none_stopped, timeout, "every process of the node to continue")


def is_frozen(pid: int) -> bool:
    st = procs.stat(pid)
    return st is not None and st.state in ("T", "t")


def kill(proc: NodeProcess | None, node: str, timeout: float = 10.0) -> None:
    """SIGKILL the node's PID 1 (the kernel then kills every process of the node) and wait
    until it is gone. Only signals PIDs whose start time and command line are still ours."""
    if proc is None:
        return
    if procs.alive(proc.pid, proc.starttime) and looks_like_nodeinit(proc.pid, node):
        _signal(proc.pid, signal.SIGKILL)
        procs.wait_for(lambda: not procs.alive(proc.pid, proc.starttime), timeout,
                       f"{node} (pid {proc.pid}) to die")
    if procs.alive(proc.unshare_pid) and looks_like_unshare(proc.unshare_pid, node):
        _signal(proc.unshare_pid, signal.SIGKILL)
