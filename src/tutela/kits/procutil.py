"""Process helpers shared by the kits: /proc reading, stopping processes, bounded commands.

Everything reads this process's own /proc, so inside a node's PID namespace it sees that node.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tutela.kits.base import KitError

PROC = Path("/proc")
POLL_INTERVAL = 0.05
REAP_AFTER_KILL = 1.0
"""Seconds `run` waits for a command it killed on timeout; one stuck in the kernel stays."""
_READ_SIZE = 65536
DRAIN_LIMIT = 1 << 20
"""Bytes a pipe can hold at most (Linux's default pipe-max-size): the most to drain."""
_PATH_LINKS = ("cwd", "root", "exe")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, comes first)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (stat field 22); None if gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, started: int | None = None) -> bool:
    """True if PID runs and is not a zombie; with `started`, only if its start time matches."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X", "x"):
        return False
    return started is None or int(fields[19]) == started


def living(pids: Iterable[int]) -> list[int]:
    """Those of `pids` that still run (zombies count as gone)."""
    return [pid for pid in pids if is_alive(pid)]


def all_pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Living (non-zombie) processes whose process group is `pgid`."""
    members = []
    for pid in all_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] not in ("Z", "X", "x") and int(fields[2]) == pgid:
            members.append(pid)
    return members


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _process_paths(pid: int) -> Iterable[str]:
    """Paths a process holds: cwd, root, executable, open files and mapped files."""
    base = PROC / str(pid)
    links = [str(base / name) for name in _PATH_LINKS]
    with contextlib.suppress(OSError):
        links += [fd.path for fd in os.scandir(base / "fd")]
    for link in links:
        with contextlib.suppress(OSError):
            yield os.readlink(link)
    try:
        with open(base / "maps") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6:
                    yield parts[5].rstrip("\n")
    except OSError:
        pass


def pids_using(path: str | Path) -> list[int]:
    """Processes other than this one whose cwd, root, open files or mappings lie under `path`."""
    root = os.path.normpath(str(path))
    me = os.getpid()
    return [pid for pid in all_pids()
            if pid != me and is_alive(pid)
            and any(_under(p, root) for p in _process_paths(pid))]


def signal_pids(pids: Iterable[int], sig: signal.Signals) -> None:
    """Send `sig` to each of `pids` that is still alive."""
    for pid in living(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(find: Callable[[], Sequence[int]], timeout: float) -> list[int]:
    """Poll `find` until it returns nothing or `timeout` passes; return what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = list(find())
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_INTERVAL)


def stop_processes(find: Callable[[], Sequence[int]], *, timeout: float, retries: int,
                   log: logging.Logger, what: str,
                   send: Callable[[Sequence[int], signal.Signals], None] | None = None,
                   ) -> list[int]:
    """TERM what `find` returns, wait `timeout`, KILL what is left; up to `retries` rounds.

    While waiting after TERM only the signalled PIDs are watched (cheap); `find` runs again
    after KILL and at the start of each round. Returns what is still there (empty: success).
    """
    deliver = send or signal_pids
    for attempt in range(1, max(retries, 1) + 1):
        pids = list(find())
        if not pids:
            return []
        log.info("%s: sending TERM to %s (round %d of %d)", what, _fmt(pids), attempt, retries)
        deliver(pids, signal.SIGTERM)
        left = wait_gone(functools.partial(living, pids), timeout)
        if left:
            log.warning("%s: %s still running %.1fs after TERM; sending KILL",
                        what, _fmt(left), timeout)
            deliver(left, signal.SIGKILL)
        if not wait_gone(find, timeout):
            return []
    return list(find())


def kill_now(find: Callable[[], Sequence[int]], *, timeout: float, log: logging.Logger,
             what: str, send: Callable[[Sequence[int], signal.Signals], None] | None = None,
             ) -> list[int]:
    """KILL what `find` returns at once (no TERM, no grace), until it returns nothing.

    For forced removal (quorum-loss action `fastkill`). Each poll KILLs again whatever
    `find` still returns, so a process forked or opened in the meantime goes too. Gives up
    after `timeout` seconds and returns what is left (a process in uninterruptible sleep,
    state D, dies only when its I/O returns); empty means success.
    """
    deliver = send or signal_pids
    deadline = Deadline(timeout)
    seen: set[int] = set()
    while True:
        pids = list(find())
        if not pids:
            return []
        fresh = [pid for pid in pids if pid not in seen]
        if fresh:
            log.warning("%s: sending KILL to %s (forced removal: no TERM)", what, _fmt(fresh))
            seen.update(fresh)
        deliver(pids, signal.SIGKILL)
        if deadline.expired():
            return pids
        time.sleep(deadline.left(POLL_INTERVAL))


def _fmt(pids: Sequence[int]) -> str:
    return "PID " + ", ".join(str(pid) for pid in sorted(pids))


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Both streams, trimmed, for error messages."""
        return "\n".join(s.strip() for s in (self.stdout, self.stderr) if s.strip())


def run(argv: Sequence[str], *, timeout: float, log: logging.Logger,
        env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
        log_output: bool = False, what: str | None = None) -> Completed:
    """Run a command in its own session, bounded by `timeout` seconds.

    Output is read until the command exits, then what its pipes hold is drained without
    waiting for end of file: a daemon it started (an agent's server) may keep the inherited
    pipes open for as long as it runs. On timeout the whole process group is killed and
    KitError raised. With `log_output` every output line goes to `log` as it arrives.
    """
    what = what or argv[0]
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
            env=dict(env) if env is not None else None, cwd=cwd)
    except OSError as exc:
        raise KitError(f"cannot run {what}: {exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    pipes = (_Pipe(proc.stdout, log if log_output else None, f"{what}: "),
             _Pipe(proc.stderr, log if log_output else None, f"{what} (stderr): "))
    try:
        exited = _read_until_exit(proc, pipes, Deadline(max(timeout, 0.0)))
        if not exited:
            _kill_after_timeout(proc, log, what)
    finally:
        stdout, stderr = (pipe.drain_and_close() for pipe in pipes)
    if not exited:
        raise KitError(f"{what} did not finish within {timeout:.1f}s; killed its process "
                       f"group; raise the action timeout if it legitimately needs longer")
    return Completed(proc.returncode, stdout, stderr)


