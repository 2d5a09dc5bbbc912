"""Watchdog fencing in tutelad: armed while this node holds hierarchy leases, petted by the
rule in arbiter.watchdog, so a frozen or cut-off owner is reset before its lease ends.

The event loop decides (arm, pet, starve, disarm) and sets until when pets are allowed: W
before the earliest end of the leases it holds. A process of its own arms, pets and disarms
the device (tutela.watchdog_pets) and pets until then. So a burst of work that holds up
tutelad (a node restoring dozens of hierarchies at once starts their processes) no longer
delays the pets, while a tutelad that stops renewing still stops them: its leases' ends stop
moving, and the pets stop W before the first of them, as the rule says.

The device is TUTELA_WATCHDOG_DEVICE (default /dev/watchdog; the lab points it at each
node's emulated watchdog). docs/failover.md, "Fencing", is the administrator's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable

from tutela import clock
from tutela.arbiter.lease_fit import armed_timeout, shortest_fitting
from tutela.arbiter.timing import LeaseTiming
from tutela.arbiter.watchdog import watchdog_action
from tutela.journal.events import Emitter, no_events
from tutela.lcm.messenger import spawn
from tutela.lcm.ticks import next_tick
from tutela.model.config import NodeWatchdog
from tutela.watchdog_device import DEFAULT_DEVICE, DEVICE_ENV, describe
from tutela.watchdog_pets import WatchdogPets

log = logging.getLogger("tutela.watchdog")
IDLE_CHECK = 1.0
"""Seconds between checks while the watchdog is disarmed."""


class WatchdogUnavailable(Exception):
    """The watchdog cannot fence this node; the message says why and what to change."""


class WatchdogFence:
    def __init__(self, timing: LeaseTiming, enabled: Callable[[], bool],
                 lease_ends: Callable[[], list[float]],
                 still_in_service: Callable[[], bool], path: str | None = None) -> None:
        self.path = path or os.environ.get(DEVICE_ENV, DEFAULT_DEVICE)
        self.journal: Emitter = no_events
        self.timing = timing
        self.device = describe(self.path)
        self.timeout = armed_timeout(timing, self.device.min_timeout)
        """W in effect: what the device accepts (a real one rounds up to whole seconds);
        also how long a self-fence may take (the lease's remove time)."""
        self._enabled = enabled
        self._lease_ends = lease_ends
        self._still_in_service = still_in_service
        self._device = WatchdogPets(self.path)
        self._starving = False
        self.problem: str | None = None
        """Why the watchdog could not be armed or petted last time, for `tutela status`."""
        self._task: asyncio.Task[None] | None = None
        self._armed_now = asyncio.Event()

    @property
    def remove_time(self) -> float:
        """How long a self-fence may take: W, capped where a device that cannot fence this
        lease anyway (arming refuses it) would make the lease itself invalid."""
        return min(self.timeout, self.timing.max_remove_time)

    @property
    def armed(self) -> bool:
        return self._device.armed

    def status(self) -> dict[str, object]:
        return {"device": self.path, "armed": self.armed, "timeout": self.timeout,
                "petting": self.armed and not self._starving, "problem": self.problem}

    def start(self) -> None:
        self._device.start()
        self._task = spawn(self._loop(), name="watchdog")

    async def stop(self) -> None:
        """Orderly stop: the resources are out of service (or left running on purpose by
        `stop --leave-resources`), so the node must not be reset."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._disarm("tutelad stops")
        self._device.stop()

    def ensure_armed(self) -> None:
        """Arm the watchdog now: after winning a lease, before restoring anything under it.
        WatchdogUnavailable if this node's watchdog cannot fence it in time."""
        if not self._device.armed:
            try:
                self._arm()
            except WatchdogUnavailable as error:
                self.problem = str(error)
                raise
        # The lease just won may end before those the last check saw (its round went out
        # earlier than their renewals): the pets must follow it before anything is restored.
        ends = self._lease_ends()
        if watchdog_action(ends, clock.now(), self.timeout, True) == "pet":
            self._pet_while_leased(ends)
        else:
            self._stop_pets()

    def _arm(self) -> None:
        try:
            accepted = self._device.arm(self.timing.watchdog_timeout)
        except OSError as error:
            self._device.close()
            raise WatchdogUnavailable(
                f"fencing 'watchdog' needs a watchdog device, and {self.path} cannot be "
                f"opened ({error.strerror or error}); load one (modprobe softdog), point "
                f"{DEVICE_ENV} at yours, or set settings.fencing to 'agent'") from None
        if accepted > self.timing.max_remove_time:
            self._device.disarm()
            raise WatchdogUnavailable(
                f"the watchdog {self.path} times out after {accepted:g}s at the shortest, "
                f"too late for a {self.timing.duration:g}s lease (it must fire within "
                f"{self.timing.max_remove_time:.2f}s); set settings.lease_duration to "
                f"'auto' or {shortest_fitting(accepted):g} or more and restart tutelad on "
                "every node, or set settings.fencing to 'agent'")
        self.timeout = accepted
        self._starving = False
        self.problem = None
        self._armed_now.set()  # the loop may be in its long disarmed sleep: pet from now on
        log.info("watchdog %s armed (%gs)", self.path, accepted)
        self.journal("watchdog.armed", self.path, f"a lease is held here; fires after "
                     f"{accepted:g}s without a pet", details={"timeout": accepted})

    async def _loop(self) -> None:
        while True:
            self.check()
            # Four checks per timeout while armed, each moving the pets' limit on with the
            # leases renewed; disarmed, only now and then, as arming happens at the acquire
            # itself, which wakes this loop.
            self._armed_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._next_check()):
                    await self._armed_now.wait()

    def _next_check(self) -> float:
        """Armed: a quarter of the timeout from now. Disarmed: the next whole IDLE_CHECK of
        the wall clock, a wake-up the heartbeat round has anyway (lcm.ticks)."""
        if self.armed:
            return asyncio.get_running_loop().time() + self.timeout / 4
        return next_tick(IDLE_CHECK)

    def check(self) -> None:
        """Arm, pet, starve or disarm as the rule says now; also right after a self-fence,
        so a node that got out of service in time disarms before its watchdog fires."""
        if not self._enabled():
            self._stop_pets()
            self._disarm("fencing is no longer 'watchdog'")
            return
        ends = self._lease_ends()
        action = watchdog_action(ends, clock.now(), self.timeout, self._still_in_service())
        if action != "pet":
            self._stop_pets()
        if action == "disarm":
            self._disarm("no lease held and nothing clustered in service")
        elif action == "starve":
            if self._device.armed and not self._starving:
                log.error("not petting the watchdog: a lease has less than %gs left or ended "
                          "with resources still in service; the node is reset unless they "
                          "are out of service first", self.timeout)
                self.journal("watchdog.starved", self.path, "a lease has less than the "
                             "watchdog's timeout left or ended with resources in service")
            self._starving = True
        elif self._device.armed:
            self._pet_while_leased(ends)
        else:
            try:
                self.ensure_armed()
            except WatchdogUnavailable as error:
                log.error("watchdog %s: %s", self.path, error)

    def _pet_while_leased(self, ends: list[float]) -> None:
        """Pets allowed until W before the earliest of the lease `ends` (the rule)."""
        self._starving = False
        self._allow_pets_until(min(ends) - self.timeout)

    def _allow_pets_until(self, until: float) -> None:
        """Tell the pet process until when it may pet (-inf: stop at once)."""
        try:
            self._device.allow_until(until)
        except OSError as error:
            self.problem = str(error)
            log.error("watchdog %s: %s", self.path, error)

    def _stop_pets(self) -> None:
        self._allow_pets_until(-math.inf)

    def _disarm(self, why: str) -> None:
        if not self._device.armed:
            return
        try:
            self._device.disarm()
            log.info("watchdog %s disarmed: %s", self.path, why)
            self.journal("watchdog.disarmed", self.path, why)
        except OSError as error:
            log.error("watchdog %s could not be disarmed (%s): it may reset this node",
                      self.path, error)
        self._starving = False


def node_watchdog(path: str | None = None) -> NodeWatchdog:
    """This node's watchdog as the configuration records it (`tutela init`, `tutela join`
    and tutelad's start): the device tutelad uses (TUTELA_WATCHDOG_DEVICE or the default)."""
    info = describe(path or os.environ.get(DEVICE_ENV, DEFAULT_DEVICE))
    return NodeWatchdog(device=info.path, present=info.present, min_timeout=info.min_timeout)
