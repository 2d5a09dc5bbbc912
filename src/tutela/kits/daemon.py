"""The base of kits whose resource is one server daemon that runs in the foreground (samba,
nfs): each says how to start its daemon and what to check before; the process kit does the
rest (pidfile with start time, re-adoption after a tutelad restart, TERM then KILL, the TCP
probe of the service's address).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import Field, field_validator

from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams
from tutela.kits.process import ProcessKit, ProcessParams, read_pidfile, split_host_port


def absolute(value: str) -> str:
    """A path parameter's validator: ValueError unless it is absolute."""
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


def host_port(value: str | None) -> str | None:
    """An optional HOST:PORT parameter's validator (process.split_host_port's rule)."""
    if value is not None:
        split_host_port(value)
    return value


class DaemonParams(KitParams):
    config_file: str = Field(description="Absolute path of the server's configuration file.")
    """Each kit says more of it in its own declaration, which keeps this place in the
    list (the first: the one parameter without a default)."""
    probe: str | None = Field(
        default=None, description="HOST:PORT that must accept a TCP connection for the "
                                  "server to count as healthy, normally the virtual IP "
                                  "and the service's port; without it only the daemon's "
                                  "PID is watched.")
    start_timeout: float = Field(
        default=30.0, ge=0.0, le=3600.0,
        description="Seconds restore waits after start for the probe to pass.")
    stop_timeout: float = Field(
        default=20.0, ge=0.0, le=3600.0,
        description="Seconds the daemon gets after TERM before KILL.")

    _absolute = field_validator("config_file")(absolute)
    _probe = field_validator("probe")(host_port)


D = TypeVar("D", bound=DaemonParams)


class DaemonKit(Kit[D]):
    supervisor: ClassVar[ProcessKit] = ProcessKit()

    @abstractmethod
    def command(self, params: D, state_dir: Path) -> list[str]:
        """The daemon's argv, in the foreground, logging to stdout (the process kit keeps
        its output in the state directory and quotes its tail when a start fails)."""

    def check_before_start(self, ctx: ActionContext[D]) -> None:
        """Raise KitError, saying what to fix, when the daemon would not start as
        configured; runs only when it is not running yet."""

    def restore(self, ctx: ActionContext[D]) -> None:
        record = read_pidfile(ctx.state_dir)
        if record is None or not record.alive():
            self.check_before_start(ctx)
        self.supervisor.restore(self.supervised(ctx))

    def remove(self, ctx: ActionContext[D]) -> None:
        self.supervisor.remove(self.supervised(ctx))

    def force_remove(self, ctx: ActionContext[D]) -> None:
        self.supervisor.force_remove(self.supervised(ctx))

    def quick_check(self, ctx: ActionContext[D]) -> CheckResult:
        return self.supervisor.quick_check(self.supervised(ctx))

    def supervised(self, ctx: ActionContext[D]) -> ActionContext[ProcessParams]:
        """The same action as the process kit's, on the daemon's command."""
        p = ctx.params
        process = ProcessParams(command=self.command(p, ctx.state_dir), probe_tcp=p.probe,
                                start_timeout=p.start_timeout, stop_timeout=p.stop_timeout)
        return ActionContext(ctx.tag, ctx.resource_id, process, ctx.state_dir, ctx.timeout,
                             ctx.log)


def missing_programs(*programs: tuple[str, str]) -> list[tuple[str, str]]:
    """(parameter, problem) for each (parameter, path) that is not an executable file."""
    return [(field, f"{path} is not an executable program on this node; install its "
                    "Debian package or give its path")
            for field, path in programs if not (os.path.isfile(path)
                                                and os.access(path, os.X_OK))]


def expect_file(field: str, path: str) -> None:
    """KitError unless `path` is a file: named by its parameter, with the usual cause."""
    if not Path(path).is_file():
        raise KitError(f"{field} {path} is not a file on this node; if it is on a "
                       "filesystem that another resource mounts, make this resource "
                       "depend on that one")

