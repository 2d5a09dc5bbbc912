"""Fencing, carried out: a peer powered off through the fence agent command, this node taken
out of service when its lease cannot be renewed (self-fencing), the quorum-loss action
(fastkill, fastboot, osu), and the watchdog armed while this node may run hierarchies.

When to fence is decided by the ownership core (`engine.ownership_core`: `FencePeer`,
`FenceSelf`, `QuorumLossAction`, `ArmWatchdog`); this module only does it.
docs/failover.md, "Fencing", is the administrator's view.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from tutela.arbiter.timing import LeaseTiming
from tutela.daemon.watchdog import WatchdogFence, WatchdogUnavailable
from tutela.engine.node import NodeEngine, OperationError
from tutela.engine.stuck import Blocked
from tutela.journal.events import Emitter, no_events
from tutela.kits import procutil
from tutela.kits.base import KitError
from tutela.lcm.messenger import spawn

log = logging.getLogger("tutela.fencing")
FENCE_TIMEOUT = 30.0
"""Seconds the fence command may take before the takeover gives up on it."""
REBOOT_ENV = "TUTELA_REBOOT_COMMAND"
"""The quorum-loss action 'fastboot' runs this shell command if set (the lab power-cycles
the node); otherwise it reboots the machine at once through /proc/sysrq-trigger."""


class FenceFailed(OperationError):
    """Fencing that a takeover needs did not happen (a failed fence command, no watchdog);
    why, as data for the stuck reason."""

    def __init__(self, blocked: Blocked, message: str) -> None:
        super().__init__(message)
        self.blocked = blocked


class Fencing:
    def __init__(self, engine: NodeEngine, timing: LeaseTiming,
                 lease_ends: Callable[[], list[float]],
                 still_in_service: Callable[[], bool]) -> None:
        """`lease_ends`: the ends of the hierarchy leases held here; `still_in_service`:
        whether a clustered hierarchy may still be in service here (the watchdog stays
        armed while either says so)."""
        self.engine = engine
        self.journal: Emitter = no_events
        self.watchdog = WatchdogFence(
            timing, lambda: engine.config.settings.fencing == "watchdog", lease_ends,
            still_in_service)

    def start(self) -> None:
        self.watchdog.start()

    async def stop(self) -> None:
        await self.watchdog.stop()

    @property
    def remove_time(self) -> float:
        """How long a self-fence may take (the lease's MustRelease comes that early)."""
        return self.watchdog.remove_time

    def arm(self) -> None:
        """Fencing 'watchdog': armed before this node restores a hierarchy, or FenceFailed."""
        try:
            self.watchdog.ensure_armed()
        except WatchdogUnavailable as error:
            raise FenceFailed(Blocked("watchdog_unavailable", detail=str(error)),
                              f"not taking it over: {error}") from None

    def check(self) -> None:
        """Arm or disarm the watchdog as the leases held and the states say."""
        self.watchdog.check()

    async def fence_peer(self, root: str, node: str, command: str) -> None:
        """Fencing 'agent': power `node` off with `command` before restoring `root` here;
        FenceFailed when the command fails or does not finish in FENCE_TIMEOUT."""
        log.warning("%s: fencing %s before taking over: %s", root, node, command)
        try:
            # Done when the command exits, not when its output closes: a fence script that
            # leaves a process in the background (a helper daemon, `cmd &`) hands that
            # process its output, and a fence that worked would wait for it, then fail.
            done = await asyncio.to_thread(
                procutil.run, ["/bin/sh", "-c", command], timeout=FENCE_TIMEOUT, log=log,
                what="the fence command")
        except KitError:
            why = f"it did not finish in {FENCE_TIMEOUT:g}s"
            message = f"fencing {node}: {why}; not taking over"
            raise self._failed(root, node, why, message) from None
        if done.returncode != 0:
            why = f"exit {done.returncode}: {done.output}"
            raise self._failed(root, node, why, f"fencing {node} failed ({why}); not taking "
                               "over")
        log.warning("%s: %s is fenced", root, node)
        self.journal("fence.peer", node, f"fenced before taking {root} over: {command}",
                     details={"hierarchy": root})

    def _failed(self, root: str, node: str, why: str, message: str) -> FenceFailed:
        self.journal("fence.failed", node, message, details={"hierarchy": root})
        return FenceFailed(Blocked("fence_failed", node, why), message)

    async def fence_self(self, root: str, within: float | None,
                         why: str = "the lease is ending") -> bool:
        """Self-fencing: `root` out of service here within `within` seconds (None: no
        limit). Whether it is."""
        self.journal("fence.self", root, f"{why}: out of service here before another node "
                     "may take it over", details={"within": within})
        try:
            async with asyncio.timeout(within):
                await self.engine.fence(root)
            return True
        except TimeoutError:
            log.error("%s: still not out of service when the lease ended", root)
        except OperationError as error:
            log.error("%s: self-fencing remove failed: %s", root, error)
        return False

    async def quorum_loss_action(self, root: str, action: str) -> None:
        """fastboot reboots this node; fastkill (and osu whose timed remove ran out)
        finishes taking `root` out of service, by force unless osu."""
        log.critical("%s: quorum-loss action %r", root, action)
        self.journal("quorum.lost", root, f"no majority renewed the lease: quorum-loss "
                     f"action {action}", details={"action": action})
        if action == "fastboot":
            _reboot()
        try:
            await self.engine.fence(root, force=action != "osu")
        except OperationError as error:
            log.critical("%s: %s could not take it out of service: %s", root, action, error)


def _reboot() -> None:
    command = os.environ.get(REBOOT_ENV)
    log.critical("rebooting this node now (quorum-loss action fastboot)%s",
                 f": {command}" if command else "")
    for handler in logging.getLogger().handlers:
        handler.flush()
    if command:
        spawn(asyncio.create_subprocess_shell(command), name="fastboot")
        return
    with open("/proc/sysrq-trigger", "w") as trigger:  # sysrq b: reboot, no sync
        trigger.write("b")