def _read_until_exit(proc: subprocess.Popen[bytes], pipes: Sequence[_Pipe],
                     deadline: Deadline) -> bool:
    """Read the pipes as output arrives until `proc` exits (True) or the deadline passes."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ, None)
            for pipe in pipes:
                selector.register(pipe.fd, selectors.EVENT_READ, pipe)
            while True:
                for key, _ in selector.select(deadline.left()):
                    if key.data is None:  # the pidfd: the child has exited
                        proc.wait()
                        return True
                    if not key.data.read_chunk():
                        selector.unregister(key.fd)
                if deadline.expired():
                    return False
    finally:
        os.close(pidfd)


def _kill_after_timeout(proc: subprocess.Popen[bytes], log: logging.Logger, what: str) -> None:
    kill_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=REAP_AFTER_KILL)
    except subprocess.TimeoutExpired:  # stuck in the kernel (state D), e.g. dead storage
        log.warning("%s (PID %d) is still there %.1fs after KILL; leaving it behind",
                    what, proc.pid, REAP_AFTER_KILL)


class _Pipe:
    """One output pipe of a child: its text so far, each line optionally logged as it comes.

    The pipe is non-blocking, so reading never waits on a writer that outlives the child.
    """

    def __init__(self, stream: IO[bytes], log: logging.Logger | None, prefix: str) -> None:
        self._stream, self._log, self._prefix = stream, log, prefix
        self.fd = stream.fileno()
        os.set_blocking(self.fd, False)
        self._decoder = io.IncrementalNewlineDecoder(
            codecs.getincrementaldecoder("utf-8")(errors="replace"), translate=True)
        self._parts: list[str] = []
        self._unlogged = ""

    def read_chunk(self) -> bool:
        """Read what one read returns; False at end of file (every writer has closed it)."""
        try:
            chunk = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return True
        self._add(self._decoder.decode(chunk, final=not chunk))
        return bool(chunk)

    def drain_and_close(self) -> str:
        """Read what the pipe holds now (at most a full pipe), close it, return all text.

        A pipe holds at most `DRAIN_LIMIT` bytes, so everything the exited child wrote is
        in; a grandchild still writing cannot keep this going.
        """
        drained = 0
        while drained < DRAIN_LIMIT:
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not chunk:
                break
            drained += len(chunk)
            self._add(self._decoder.decode(chunk))
        self._add(self._decoder.decode(b"", final=True))
        self._stream.close()
        if self._log is not None and self._unlogged:
            self._log.info("%s%s", self._prefix, self._unlogged)
        return "".join(self._parts)

    def _add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        if self._log is None:
            return
        *lines, self._unlogged = (self._unlogged + text).split("\n")
        for line in lines:
            self._log.info("%s%s", self._prefix, line)


class Deadline:
    """A monotonic deadline that hands each step the time it has left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        remaining = max(self.end - time.monotonic(), 0.0)
        return remaining if cap is None else min(remaining, cap)

    def expired(self) -> bool:
        return time.monotonic() >= self.end


def write_atomic(path: Path, data: str) -> None:
    """Write `data` to `path` so a reader sees the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
