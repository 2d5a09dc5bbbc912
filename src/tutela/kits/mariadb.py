"""The mariadb kit: MariaDB (or MySQL) through Debian's ocf:heartbeat:mysql agent.

The agent starts mysqld_safe as the database user, stops with TERM and then KILL, and its
monitor at depth 10 runs a real query over the server's socket. tutela adds: the data
directory must be on the shared disk; the server is started durable (every COMMIT
flushed to the disk before it is acknowledged), so that no acknowledged row is lost when
the owner dies; after the start, the kit waits until the server accepts connections on
the address and port its clients use; and a forced removal KILLs at once.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tutela.kits import procutil
from tutela.kits.agentkit import AgentKit, expect_on_shared_disk
from tutela.kits.base import ActionContext, KitError, KitParams
from tutela.kits.ocf import OcfParams

DURABLE = ("--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1")
"""InnoDB writes and flushes its log at each COMMIT, and the binary log (if on) is flushed
with it: what the client saw committed is on the disk. They come before the
administrator's additional_parameters, so an explicit setting there wins (mysqld takes
the last)."""
_DURABILITY_OPTION = re.compile(r"--(innodb[-_]flush[-_]log[-_]at[-_]trx[-_]commit|sync[-_]binlog)"
                                r"=(\S+)")
CHECK_DEPTH = 10
"""The agent's monitor at depth 10 selects from check_table over the socket."""


class MariadbParams(KitParams):
    datadir: Path = Field(description="the data directory, on the shared disk (a filesystem "
                          "resource this one depends on mounts it)")
    address: str | None = Field(None, description="the (virtual) address clients connect "
                                "to; after a start the kit waits until the server accepts "
                                "connections there (default: 127.0.0.1)")
    port: int = Field(3306, ge=1, le=65535, description="the TCP port: passed to the server "
                      "(--port), and where the kit expects it to answer")
    config: Path = Field(Path("/etc/mysql/my.cnf"), description="the server's option file "
                         "(--defaults-file); must exist on the node at start")
    socket: Path = Field(Path("/run/mysqld/mysqld.sock"), description="the server's Unix "
                         "socket; the check connects through it")
    pid: Path = Field(Path("/run/mysqld/mysqld.pid"), description="the server's pid file")
    log: Path = Field(Path("/var/log/mysql/error.log"), description="the server's error log")
    user: str = Field("mysql", min_length=1, description="the system user the server runs as")
    group: str = Field("mysql", min_length=1, description="that user's group")
    binary: Path = Field(Path("/usr/bin/mysqld_safe"), description="mysqld_safe")
    client_binary: Path = Field(Path("/usr/bin/mariadb"), description="the client the check "
                                "runs")
    check_table: str = Field("mysql.user", min_length=1, description="the table the check "
                             "counts the rows of")
    check_user: str = Field("root", min_length=1, description="the account the check uses "
                            "(root over the socket: unix_socket authentication)")
    check_password: str = Field("", description="its password, if it has one")
    initialize: bool = Field(False, description="create the system tables "
                             "(mysql_install_db) if the data directory has none")
    additional_parameters: str = Field("", description="more server options, after tutela's "
                                       "(they win over them)")


class MariadbKit(AgentKit[MariadbParams]):
    name: ClassVar[str] = "mariadb"
    description: ClassVar[str] = ("MariaDB/MySQL with InnoDB, durable: ocf:heartbeat:mysql "
                                  "plus tutela's checks")
    Params: ClassVar[type[KitParams]] = MariadbParams
    agent_name: ClassVar[str] = "ocf:heartbeat:mysql"
    default_timeouts = {"restore": 155.0, "remove": 120.0, "quick_check": 30.0,
                        "recover": 240.0}
    """The agent's advertised start, stop and monitor timeouts (restore: probe, validate-all
    and start; recover: stop and start)."""

    def agent_params(self, params: MariadbParams) -> OcfParams:
        options = " ".join((f"--port={params.port}", *DURABLE, params.additional_parameters))
        return OcfParams(values={
            "binary": str(params.binary), "client_binary": str(params.client_binary),
            "config": str(params.config), "datadir": str(params.datadir),
            "user": params.user, "group": params.group, "log": str(params.log),
            "pid": str(params.pid), "socket": str(params.socket),
            "test_table": params.check_table, "test_user": params.check_user,
            "test_passwd": params.check_password,
            "enable_creation": "true" if params.initialize else "false",
            "additional_parameters": options.strip(),
        }, check_level=CHECK_DEPTH)

    def answer_address(self, params: MariadbParams) -> tuple[str, int]:
        return params.address or "127.0.0.1", params.port

    def check_here(self, params: MariadbParams) -> list[tuple[str, str]]:
        problems = [(name, f"{path} is not an executable on this node; install it (Debian: "
                           "apt-get install mariadb-server)")
                    for name, path in (("binary", params.binary),
                                       ("client_binary", params.client_binary))
                    if not os.access(path, os.X_OK)]
        problems += _account_problems(params)
        return problems + super().check_here(params)

    def before_start(self, ctx: ActionContext[MariadbParams]) -> None:
        params = ctx.params
        expect_on_shared_disk(params.datadir, "datadir")
        if not params.config.is_file():
            raise KitError(f"config {params.config} does not exist on this node; create it "
                           "there (or on the shared disk) or set config to the server's "
                           "option file")
        if not params.initialize and not (params.datadir / "mysql").is_dir():
            raise KitError(f"datadir {params.datadir} has no system tables (no mysql/ in it):"
                           f" not a MariaDB data directory; create them (mariadb-install-db "
                           f"--user={params.user} --datadir={params.datadir}) or set "
                           "initialize=true")
        for option, value in _DURABILITY_OPTION.findall(params.additional_parameters):
            if value not in ("1", "ON", "on"):
                ctx.log.warning("additional_parameters sets --%s=%s: a COMMIT is acknowledged "
                                "before it is on the disk, so a failover can lose committed "
                                "transactions", option, value)

    def force_remove(self, ctx: ActionContext[MariadbParams]) -> None:
        """KILL the server and its mysqld_safe at once: InnoDB recovers from its log on the
        next start, so no committed row is lost, and the disk is free within a moment."""
        datadir = ctx.params.datadir

        def server_processes() -> list[int]:
            servers = procutil.pids_using(datadir)
            guards = [parent for parent in map(_parent, servers)
                      if parent is not None and _command(parent) == "mysqld_safe"]
            return guards + servers

        left = procutil.kill_now(server_processes, timeout=ctx.timeout, log=ctx.log,
                                 what="mariadb")
        if left:
            raise KitError(f"the server's processes {left} still use {datadir} after KILL")


def _account_problems(params: MariadbParams) -> list[tuple[str, str]]:
    problems = []
    try:
        pwd.getpwnam(params.user)
    except KeyError:
        problems.append(("user", f"no user {params.user!r} on this node"))
    try:
        grp.getgrnam(params.group)
    except KeyError:
        problems.append(("group", f"no group {params.group!r} on this node"))
    return problems


def _parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^PPid:\s+(\d+)$", status, re.M)
    return int(found.group(1)) if found else None


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
