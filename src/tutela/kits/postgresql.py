"""The postgresql kit: a PostgreSQL cluster (data directory) on the hierarchy's shared disk.

restore runs `pg_ctl start -w`, which returns once the server accepts connections, after
checking that the data directory is on a mounted shared disk (a filesystem resource below
this one) and of the configured major version; remove is `pg_ctl stop -m fast`, then
`-m immediate` if the fast stop has not finished within stop_timeout; quick_check runs a
real query over the configured socket (and that the server answering is the one of this
data directory); recover is remove + restore. A forced removal stops in immediate mode
and KILLs what is left: PostgreSQL replays its WAL at the next start, so nothing
committed is lost. The server runs with fsync on unless `options` says otherwise.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tutela.kits import procutil
from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams

LOG_NAME = "tutela-postgresql.log"
"""pg_ctl's log of the server, in the data directory: it moves with it, and the database
user may write there."""
IMMEDIATE_TIMEOUT = 10.0


class PostgresqlParams(KitParams):
    datadir: Path = Field(description="The data directory (PGDATA), on the shared disk that a "
                                      "filesystem resource this one depends on mounts.")
    version: int = Field(default=15, ge=9, le=99,
                         description="Major version of the server; the data directory's "
                                     "PG_VERSION must match it.")
    bindir: Path | None = Field(default=None,
                                description="Directory of pg_ctl, postgres and psql; default "
                                            "Debian's /usr/lib/postgresql/VERSION/bin.")
    port: int = Field(default=5432, ge=1, le=65535,
                      description="TCP port, and the number of the Unix socket.")
    user: str = Field(default="postgres", min_length=1,
                      description="System user the server runs as (owner of datadir).")
    socket_dir: Path = Field(default=Path("/var/run/postgresql"),
                             description="Directory of the server's Unix socket; the check "
                                         "connects through it.")
    listen_addresses: str = Field(default="*",
                                  description="Addresses the server listens on (its "
                                              "listen_addresses); '*' includes a virtual IP "
                                              "added later.")
    options: str = Field(default="",
                         description="More server options, e.g. \"-c shared_buffers=256MB\"; "
                                     "after tutela's, so they win.")
    stop_timeout: float = Field(default=30.0, gt=0.0, le=3600.0,
                                description="Seconds a fast stop may take before the kit "
                                            "stops in immediate mode.")
    check_database: str = Field(default="postgres", min_length=1,
                                description="Database the check connects to.")

    @property
    def binaries(self) -> Path:
        return self.bindir or Path(f"/usr/lib/postgresql/{self.version}/bin")


class PostgresqlKit(Kit[PostgresqlParams]):
    name: ClassVar[str] = "postgresql"
    description: ClassVar[str] = ("PostgreSQL server of one data directory on a shared disk "
                                  "(pg_ctl; checks with a query)")
    Params: ClassVar[type[KitParams]] = PostgresqlParams
    default_timeouts = {"restore": 120.0, "remove": 60.0, "quick_check": 10.0,
                        "recover": 180.0}
    """restore includes crash recovery (WAL replay) after a failover."""

    def check_here(self, params: PostgresqlParams) -> list[tuple[str, str]]:
        problems = [("bindir", f"{params.binaries / tool} is not an executable on this node; "
                               f"install PostgreSQL {params.version} (Debian: apt-get install "
                               f"postgresql-{params.version}) or set bindir")
                    for tool in ("pg_ctl", "psql") if not os.access(params.binaries / tool,
                                                                     os.X_OK)]
        try:
            pwd.getpwnam(params.user)
        except KeyError:
            problems.append(("user", f"no user {params.user!r} on this node; create it or "
                                     "set user to the owner of the data directory"))
        return problems

    def restore(self, ctx: ActionContext[PostgresqlParams]) -> None:
        params = ctx.params
        deadline = procutil.Deadline(ctx.timeout)
        check_datadir(params)
        running = running_postmaster(params)
        if running is not None:
            ctx.log.info("postgresql: the server of %s already runs (PID %d): nothing to "
                         "start", params.datadir, running)
            return
        clear_stale_pidfile(ctx)
        if not params.socket_dir.is_dir():  # Debian's lives in /run, a tmpfs
            make_socket_dir(params)
        server_options = (f"-p {params.port} -k {params.socket_dir} "
                          f"-c listen_addresses='{params.listen_addresses}' {params.options}")
        done = self._pg_ctl(ctx, deadline, "start", "-w", "-t", f"{max(deadline.left(), 1):.0f}",
                            "-l", str(params.datadir / LOG_NAME), "-o", server_options.strip())
        if done.returncode != 0:
            raise KitError(f"pg_ctl start of {params.datadir} failed: {done.output} (see "
                           f"{params.datadir / LOG_NAME})")

    def remove(self, ctx: ActionContext[PostgresqlParams]) -> None:
        deadline = procutil.Deadline(ctx.timeout)
        if not ctx.params.datadir.is_dir() or running_postmaster(ctx.params) is None:
            return
        fast = min(ctx.params.stop_timeout, max(deadline.left() - IMMEDIATE_TIMEOUT, 1.0))
        if self._stop(ctx, deadline, "fast", fast):
            return
        ctx.log.warning("fast stop of %s did not finish within %.0fs: stopping in immediate "
                        "mode", ctx.params.datadir, fast)
        if not self._stop(ctx, deadline, "immediate", max(deadline.left(), 1.0)):
            raise KitError(f"PostgreSQL of {ctx.params.datadir} did not stop, neither in fast "
                           "nor in immediate mode; see its log "
                           f"{ctx.params.datadir / LOG_NAME}")

    def force_remove(self, ctx: ActionContext[PostgresqlParams]) -> None:
        """Immediate stop, then KILL whatever still uses the data directory."""
        deadline = procutil.Deadline(ctx.timeout)
        datadir = ctx.params.datadir
        if datadir.is_dir() and running_postmaster(ctx.params) is not None:
            self._stop(ctx, deadline, "immediate", max(deadline.left(0.5 * ctx.timeout), 1.0))
        left = procutil.kill_now(lambda: procutil.pids_using(datadir),
                                 timeout=max(deadline.left(), 0.5), log=ctx.log,
                                 what="postgresql")
        if left:
            raise KitError(f"processes {left} still use {datadir} after KILL")

    def quick_check(self, ctx: ActionContext[PostgresqlParams]) -> CheckResult:
        params = ctx.params
        done = procutil.run(
            ["runuser", "-u", params.user, "--", str(params.binaries / "psql"), "-X", "-A",
             "-t", "-h", str(params.socket_dir), "-p", str(params.port), "-d",
             params.check_database, "-c", "SELECT current_setting('data_directory')"],
            timeout=ctx.timeout, log=ctx.log, what="psql")
        if done.returncode != 0:
            return CheckResult(False, f"the query over {params.socket_dir} port {params.port} "
                                      f"failed: {done.output}")
        serving = done.stdout.strip()
        if Path(serving) != params.datadir:
            return CheckResult(False, f"port {params.port} is served from {serving}, not from "
                                      f"{params.datadir}")
        return CheckResult(True)

    def _pg_ctl(self, ctx: ActionContext[PostgresqlParams], deadline: procutil.Deadline,
                *args: str) -> procutil.Completed:
        params = ctx.params
        return procutil.run(["runuser", "-u", params.user, "--",
                             str(params.binaries / "pg_ctl"), "-D", str(params.datadir), *args],
                            timeout=max(deadline.left(), 0.1), log=ctx.log, what="pg_ctl",
                            log_output=True)

    def _stop(self, ctx: ActionContext[PostgresqlParams], deadline: procutil.Deadline,
              mode: str, seconds: float) -> bool:
        try:
            self._pg_ctl(ctx, deadline, "stop", "-m", mode, "-w", "-t", f"{seconds:.0f}")
        except KitError as exc:  # pg_ctl itself hung past the action's deadline
            ctx.log.warning("%s", exc)
        return running_postmaster(ctx.params) is None


def check_datadir(params: PostgresqlParams) -> None:
    """KitError unless the data directory is a PostgreSQL `version` one on a shared disk."""
    datadir = params.datadir
    where = ("it must be on the shared disk that a filesystem resource of this hierarchy "
             "mounts (create this resource with --depends-on that filesystem resource)")
    if not datadir.is_dir():
        raise KitError(f"datadir {datadir} does not exist on this node; {where}")
    mount_point, source = mount_of(datadir)
    if mount_point == Path("/") or not _is_block_device(source):
        raise KitError(f"datadir {datadir} is on {mount_point} (from {source}), not on a "
                       f"shared disk, so its data would not follow a failover; {where}")
    try:
        found = (datadir / "PG_VERSION").read_text().strip()
    except OSError:
        raise KitError(f"datadir {datadir} has no PG_VERSION: not a PostgreSQL data directory;"
                       f" create one with {params.binaries / 'initdb'} -D {datadir} (as "
                       f"{params.user})") from None
    if found != str(params.version):
        raise KitError(f"datadir {datadir} belongs to PostgreSQL {found}, not {params.version};"
                       f" set version={found} (and install its binaries), or upgrade the "
                       "data directory with pg_upgrade")


def mount_of(path: Path) -> tuple[Path, str]:
    """(mount point, source) of the filesystem holding existing `path`, as this process's
    mount namespace sees it (the last of stacked mounts)."""
    current = path.resolve()
    while not os.path.ismount(current):
        current = current.parent
    source = "unknown"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(current):
            source = fields[fields.index("-") + 2]
    return current, source


def _is_block_device(source: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(source).st_mode)
    except OSError:
        return False


def running_postmaster(params: PostgresqlParams) -> int | None:
    """The PID of this data directory's postmaster if it runs on this node: the PID in
    postmaster.pid, when that process is a `postgres` of this node with this data directory
    as its working directory. After a failover the file names a PID of the dead node."""
    try:
        pid = int((params.datadir / "postmaster.pid").read_text().split()[0])
        exe = os.readlink(f"/proc/{pid}/exe")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError, IndexError):
        return None
    if Path(exe).name != "postgres" or Path(cwd) != params.datadir.resolve():
        return None
    return pid


def clear_stale_pidfile(ctx: ActionContext[PostgresqlParams]) -> None:
    """Remove a postmaster.pid that no server of this node holds (the previous owner's,
    which a power-off left behind): pg_ctl would take its PID, alive here by chance, for
    a running server and refuse to start."""
    pidfile = ctx.params.datadir / "postmaster.pid"
    if pidfile.exists() and running_postmaster(ctx.params) is None:
        ctx.log.info("removing %s: no server of this node holds it", pidfile)
        pidfile.unlink()


def make_socket_dir(params: PostgresqlParams) -> None:
    """Create the socket directory, owned by the server's user (its parent must exist)."""
    try:
        params.socket_dir.mkdir()
    except OSError as exc:
        raise KitError(f"cannot create socket_dir {params.socket_dir}: {exc.strerror}; "
                       "create it (owned by the server's user) or set socket_dir") from None
    entry = pwd.getpwnam(params.user)
    os.chown(params.socket_dir, entry.pw_uid, entry.pw_gid)
