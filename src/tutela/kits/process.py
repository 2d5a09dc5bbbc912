"""The process kit: starts a long-running command detached from the daemon and supervises it.

A pidfile with PID and start time lets a restarted daemon re-adopt it and detect PID reuse.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from tutela.kits import procutil
from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams

PIDFILE = "pid"
OUTPUT_LOG = "output.log"
ALIVE_GRACE = 0.2  # without a probe, the command must still run this long after start
PROBE_PACING = 0.1
FORCE_SHARE = 0.5  # force_remove waits at most this share of its timeout for KILL to take


class ProcessParams(KitParams):
    command: str | list[str] = Field(
        description="The command to supervise, in the foreground (it must not daemonize): "
                    "a shell command line run with /bin/sh -c, or an argv list.")
    cwd: str | None = Field(
        default=None, description="Absolute working directory; default: the resource's "
                                  "state directory. It may be on a filesystem a child "
                                  "resource mounts: it must exist when the process starts.")
    env: dict[str, str] | None = Field(
        default=None, description="Environment variables set on top of the daemon's.")
    stop_timeout: float = Field(
        default=10.0, ge=0.0, le=3600.0,
        description="Seconds the process group gets after TERM before KILL.")
    probe_tcp: str | None = Field(
        default=None, description="HOST:PORT that must accept a TCP connection for the "
                                  "process to count as healthy.")
    probe_http: str | None = Field(
        default=None, description="http:// or https:// URL that must answer with a status "
                                  "below 400 for the process to count as healthy.")
    probe_timeout: float = Field(
        default=2.0, gt=0.0, le=60.0, description="Seconds one probe attempt may take.")
    start_timeout: float = Field(
        default=10.0, ge=0.0, le=3600.0,
        description="Seconds restore waits after start for the probes to pass.")

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        if isinstance(value, list) and (not value or not value[0]):
            raise ValueError("argv list must start with the program to run")
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("probe_tcp")
    @classmethod
    def _probe_tcp(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)
        return value

    @field_validator("probe_http")
    @classmethod
    def _probe_http(cls, value: str | None) -> str | None:
        if value is not None:
            url = urllib.parse.urlsplit(value)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError("give an http:// or https:// URL, e.g. "
                                 "http://127.0.0.1:8080/health")
        return value

    def argv(self) -> list[str]:
        return ["/bin/sh", "-c", self.command] if isinstance(self.command, str) \
            else list(self.command)


def split_host_port(value: str) -> tuple[str, int]:
    """Split HOST:PORT ([V6ADDR]:PORT for IPv6); ValueError says what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("give HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


@dataclass(frozen=True)
class PidRecord:
    """What the pidfile holds: the process (and group) ID and its start time."""

    pid: int
    start_time: int

    def alive(self) -> bool:
        return procutil.is_alive(self.pid, self.start_time)

    def reused(self) -> bool:
        """True if PID now belongs to another process, so nothing of ours is left."""
        current = procutil.start_time(self.pid)
        return current is not None and current != self.start_time


def read_pidfile(state_dir: Path) -> PidRecord | None:
    try:
        data: dict[str, Any] = json.loads((state_dir / PIDFILE).read_text())
        return PidRecord(int(data["pid"]), int(data["start_time"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise KitError(f"pidfile {state_dir / PIDFILE} is corrupt ({exc}); check that the "
                       f"process is stopped, then delete the file") from exc


class ProcessKit(Kit[ProcessParams]):
    name: ClassVar[str] = "process"
    description: ClassVar[str] = (
        "A long-running command started detached (it survives daemon restarts), watched "
        "by PID and optional TCP or HTTP probes, stopped with TERM then KILL.")
    Params: ClassVar[type[KitParams]] = ProcessParams

    def check_here(self, params: ProcessParams) -> list[tuple[str, str]]:
        # Not cwd: it is often on a shared filesystem that a child resource mounts at
        # restore, and so absent (or an empty mountpoint) when the resource is created or
        # extended to a standby node. _start names it when it is missing then.
        problems = []
        if isinstance(params.command, list) and shutil.which(params.command[0]) is None:
            problems.append(("command", f"{params.command[0]} is not found on this node"))
        return problems

    def restore(self, ctx: ActionContext[ProcessParams]) -> None:
        deadline = procutil.Deadline(ctx.timeout)
        record = read_pidfile(ctx.state_dir)
        if record is not None and record.alive():
            ctx.log.info("already running as PID %d; nothing to do", record.pid)
            return
        if record is not None:
            ctx.log.info("pidfile names PID %d, which is gone; starting afresh", record.pid)
            self._stop_group(ctx, record)
        proc = self._start(ctx)
        record = PidRecord(proc.pid, procutil.start_time(proc.pid) or 0)
        procutil.write_atomic(ctx.state_dir / PIDFILE, json.dumps(record.__dict__) + "\n")
        try:
            self._await_ready(ctx, proc, deadline)
        except KitError:
            ctx.log.warning("start failed; stopping what is left of PID %d", proc.pid)
            self._stop_group(ctx, record)
            raise
        ctx.log.info("started PID %d", proc.pid)

    def remove(self, ctx: ActionContext[ProcessParams]) -> None:
        record = read_pidfile(ctx.state_dir)
        if record is None:
            ctx.log.info("no pidfile; nothing to stop")
            return
        self._stop_group(ctx, record)

    def force_remove(self, ctx: ActionContext[ProcessParams]) -> None:
        """KILL the whole process group at once (no TERM, no stop_timeout), then drop the
        pidfile; a group that outlives KILL for half the timeout fails the action."""
        record = read_pidfile(ctx.state_dir)
        if record is None:
            ctx.log.info("no pidfile; nothing to kill")
            return
        if record.reused():
            ctx.log.info("PID %d now belongs to another process; ours is gone", record.pid)
        else:
            left = procutil.kill_now(
                lambda: procutil.group_members(record.pid), timeout=ctx.timeout * FORCE_SHARE,
                log=ctx.log, what=f"process group {record.pid}",
                send=lambda _pids, sig: procutil.kill_group(record.pid, sig))
            if left:
                raise KitError(f"process group {record.pid} survived KILL (PIDs "
                               f"{', '.join(map(str, left))}); they may be stuck in the "
                               f"kernel (state D)")
            ctx.log.info("process group %d is gone", record.pid)
        (ctx.state_dir / PIDFILE).unlink(missing_ok=True)

    def quick_check(self, ctx: ActionContext[ProcessParams]) -> CheckResult:
        try:
            record = read_pidfile(ctx.state_dir)
        except KitError as exc:
            return CheckResult(False, str(exc))
        if record is None:
            return CheckResult(False, "not started (no pidfile)")
        if not record.alive():
            return CheckResult(False, f"PID {record.pid} is no longer running")
        failure = probe(ctx.params, min(ctx.params.probe_timeout, ctx.timeout))
        return CheckResult(failure is None, failure or "")

    def _start(self, ctx: ActionContext[ProcessParams]) -> subprocess.Popen[bytes]:
        p = ctx.params
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(p.env or {})}
        ctx.log.info("starting %s", p.argv())
        if p.cwd is not None and not Path(p.cwd).is_dir():
            raise KitError(f"cwd {p.cwd} is not a directory on this node; if it is on a "
                           "filesystem that another resource mounts, make this resource "
                           "depend on that one")
        try:
            with open(ctx.state_dir / OUTPUT_LOG, "ab") as output:
                proc = subprocess.Popen(
                    p.argv(), cwd=p.cwd or ctx.state_dir, env=env, stdin=subprocess.DEVNULL,
                    stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise KitError(f"cannot start {p.argv()}: {exc}") from exc
        # A waiter per child reaps it the moment it exits, so a crashed command never
        # lingers as a zombie (a multi-threaded one cannot be reaped until its last
        # thread is gone, which a poll at quick_check time can miss).
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
        return proc

    def _await_ready(self, ctx: ActionContext[ProcessParams],
                     proc: subprocess.Popen[bytes], deadline: procutil.Deadline) -> None:
        """Return once the probes pass (without probes: once it outlived a short grace)."""
        p = ctx.params
        if p.probe_tcp is None and p.probe_http is None:
            _expect_running(ctx, proc, deadline.left(ALIVE_GRACE))
            return
        wait_for = procutil.Deadline(deadline.left(p.start_timeout))
        pause = 0.0
        while True:
            _expect_running(ctx, proc, pause)
            failure = probe(p, wait_for.left(p.probe_timeout))
            if failure is None:
                return
            if wait_for.expired():
                raise KitError(f"the command runs but its probe did not pass within "
                               f"{p.start_timeout:g}s ({failure}); raise start_timeout if "
                               f"it needs longer to start")
            pause = wait_for.left(PROBE_PACING)

    def _stop_group(self, ctx: ActionContext[ProcessParams], record: PidRecord) -> None:
        """TERM, then KILL, the process group the pidfile names; then delete the pidfile."""
        if record.reused():
            ctx.log.info("PID %d now belongs to another process; ours is gone", record.pid)
        else:
            left = procutil.stop_processes(
                lambda: procutil.group_members(record.pid), timeout=ctx.params.stop_timeout,
                retries=1, log=ctx.log, what=f"process group {record.pid}",
                send=lambda _pids, sig: procutil.kill_group(record.pid, sig))
            if left:
                raise KitError(f"process group {record.pid} survived KILL (PIDs "
                               f"{', '.join(map(str, left))}); they may be stuck in the "
                               f"kernel (state D)")
        (ctx.state_dir / PIDFILE).unlink(missing_ok=True)


def _expect_running(ctx: ActionContext[ProcessParams], proc: subprocess.Popen[bytes],
                    seconds: float) -> None:
    """Wait up to `seconds` for the process to exit; KitError if it does."""
    try:
        code = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return
    raise KitError(f"the command exited with status {code} right after start"
                   f"{_tail(ctx.state_dir / OUTPUT_LOG)}")


def probe(p: ProcessParams, timeout: float) -> str | None:
    """Run the configured probes; None if all pass, else why one failed."""
    if p.probe_tcp is not None:
        host, port = split_host_port(p.probe_tcp)
        try:
            with socket.create_connection((host, port), timeout=max(timeout, 0.01)):
                pass
        except OSError as exc:
            return f"TCP probe {p.probe_tcp} failed: {exc}"
    if p.probe_http is not None:
        return _probe_http(p.probe_http, timeout)
    return None


def _probe_http(url: str, timeout: float) -> str | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=max(timeout, 0.01)) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:
        return f"HTTP probe {url} failed: {exc}"
    return None if status < 400 else f"HTTP probe {url} answered {status}"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "; last output: " + " | ".join(text) if text else ""
