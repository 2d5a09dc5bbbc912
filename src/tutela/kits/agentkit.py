"""Application kits that are an OCF agent plus tutela's defaults and checks.

Such a kit (mariadb, apache, nginx) has parameters of its own with defaults for Debian's
packages, turns them into the agent's parameters, and runs the agent through the ocf kit
(kits.ocf): restore, remove, quick_check and recover are the agent's start, stop, monitor
and stop+start, with Pacemaker's recovery classes. Around the agent's start it adds what
the agent does not check: before, that the service's files are where a failover can find
them; after, that the service answers on the address and port its clients use.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import time
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar, TypeVar

from tutela.kits import procutil
from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams
from tutela.kits.ocf import OcfKit, OcfParams, kit_for
from tutela.kits.ocf_agents import AgentError

P = TypeVar("P", bound=KitParams)
ANSWER_POLL = 0.1
CONNECT_TIMEOUT = 1.0


class AgentKit(Kit[P]):
    """A kit whose work the OCF agent `agent_name` does; subclasses map the parameters."""

    agent_name: ClassVar[str]
    """ocf:PROVIDER:AGENT"""

    @abstractmethod
    def agent_params(self, params: P) -> OcfParams:
        """The agent's parameters (and monitor depth) for this kit's parameters."""

    def before_start(self, ctx: ActionContext[P]) -> None:
        """Refuse (KitError) to start when the start would be wrong here; by default nothing."""

    def answer_address(self, params: P) -> tuple[str, int] | None:
        """Where clients reach the service (address, port): after a start the kit waits
        until it accepts connections there. None: no such check."""
        return None

    def agent(self) -> OcfKit:
        try:
            return kit_for(self.agent_name)
        except AgentError as exc:
            raise KitError(str(exc)) from None

    def check_here(self, params: P) -> list[tuple[str, str]]:
        try:
            agent = kit_for(self.agent_name)
        except AgentError as exc:
            return [("kit", str(exc))]
        return agent.check_here(self.agent_params(params))

    def restore(self, ctx: ActionContext[P]) -> None:
        deadline = procutil.Deadline(ctx.timeout)
        self.before_start(ctx)
        self.agent().restore(self._agent_ctx(ctx, deadline))
        self._expect_answer(ctx, deadline)

    def remove(self, ctx: ActionContext[P]) -> None:
        self.agent().remove(self._agent_ctx(ctx, procutil.Deadline(ctx.timeout)))

    def quick_check(self, ctx: ActionContext[P]) -> CheckResult:
        return self.agent().quick_check(self._agent_ctx(ctx, procutil.Deadline(ctx.timeout)))

    def recover(self, ctx: ActionContext[P]) -> None:
        """The agent's recovery (stop and start, unless its monitor's error was hard or
        fatal), then the same answer check as after a restore."""
        deadline = procutil.Deadline(ctx.timeout)
        self.before_start(ctx)
        self.agent().recover(self._agent_ctx(ctx, deadline))
        self._expect_answer(ctx, deadline)

    def _agent_ctx(self, ctx: ActionContext[P], deadline: procutil.Deadline
                   ) -> ActionContext[OcfParams]:
        return ActionContext(tag=ctx.tag, resource_id=ctx.resource_id,
                             params=self.agent_params(ctx.params), state_dir=ctx.state_dir,
                             timeout=deadline.left(), log=ctx.log)

    def _expect_answer(self, ctx: ActionContext[P], deadline: procutil.Deadline) -> None:
        """Wait until the service accepts a connection where its clients reach it; if it
        never does, stop it again (a service nobody can reach only holds its files) and
        say which address and port it failed to answer on."""
        target = self.answer_address(ctx.params)
        if target is None:
            return
        if wait_for_answer(*target, deadline):
            ctx.log.info("answers on %s port %d", *target)
            return
        ctx.log.error("started but does not answer on %s port %d; stopping it", *target)
        self.remove(dataclasses.replace(ctx, timeout=max(deadline.left(), 10.0)))
        raise KitError(f"{self.name} started but did not accept connections on {target[0]} "
                       f"port {target[1]}, where its clients connect, within the "
                       f"{ctx.timeout:g}s timeout; make its configuration listen there "
                       f"(or set the kit's address and port to where it listens)")


def wait_for_answer(address: str, port: int, deadline: procutil.Deadline) -> bool:
    """Whether a TCP connection to address:port succeeds before the deadline."""
    while True:
        try:
            with socket.create_connection((address, port),
                                          timeout=max(deadline.left(CONNECT_TIMEOUT), 0.05)):
                return True
        except OSError:
            if deadline.expired():
                return False
            time.sleep(deadline.left(ANSWER_POLL))


def mount_of(path: Path) -> tuple[Path, str, str]:
    """(mount point, filesystem type, source) of the filesystem that holds `path`, which
    must exist, from this process's /proc/self/mountinfo (its mount namespace's view)."""
    current = path.resolve()
    while not os.path.ismount(current):
        current = current.parent
    found = (current, "unknown", "unknown")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[4] == str(current):  # the last of stacked mounts is the one seen
            found = (current, fields[separator + 1], fields[separator + 2])
    return found


def expect_on_shared_disk(path: Path, parameter: str) -> None:
    """KitError unless `path` is on a filesystem mounted from a block device other than
    the node's root filesystem: the data must move with the hierarchy, so it lives on the
    shared disk that a filesystem resource below this one mounts."""
    where = ("it must be on the shared disk, mounted by a filesystem resource this "
             "resource depends on (--depends-on)")
    if not path.is_dir():
        raise KitError(f"{parameter} {path} does not exist here; {where}")
    mounted_at, fstype, source = mount_of(path)
    if mounted_at == Path("/") or not _is_block_device(source):
        raise KitError(f"{parameter} {path} is on {mounted_at} ({fstype} from {source}), "
                       f"not on a shared disk, so its data would not follow a failover; "
                       f"{where}")


def _is_block_device(source: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(source).st_mode)
    except OSError:
        return False
