"""The process kit with real commands: an HTTP server on 127.0.0.1, stubborn shells, PID reuse.

Every process group a test starts is killed at teardown, whatever the outcome.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kitsupport import RUNNER, Processes, wait_until

from tutela.kits.base import ActionContext, KitError
from tutela.kits.process import PIDFILE, ProcessKit, read_pidfile
from tutela.kits.procutil import group_members, is_alive, start_time
from tutela.model.errors import ConfigError

MakeCtx = Callable[..., ActionContext[Any]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_server(port: int) -> dict[str, Any]:
    return {"command": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            "probe_http": f"http://127.0.0.1:{port}/", "stop_timeout": 2}


def test_http_server_lifecycle(supervise: MakeCtx) -> None:
    kit = ProcessKit()
    ctx = supervise(http_server(free_port()))
    kit.restore(ctx)
    first = read_pidfile(ctx.state_dir)
    assert first is not None and first.alive()
    assert kit.quick_check(ctx).healthy
    kit.restore(ctx)
    assert read_pidfile(ctx.state_dir) == first

    os.kill(first.pid, signal.SIGKILL)
    gone = f"PID {first.pid} is no longer running"
    wait_until(lambda: kit.quick_check(ctx).reason == gone, timeout=5,
               what="quick_check to notice the kill")
    wait_until(lambda: not Path(f"/proc/{first.pid}").exists(), timeout=5,
               what="the killed child reaped, not left a zombie")

    kit.restore(ctx)
    second = read_pidfile(ctx.state_dir)
    assert second is not None and second.pid != first.pid and kit.quick_check(ctx).healthy
    kit.remove(ctx)
    assert not second.alive() and not (ctx.state_dir / PIDFILE).exists()
    assert kit.quick_check(ctx).reason == "not started (no pidfile)"
    kit.remove(ctx)


def test_process_survives_its_starter_being_killed(supervise: MakeCtx, procs: Processes,
                                                   tmp_path: Path) -> None:
    params = http_server(free_port())
    ctx = supervise(params)
    request = {"kit": "process", "params": params, "actions": ["restore"],
               "state_dir": str(ctx.state_dir), "timeout": 30, "hold": True}
    starter = procs.start([sys.executable, str(RUNNER)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert starter.stdin is not None and starter.stdout is not None
    starter.stdin.write(json.dumps(request) + "\n")
    starter.stdin.flush()
    assert json.loads(starter.stdout.readline())[0]["ok"]
    record = read_pidfile(ctx.state_dir)
    assert record is not None
    assert os.getpgid(record.pid) == os.getsid(record.pid) == record.pid  # own session

    starter.kill()  # the "daemon" dies hard
    starter.wait(timeout=5)
    assert record.alive()
    kit = ProcessKit()  # a restarted daemon re-adopts by pidfile
    assert kit.quick_check(ctx).healthy
    kit.restore(ctx)
    assert read_pidfile(ctx.state_dir) == record
    kit.remove(ctx)
    assert not record.alive()


def test_stubborn_group_is_killed(supervise: MakeCtx,
                                  caplog: pytest.LogCaptureFixture) -> None:
    kit = ProcessKit()
    ctx = supervise({"command": 'trap "" TERM; sleep 1000 & wait', "stop_timeout": 0.3})
    kit.restore(ctx)
    record = read_pidfile(ctx.state_dir)
    assert record is not None
    members = wait_until(lambda: m if len(m := group_members(record.pid)) == 2 else None,
                         timeout=5, what="shell and its sleep child")
    kit.remove(ctx)
    assert not any(is_alive(pid) for pid in members)
    assert "sending KILL" in caplog.text


def test_pid_reuse_is_detected(supervise: MakeCtx, procs: Processes) -> None:
    stranger = procs.start(["sleep", "1000"])
    ctx = supervise({"command": "sleep 1000"})
    ctx.state_dir.mkdir(parents=True)
    started = wait_until(lambda: start_time(stranger.pid), timeout=5, what="stranger started")
    (ctx.state_dir / PIDFILE).write_text(json.dumps({"pid": stranger.pid,
                                                     "start_time": started - 1}))
    kit = ProcessKit()
    assert not kit.quick_check(ctx).healthy
    kit.remove(ctx)
    assert stranger.poll() is None, "remove must not kill a process that reused the PID"
    assert not (ctx.state_dir / PIDFILE).exists()


def test_argv_env_cwd_and_output_log(supervise: MakeCtx, tmp_path: Path) -> None:
    code = "import os, sys, time; print('up', os.environ['FOO'], os.getcwd(), flush=True); " \
           "time.sleep(1000)"
    ctx = supervise({"command": [sys.executable, "-c", code], "env": {"FOO": "bar"},
                     "cwd": str(tmp_path)})
    kit = ProcessKit()
    kit.restore(ctx)
    log = ctx.state_dir / "output.log"
    wait_until(lambda: f"up bar {tmp_path}" in log.read_text(), timeout=5, what="output")
    kit.remove(ctx)


def test_start_failures_are_reported_and_cleaned_up(supervise: MakeCtx,
                                                    tmp_path: Path) -> None:
    kit = ProcessKit()
    dies = supervise({"command": "echo boom; exit 3"}, tag="dies")
    with pytest.raises(KitError, match=r"exited with status 3 .*boom"):
        kit.restore(dies)
    assert not (dies.state_dir / PIDFILE).exists()

    pid_file = tmp_path / "deaf.pid"
    deaf = supervise({"command": f"echo $$ > {pid_file}; exec sleep 1000",
                      "probe_tcp": f"127.0.0.1:{free_port()}", "start_timeout": 0.5,
                      "probe_timeout": 0.2, "stop_timeout": 1},
                     tag="deaf")
    with pytest.raises(KitError, match=r"probe did not pass within 0\.5s"):
        kit.restore(deaf)
    assert not (deaf.state_dir / PIDFILE).exists()
    assert not is_alive(int(pid_file.read_text())), "the started process was stopped"


@pytest.mark.parametrize(("params", "field"), [
    ({"command": ""}, "params.command"),
    ({"command": []}, "params.command"),
    ({"command": "x", "probe_tcp": "localhost"}, "params.probe_tcp"),
    ({"command": "x", "probe_tcp": "h:99999"}, "params.probe_tcp"),
    ({"command": "x", "probe_http": "ftp://h/"}, "params.probe_http"),
    ({"command": "x", "cwd": "relative"}, "params.cwd"),
])
def test_validation_names_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        ProcessKit().parse_params(params)
    assert [p.field for p in err.value.problems] == [field]
