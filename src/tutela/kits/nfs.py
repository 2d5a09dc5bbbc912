"""The nfs kit: an NFS server in user space, NFS-Ganesha with its VFS backend, exporting
directories of the hierarchy's shared filesystem.

Debian's ocf:heartbeat:nfsserver drives the kernel's nfsd, which a kernel without nfsd
(as the lab's) cannot run; Ganesha needs nothing of the kernel but a filesystem, so this
kit runs ganesha.nfsd in the foreground under the process kit. Its NFSv4 recovery
directory (NFSV4 { RecoveryRoot }) belongs on the shared filesystem: the node that takes
over then knows the clients and lets them reclaim their state in the grace period.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from tutela.kits.base import ActionContext, KitError, KitParams
from tutela.kits.daemon import (
    DaemonKit,
    DaemonParams,
    absolute,
    expect_file,
    missing_programs,
)
from tutela.kits.process import OUTPUT_LOG

PIDFILE = "ganesha.pid"
CONFIG_ERROR = re.compile(r":CONFIG :(?:CRIT|MAJ) :(.*)")


class NfsParams(DaemonParams):
    config_file: str = Field(
        description="Absolute path of this server's ganesha.conf (its EXPORT blocks, "
                    "NFS_CORE_PARAM and NFSV4 { RecoveryRoot }), best on the hierarchy's "
                    "shared filesystem.")
    ganesha: str = Field(default="/usr/bin/ganesha.nfsd",
                         description="The ganesha.nfsd program.")
    log_level: Literal["NIV_FATAL", "NIV_MAJ", "NIV_CRIT", "NIV_WARN", "NIV_EVENT",
                       "NIV_INFO", "NIV_DEBUG", "NIV_MID_DEBUG", "NIV_FULL_DEBUG"] = Field(
        default="NIV_EVENT", description="Ganesha's log level; its log is the resource's "
                                         "output.log in its state directory.")

    _program = field_validator("ganesha")(absolute)


class NfsKit(DaemonKit[NfsParams]):
    name: ClassVar[str] = "nfs"
    description: ClassVar[str] = (
        "An NFS server in user space: NFS-Ganesha (ganesha.nfsd) in the foreground under "
        "the process kit.")
    Params: ClassVar[type[KitParams]] = NfsParams

    def check_here(self, params: NfsParams) -> list[tuple[str, str]]:
        return missing_programs(("ganesha", params.ganesha))

    def command(self, params: NfsParams, state_dir: Path) -> list[str]:
        # its pid file in the state directory: /run/ganesha is the host's, shared by the
        # nodes of a lab and by another Ganesha on the same machine
        return [params.ganesha, "-F", "-f", params.config_file, "-L", "STDOUT",
                "-N", params.log_level, "-p", str(state_dir / PIDFILE)]

    def check_before_start(self, ctx: ActionContext[NfsParams]) -> None:
        expect_file("config_file", ctx.params.config_file)

    def restore(self, ctx: ActionContext[NfsParams]) -> None:
        """As the other daemons', but a failed start names Ganesha's configuration errors:
        it has no checker of its own, reports them early in its log and exits only after
        some more start-up, whose lines are the last ones the process kit quotes."""
        log = ctx.state_dir / OUTPUT_LOG
        start = log.stat().st_size if log.exists() else 0
        try:
            super().restore(ctx)
        except KitError as exc:
            errors = config_errors(log, start)
            if not errors:
                raise
            raise KitError(f"Ganesha rejects {ctx.params.config_file}: {'; '.join(errors)} "
                           f"({exc})") from None


def config_errors(log: Path, offset: int) -> list[str]:
    """The messages of Ganesha's configuration errors (CONFIG lines of level CRIT or MAJ)
    in `log` from byte `offset` on: what this start wrote."""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:  # it failed before the start
        return []
    return [match.group(1).strip() for match in CONFIG_ERROR.finditer(text)]
