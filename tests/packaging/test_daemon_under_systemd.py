"""A real tutelad on a lab node, run as systemd runs it from tutelad.service: $NOTIFY_SOCKET
names a datagram socket (here a real one this test reads, as systemd would) and
$JOURNAL_STREAM names its stderr. It says READY=1 with the cluster state once it serves,
STOPPING=1 when told to stop, logs every line once with its syslog priority, keeps
NOTIFY_SOCKET from the applications it starts, and survives SIGHUP; run without systemd it
logs to tutelad.log and follows logrotate's rename. The HTTPS API process it starts runs at
normal priority without NOTIFY_SOCKET and ends with tutelad on the SIGTERM that
`systemctl stop` sends to tutelad alone (KillMode=process)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import tutela
from tutela.lab.node import bin_dir

pytestmark = pytest.mark.lab
NODE = "node1"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("sdunit"), nodes=1, disks=0,
                root=tmp_path_factory.mktemp("lab")) as built:
        tutela(built, NODE, "init", "--cluster", "units")
        yield built


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """systemd's notify socket: a bound AF_UNIX datagram socket (reachable from the lab
    node, which shares the host's filesystem)."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(60)  # a deadline: tutelad on a loaded 2-core machine
        yield path, sock


def start_tutelad(lab: Lab, notify: str, stderr: Path, journal: bool) -> int:
    """tutelad as ExecStart starts it: foreground, NOTIFY_SOCKET set, and with `journal`
    JOURNAL_STREAM naming its stderr (device:inode, as systemd sets it)."""
    stderr.touch()
    env = {**lab.environment(NODE), "NOTIFY_SOCKET": notify}
    env.pop("JOURNAL_STREAM", None)
    if journal:
        status = stderr.stat()
        env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
    return lab.spawn(NODE, [os.path.join(bin_dir(), "tutelad")], stderr, env=env)


def messages(sock: socket.socket, until: Callable[[dict[str, str]], bool]
             ) -> list[dict[str, str]]:
    """Datagrams received up to the first that `until` accepts (or the socket's timeout)."""
    received = []
    while True:
        fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
        received.append(fields)
        if until(fields):
            return received


def stop(lab: Lab, pid: int) -> None:
    tutela(lab, NODE, "stop")
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=60, what="tutelad to exit")


def test_ready_status_stopping_and_journal_lines(
        lab: Lab, manager: tuple[str, socket.socket], tmp_path: Path) -> None:
    path, sock = manager
    stderr = tmp_path / "journal"
    (lab.state_dir(NODE) / "tutelad.log").unlink(missing_ok=True)  # from another test
    pid = start_tutelad(lab, path, stderr, journal=True)
    try:
        before_ready = messages(sock, until=lambda fields: "READY" in fields)
        assert before_ready[0] == {"STATUS": "node1: re-adopting resources"}
        assert before_ready[-1] == {
            "READY": "1", "STATUS": "node1: 1 of 1 nodes alive, 0 of 0 hierarchies in "
                                   "service here"}
        # READY=1 means the control socket answers
        assert tutela(lab, NODE, "status").returncode == 0

        env_file = tmp_path / "app.env"
        tutela(lab, NODE, "resource", "create", "process", "app", "-p",
               f"command=env > {env_file}; exec sleep 600")
        tutela(lab, NODE, "restore", "app")
        wait_until(lambda: env_file.exists() and env_file.stat().st_size > 0, timeout=30,
                   what="the application's environment")
        assert "TUTELA_STATE_DIR=" in env_file.read_text()
        assert "NOTIFY_SOCKET" not in env_file.read_text()
        in_service = "node1: 1 of 1 nodes alive, 1 of 1 hierarchies in service here"
        messages(sock, until=lambda fields: fields.get("STATUS") == in_service)

        os.kill(pid, signal.SIGHUP)  # a stray HUP does not stop the node
        assert tutela(lab, NODE, "status").returncode == 0
        tutela(lab, NODE, "resource", "delete", "app", check=False)
        stop(lab, pid)
        assert messages(sock, until=lambda fields: "STOPPING" in fields)[-1] == {
            "STOPPING": "1", "STATUS": "node1: stopping, taking resources out of service"}
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)

    lines = stderr.read_text().splitlines()
    assert lines and all(line.startswith("<") for line in lines), lines[:5]
    assert any(line.startswith("<6>INFO tutela.daemon: tutelad starting") for line in lines)
    assert not (lab.state_dir(NODE) / "tutelad.log").exists()  # written once: the journal


def test_without_systemd_the_log_file_follows_rotation(
        lab: Lab, manager: tuple[str, socket.socket], tmp_path: Path) -> None:
    path, sock = manager
    log = lab.state_dir(NODE) / "tutelad.log"
    stderr = tmp_path / "tutelad.out"
    pid = start_tutelad(lab, path, stderr, journal=False)
    try:
        messages(sock, until=lambda fields: "READY" in fields)
        # The writer thread writes a little after the records were logged: rotate once the
        # line logged before READY=1 is in the file.
        wait_until(lambda: "ready on" in log.read_text(), timeout=30, what="'ready on' logged")
        log.rename(log.with_name("tutelad.log.1"))  # what logrotate does
        os.kill(pid, signal.SIGHUP)  # and its postrotate, if it sends one
        stop(lab, pid)
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    assert "tutelad starting" in log.with_name("tutelad.log.1").read_text()
    assert "stopped" in log.read_text()
    assert "stopped" not in log.with_name("tutelad.log.1").read_text()
    assert stderr.read_text() == ""  # not written twice


def api_children(pid: int) -> list[int]:
    """The API processes tutelad started (`python -m tutela.api`)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if ppid == pid and b"tutela.api" in argv:
            found.append(int(stat.parent.name))
    return found


def test_the_api_process_under_systemd(
        lab: Lab, manager: tuple[str, socket.socket], tmp_path: Path) -> None:
    path, sock = manager
    pid = start_tutelad(lab, path, tmp_path / "journal", journal=True)
    try:
        messages(sock, until=lambda fields: "READY" in fields)
        tutela(lab, NODE, "config", "set", "settings.api.enabled", "true")
        wait_until(lambda: api_children(pid), timeout=60, what="the API process")
        [api] = api_children(pid)
        assert b"NOTIFY_SOCKET=" not in Path(f"/proc/{api}/environ").read_bytes()
        assert os.sched_getscheduler(pid) == os.SCHED_RR | os.SCHED_RESET_ON_FORK
        assert os.sched_getscheduler(api) == os.SCHED_OTHER
        os.kill(pid, signal.SIGTERM)  # systemctl stop, KillMode=process: tutelad alone
        wait_until(lambda: not Path(f"/proc/{api}").exists(), timeout=60,
                   what="the API process to end with tutelad")
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=60, what="tutelad to exit")
        lines = (tmp_path / "journal").read_text().splitlines()  # the API's stderr too
        assert all(line.startswith("<") for line in lines), lines
        assert any("api: started on https://0.0.0.0:9443" in line for line in lines)
    finally:
        for process in [*api_children(pid), pid]:
            if Path(f"/proc/{process}").exists():
                os.kill(process, signal.SIGKILL)
        tutela(lab, NODE, "config", "set", "settings.api.enabled", "false", check=False)
