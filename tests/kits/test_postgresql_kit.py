"""The postgresql kit with Debian's PostgreSQL 15: parameters and bad input, the checks of
the data directory (on a shared disk, of the right major version), and a real server's
life on a loop-device filesystem in a private mount namespace: start, query check, stale
postmaster.pid of a dead owner, fast stop, and immediate stop when the fast one hangs.
The failover with a client runs in tests/lab/test_postgresql_lab.py."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kitsupport import FsEnv, run_kit, wait_until

from tutela.kits.base import ActionContext, KitError
from tutela.kits.postgresql import LOG_NAME, PostgresqlKit, PostgresqlParams
from tutela.kits.registry import get_kit
from tutela.model.errors import ConfigError

MakeCtx = Callable[..., ActionContext[Any]]
BINDIR = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_defaults_are_debians() -> None:
    params = get_kit("postgresql").parse_params({"datadir": "/srv/pg/data"})
    assert isinstance(params, PostgresqlParams)
    assert (params.version, params.port, params.user) == (15, 5432, "postgres")
    assert params.binaries == BINDIR
    assert params.socket_dir == Path("/var/run/postgresql")
    assert PostgresqlParams(datadir=Path("/d"), version=16).binaries == \
        Path("/usr/lib/postgresql/16/bin")


def test_bad_parameters_are_named_with_their_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        get_kit("postgresql").parse_params({"port": 0, "datdir": "/srv"}, "resources[db].params")
    text = str(raised.value)
    assert "resources[db].params.datadir" in text
    assert "resources[db].params.port" in text
    assert "remove it; kit 'postgresql' knows: datadir, version, bindir, port" in text


def test_check_here_names_missing_binaries_and_user(tmp_path: Path) -> None:
    params = PostgresqlParams(datadir=tmp_path, bindir=tmp_path, user="no-such-user-a")
    problems = PostgresqlKit().check_here(params)
    assert ("bindir", f"{tmp_path}/pg_ctl is not an executable on this node; install "
            "PostgreSQL 15 (Debian: apt-get install postgresql-15) or set bindir") in problems
    assert ("user", "no user 'no-such-user-a' on this node; create it or set user to the "
            "owner of the data directory") in problems
    assert PostgresqlKit().check_here(PostgresqlParams(datadir=tmp_path)) == []


def test_a_data_directory_on_the_root_filesystem_is_refused(make_ctx: MakeCtx,
                                                            tmp_path: Path) -> None:
    ctx = make_ctx("postgresql", {"datadir": str(tmp_path)})
    with pytest.raises(KitError) as raised:
        PostgresqlKit().restore(ctx)
    assert f"datadir {tmp_path} is on / " in str(raised.value)
    assert "not on a shared disk" in str(raised.value)
    ctx = make_ctx("postgresql", {"datadir": str(tmp_path / "absent")})
    with pytest.raises(KitError, match="does not exist on this node; it must be on the shared"):
        PostgresqlKit().restore(ctx)


@dataclass
class PgDisk:
    """A disk mounted in a private mount namespace, at a path the postgres user can reach
    (not under pytest's temporary directories, which pytest keeps 0700)."""

    env: FsEnv
    mountpoint: Path
    socket_dir: Path

    @property
    def enter(self) -> list[str]:
        return self.env.enter

    def spawn(self, script: str) -> subprocess.Popen[str]:
        return self.env.spawn(script)

    def params(self, datadir: Path, **extra: Any) -> dict[str, Any]:
        return {"datadir": str(datadir), "port": free_port(),
                "socket_dir": str(self.socket_dir), **extra}


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    path = Path(f"/tmp/tk-pg-{secrets.token_hex(3)}")
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_disk(reachable_dir: Path, make_fsenv: Callable[[str], FsEnv], tmp_path: Path) -> PgDisk:
    """An ext4 loop disk mounted (by the filesystem kit) in a private mount namespace."""
    env = make_fsenv("ext4")
    mountpoint = reachable_dir / "mnt"
    assert run_kit(env.enter, "filesystem", env.params(mountpoint=str(mountpoint)),
                   ["restore"], tmp_path)[0]["ok"]
    return PgDisk(env, mountpoint, reachable_dir / "sock")  # the kit creates the socket dir


def initdb(disk: PgDisk) -> Path:
    datadir = disk.mountpoint / "pgdata"
    made = disk.spawn(f"mkdir {datadir} && chown postgres: {datadir} && runuser -u postgres "
                      f"-- {BINDIR}/initdb -D {datadir} -A trust -N >/dev/null")
    assert made.wait(timeout=120) == 0
    return datadir


def test_a_data_directory_of_another_version_or_none_is_refused(pg_disk: PgDisk,
                                                                 tmp_path: Path) -> None:
    datadir = initdb(pg_disk)
    other = run_kit(pg_disk.enter, "postgresql", pg_disk.params(datadir, version=14),
                    ["restore"], tmp_path)
    assert f"datadir {datadir} belongs to PostgreSQL 15, not 14; set version=15" in \
        other[0]["error"]
    empty = run_kit(pg_disk.enter, "postgresql", pg_disk.params(pg_disk.mountpoint),
                    ["restore"], tmp_path)
    assert f"datadir {pg_disk.mountpoint} has no PG_VERSION: not a PostgreSQL data " \
        "directory" in empty[0]["error"]


def test_real_server_start_check_stale_pidfile_stop(pg_disk: PgDisk, tmp_path: Path) -> None:
    datadir = initdb(pg_disk)
    params = pg_disk.params(datadir, listen_addresses="127.0.0.1", stop_timeout=5)
    # A power-off leaves the dead owner's postmaster.pid, naming a PID that runs here.
    pg_disk.spawn(f"printf '1\\n{datadir}\\n' > {datadir}/postmaster.pid").wait(timeout=10)
    try:
        outcome = run_kit(pg_disk.enter, "postgresql", params,
                          ["restore", "quick_check", "restore", "remove", "quick_check",
                           "remove"], tmp_path, timeout=60)
    finally:
        run_kit(pg_disk.enter, "postgresql", params, ["force_remove"], tmp_path)
    restore, check, again, remove, after, idle = outcome.results
    assert restore["ok"], (restore, outcome.log)
    assert "removing " + f"{datadir}/postmaster.pid: no server of this node" in outcome.log
    assert check["healthy"], check
    assert again["ok"] and "already runs (PID" in outcome.log  # nothing started again
    assert remove["ok"] and idle["ok"]
    assert not after["healthy"]
    assert f"the query over {pg_disk.socket_dir} port" in after["reason"]
    assert pg_disk.spawn(f"test -s {datadir}/{LOG_NAME}").wait(timeout=10) == 0


def test_a_hung_fast_stop_ends_in_immediate_mode(pg_disk: PgDisk, tmp_path: Path) -> None:
    datadir = initdb(pg_disk)
    params = pg_disk.params(datadir, stop_timeout=2)
    assert run_kit(pg_disk.enter, "postgresql", params, ["restore"], tmp_path)[0]["ok"]
    pg_disk.spawn(f"runuser -u postgres -- {BINDIR}/psql -h {pg_disk.socket_dir} "
                            f"-p {params['port']} -d postgres -c 'SELECT pg_sleep(600)'")
    try:
        backend = wait_until(lambda: _backend_of(datadir), timeout=20,
                             what="the session's backend")
        os.kill(backend, signal.SIGSTOP)  # deaf to the fast stop's TERM
        outcome = run_kit(pg_disk.enter, "postgresql", params, ["remove", "quick_check"],
                          tmp_path, timeout=60)
    finally:
        run_kit(pg_disk.enter, "postgresql", params, ["force_remove"], tmp_path)
    assert outcome[0]["ok"], outcome.log
    assert "did not finish within 2s: stopping in immediate mode" in outcome.log
    assert not outcome[1]["healthy"]


def _backend_of(datadir: Path) -> int | None:
    """The PID of the backend of this data directory's server that runs a SELECT."""
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and b"SELECT" in (entry / "cmdline").read_bytes()
                    and os.readlink(entry / "cwd") == str(datadir)):
                return int(entry.name)
        except OSError:
            continue
    return None
