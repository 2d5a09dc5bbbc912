"""Runs clustered hierarchies where the leases say: acquires, restores, gives up, fails over.

Every heartbeat interval it looks at each hierarchy with equivalencies, asks the pure
`engine.ownership.decide` what to do, and does it; a hierarchy runs only under its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tutela.arbiter.holder import LeaseLost, MustRelease
from tutela.daemon.leases import Leases, LeaseUnavailable
from tutela.daemon.watchdog import WatchdogFence, WatchdogUnavailable
from tutela.engine.node import (
    LeaseGone,
    NodeEngine,
    OperationError,
    RestoreRefused,
    RuntimeState,
)
from tutela.engine.ownership import View, decide, rank_step
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import Messenger, spawn
from tutela.lcm.ticks import next_tick
from tutela.model.config import HierarchySettings
from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

log = logging.getLogger("tutela.ownership")
REFUSAL_BACKOFF = 1.0
"""Seconds to wait after a pre-check refused a takeover (the old owner still holds on)."""
FENCE_TIMEOUT = 30.0
RELEASE_GRACE = 1.0
"""Seconds the other candidates leave a hierarchy whose live owner released it (a
switchover or switchback hands it to a chosen node) before they follow their rank order."""
HANDOVER_GRACE = 10.0
"""Seconds the old owner leaves a switched-over hierarchy to its new owner."""
REBOOT_ENV = "TUTELA_REBOOT_COMMAND"
"""The quorum-loss action 'fastboot' runs this shell command if set (the lab power-cycles
the node); otherwise it reboots the machine at once through /proc/sysrq-trigger."""
IN_SERVICE = frozenset({ResourceState.ISP.value, ResourceState.ISU.value})
"""A resource's states, as heartbeats carry them, in which it is in service."""
T = TypeVar("T")


class PeerDied(OperationError):
    """The peer asked to do something was declared DEAD before it answered."""


@dataclass(frozen=True)
class Snapshot:
    """This node's view of its peers at one decision tick, indexed once for every
    hierarchy's decision (sets instead of the heartbeats' lists)."""

    alive: frozenset[str]
    """Peers ALIVE now."""
    holds: dict[str, frozenset[str]]
    """Alive peer -> the roots whose leases it holds."""
    failed: dict[str, frozenset[str]]
    """Alive peer -> the roots that failed there."""
    states: dict[str, dict[str, str]]
    """Alive peer -> resource tag -> its state there."""
    ran: dict[str, dict[str, str]]
    """This node and every alive peer -> root -> when it last went into service there."""
    blocking: frozenset[str]
    """Nodes that hierarchies may not fail over away from (nodes[].failover: false)."""
    in_service_here: frozenset[str]
    """Resource tags in service on this node."""
    failed_here: frozenset[str]
    """Resource tags failed (OSF) on this node."""

    @classmethod
    def of(cls, me: str, reports: dict[str, dict[str, Any]], my_ran: dict[str, str],
           blocking: frozenset[str], my_states: Mapping[str, RuntimeState]) -> Snapshot:
        """From the alive peers' last heartbeats and this node's resource states."""
        return cls(frozenset(reports),
                   {p: frozenset(r.get("holds", ())) for p, r in reports.items()},
                   {p: frozenset(r.get("failed", ())) for p, r in reports.items()},
                   {p: r.get("states", {}) for p, r in reports.items()},
                   {me: my_ran} | {p: r.get("ran", {}) for p, r in reports.items()},
                   blocking,
                   frozenset(t for t, s in my_states.items() if s.state.in_service),
                   frozenset(t for t, s in my_states.items() if s.state == ResourceState.OSF))


class Ownership:
    def __init__(self, node: str, engine: NodeEngine, leases: Leases,
                 messenger: Messenger) -> None:
        self.node = node
        self.engine = engine
        self.leases = leases
        self.messenger = messenger
        self.failed: set[str] = set()
        """Roots that failed here beyond local recovery: this node is no candidate for them
        until an administrator restores them again."""
        self._vacant_since: dict[str, float] = {}
        self._yielding: dict[str, float] = {}
        """Roots handed over by switchover -> until when this node leaves them to the target."""
        self._fenced: dict[str, set[str]] = {}
        """Root -> peers fenced for it, so their stale last heartbeats are not fenced again;
        forgotten when a live owner is seen."""
        self._blocked_logged: set[str] = set()
        self._last_owner_seen: dict[str, str | None] = {}
        """Root -> the node seen owning it at the last decision tick."""
        self._settled_at = 0.0
        self._wake = asyncio.Event()
        self._deaths = asyncio.Event()
        """Set when a node is declared DEAD (then replaced): wakes `while_alive`."""
        self._busy: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._clustered_of: tuple[list[Hierarchy] | None, list[Hierarchy]] = (None, [])
        self.watchdog = WatchdogFence(
            leases.timing, lambda: self.engine.config.settings.fencing == "watchdog",
            lambda: leases.lease_ends({h.root for h in self._clustered()}),
            self._clustered_in_service)
        leases.on_effect = self._lease_effect
        messenger.handle("ownership.give", lambda e: self.give(str(e.payload["root"])))
        messenger.handle("ownership.take", lambda e: self.take(str(e.payload["root"])))
        messenger.handle("ownership.forget", self._forget_request)

    def start(self) -> None:
        settings = self.engine.config.settings
        # Peers already up are heard within one detection window; acquiring earlier could
        # start a hierarchy here that the cold-start order gives to a peer not yet heard.
        self._settled_at = time.monotonic() + settings.heartbeat_interval * (
            settings.heartbeat_misses + 1)
        self._task = spawn(self._loop(), name="ownership")
        self.watchdog.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.watchdog.stop()

    def heartbeat(self) -> dict[str, Any]:
        """What peers need to know: the hierarchies held here, those that failed here, and
        when each last went into service here (for the cold-start 'last' policy)."""
        clustered = self._clustered()
        return {"holds": [h.root for h in clustered if self.leases.holds(h.root)],
                "failed": sorted(self.failed), "ran": self._last_ran(clustered)}

    def _last_ran(self, hierarchies: list[Hierarchy]) -> dict[str, str]:
        """Root -> when it last went into service here; not for roots this node is handing
        on (switchback, switchover), which must not come back here as to their last node."""
        states, now = self.engine.states, time.monotonic()
        return {h.root: ran for h in hierarchies
                if h.root in states and (ran := states[h.root].last_in_service)
                and self._yielding.get(h.root, 0.0) <= now}

    def forget_failure(self, root: str) -> None:
        self.failed.discard(root)

    async def _forget_request(self, envelope: Envelope) -> dict[str, Any]:
        self.forget_failure(str(envelope.payload["root"]))
        return {}

    async def give(self, root: str) -> dict[str, Any]:
        """Switchover, the old owner's half: out of service here, lease released at once."""
        self._busy.add(root)
        self._yielding[root] = time.monotonic() + HANDOVER_GRACE
        try:
            await self.engine.remove(root)
        finally:
            self.leases.release(root)
            self._busy.discard(root)
        return {"node": self.node, "removed": [root]}

    async def take(self, root: str) -> dict[str, Any]:
        """Switchover, the new owner's half: acquire now (no rank wait), then restore."""
        self._busy.add(root)
        try:
            self.failed.discard(root)
            await self._acquire_and_restore(root)
        except LeaseUnavailable as error:
            raise OperationError(f"{root}: {error}") from None
        finally:
            self._busy.discard(root)
        return {"node": self.node, "restored": [root]}

    async def _loop(self) -> None:
        interval = self.engine.config.settings.heartbeat_interval
        while True:
            now = time.monotonic()
            if now >= self._settled_at:
                clustered = self._clustered()
                seen = self._snapshot(clustered)
                for hierarchy in clustered:
                    if hierarchy.root not in self._busy and now >= self._yielding.get(
                            hierarchy.root, 0.0):
                        self._step(hierarchy, seen)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                # The decision period: with the next heartbeat round, in its wake-up.
                async with asyncio.timeout_at(self._next_decision(interval)):
                    await self._wake.wait()

    def _next_decision(self, interval: float) -> float:
        at, now = self.messenger.next_round, asyncio.get_running_loop().time()
        return at if now < at <= now + interval * 1.5 else next_tick(interval)

    def wake(self) -> None:
        """Decide now, not at the next tick: a node died (its hierarchies may be vacant)."""
        self._wake.set()
        deaths, self._deaths = self._deaths, asyncio.Event()
        deaths.set()

    async def while_alive(self, peer: str, answer: Awaitable[T]) -> T:
        """`answer` (a request to `peer`), or PeerDied as soon as the failure detector
        declares `peer` DEAD: a request to a node that died would wait out its timeout
        (up to REMOTE_ACTION_TIMEOUT), though nothing will ever answer it."""
        call = asyncio.ensure_future(answer)
        death = asyncio.ensure_future(self._until_dead(peer))
        try:
            await asyncio.wait({call, death}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            death.cancel()
            call.cancel()  # when it is done already, this changes nothing
        if call.done() and not call.cancelled():
            return call.result()
        misses = self.engine.config.settings.heartbeat_misses
        raise PeerDied(f"{peer} was declared DEAD (no heartbeat on any path for {misses} "
                       "intervals) before it answered")

    async def _until_dead(self, peer: str) -> None:
        while self.messenger.detector.node_state(peer) == "ALIVE":
            await self._deaths.wait()

    def end_handover(self, root: str) -> None:
        """The switchover's target died before it took `root`: stop leaving it to the
        target, so the ownership decision (under the lease) takes it back here at once."""
        if self._yielding.pop(root, None) is not None:
            self.wake()

    def _snapshot(self, clustered: list[Hierarchy]) -> Snapshot:
        """What this node sees of its peers now, shared by every hierarchy's decision."""
        detector, heartbeats = self.messenger.detector, self.messenger.heartbeats
        return Snapshot.of(
            self.node, {p: heartbeats[p][1] for p in heartbeats
                        if detector.node_state(p) == "ALIVE"},
            self._last_ran(clustered),
            frozenset(n.name for n in self.engine.config.nodes if not n.failover),
            self.engine.states)

    def _clustered(self) -> list[Hierarchy]:
        # Asked by every heartbeat, watchdog check and decision: computed once per
        # configuration (the engine replaces its hierarchies with its configuration).
        hierarchies = self.engine.hierarchies
        if self._clustered_of[0] is not hierarchies:
            config = self.engine.config
            self._clustered_of = (hierarchies, [
                h for h in hierarchies if config.hierarchy_settings(h.root).clustered])
        return self._clustered_of[1]

    def _step(self, hierarchy: Hierarchy, seen: Snapshot) -> None:
        view = self._view(hierarchy, seen)
        decision = decide(view, rank_step(self.engine.config.settings.heartbeat_interval))
        if decision in ("acquire", "restore", "give_up"):
            self._busy.add(hierarchy.root)
            spawn(self._act(decision, hierarchy.root, view.failed_here))

    async def _act(self, decision: str, root: str, failed_here: bool) -> None:
        try:
            if decision == "acquire":
                await self._acquire_and_restore(root)
            elif decision == "restore":
                await self._restore(root)
            else:
                await self._give_up(root, failed_here)
        except RestoreRefused as error:
            log.warning("%s: %s; letting the lease go and trying again in %gs", root, error,
                        REFUSAL_BACKOFF)
            self.leases.release(root)
            self._yielding[root] = time.monotonic() + REFUSAL_BACKOFF
        except (OperationError, LeaseUnavailable) as error:
            log.warning("%s: %s", root, error)
        finally:
            self._busy.discard(root)

    async def _acquire_and_restore(self, root: str) -> None:
        if self.engine.states[root].state.in_service:  # e.g. just extended, or re-adopted
            log.info("%s: in service here without its lease; acquiring it", root)
        else:
            log.info("%s: no node runs it; trying to take it over", root)
        timing = self.leases.timing
        await self.leases.acquire(root, timeout=timing.duration * 3,
                                  remove_time=timing.watchdog_timeout)
        if self.engine.config.settings.fencing == "watchdog":
            try:
                self.watchdog.ensure_armed()
            except WatchdogUnavailable as error:
                self.leases.release(root)
                raise OperationError(f"not taking it over: {error}") from None
        await self._fence_previous_owner(root)
        await self._restore(root)

    async def _fence_previous_owner(self, root: str) -> None:
        """With fencing 'agent', power off every node that ran it and vanished, before
        restoring here."""
        settings = self.engine.config.settings
        if settings.fencing != "agent":
            return
        assert settings.fence_command is not None
        for previous in self._vanished_owners(root):
            await self._fence_node(root, previous, settings.fence_command)

    async def _fence_node(self, root: str, node: str, template: str) -> None:
        command = template.replace("{node}", node)
        log.warning("%s: fencing %s before taking over: %s", root, node, command)
        process = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            async with asyncio.timeout(FENCE_TIMEOUT):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            self.leases.release(root)
            raise OperationError(f"fencing {node} did not finish in {FENCE_TIMEOUT:g}s; "
                                 "not taking over") from None
        if process.returncode != 0:
            self.leases.release(root)
            raise OperationError(f"fencing {node} failed (exit {process.returncode}: "
                                 f"{output.decode(errors='replace').strip()}); not taking over")
        log.warning("%s: %s is fenced", root, node)
        self._fenced.setdefault(root, set()).add(node)

    def _vanished_owners(self, root: str) -> list[str]:
        """Peers that are not alive and whose last heartbeat said they ran `root`, less
        those this node fenced since."""
        fenced = self._fenced.get(root, set())
        return [peer for peer, (_, report) in sorted(self.messenger.heartbeats.items())
                if self.messenger.detector.node_state(peer) != "ALIVE" and peer not in fenced
                and (root in report.get("holds", ())
                     or report.get("states", {}).get(root) in IN_SERVICE)]

    async def _restore(self, root: str) -> None:
        if not self.leases.holds(root):
            return
        try:
            await self.engine.restore(root, allowed=lambda: self.leases.holds(root))
        except (RestoreRefused, LeaseGone):
            raise  # not this node's failure: the caller lets go and waits
        except OperationError:
            self.failed.add(root)  # let the next node try
            raise

    async def _give_up(self, root: str, failed_here: bool) -> None:
        log.info("%s: giving it up (%s)", root, "it failed here" if failed_here
                 else "switchback, or taken out of service")
        if failed_here:
            self.failed.add(root)
        else:  # it ran here last, so the cold-start order would put this node first again
            self._yielding[root] = time.monotonic() + HANDOVER_GRACE
        try:
            await self.engine.remove(root)
        finally:
            self.leases.release(root)
            self._vacant_since.pop(root, None)

    def _lease_effect(self, effect: MustRelease | LeaseLost) -> None:
        if effect.name not in {h.root for h in self._clustered()}:
            return  # the configuration lease: its holder gives up by itself
        if isinstance(effect, MustRelease):
            log.error("%s: the lease could not be renewed (no majority?); taking it out of "
                      "service, addresses first, before the lease ends in %.2fs",
                      effect.name, effect.remaining)
            spawn(self._fence_self(effect.name, effect.remaining))
        elif isinstance(effect, LeaseLost):
            log.error("%s: the lease ended before it was out of service here", effect.name)
            spawn(self._fence_self(effect.name, 0.0))

    async def _fence_self(self, root: str, lease_left: float) -> None:
        """Self-fencing: out of service before another node may take over; if that does
        not finish within the lease, the quorum-loss action."""
        self._busy.add(root)
        action = self.engine.config.settings.quorum_loss_action
        try:
            if lease_left > 0 or action == "osu":
                try:
                    async with asyncio.timeout(lease_left if lease_left > 0 else None):
                        await self.engine.fence(root)
                    return
                except TimeoutError:
                    log.error("%s: still not out of service when the lease ended", root)
                except OperationError as error:
                    log.error("%s: self-fencing remove failed: %s", root, error)
            await self._quorum_loss_action(root, action)
        finally:
            self.leases.release(root)
            self._busy.discard(root)
            # Without a majority it cannot win it back; do not keep asking for a lease.
            self._yielding[root] = time.monotonic() + self.leases.timing.duration
            self.watchdog.check()

    async def _quorum_loss_action(self, root: str, action: str) -> None:
        log.critical("%s: quorum-loss action %r", root, action)
        if action == "fastboot":
            self._reboot()
        try:
            # fastkill, and osu (remove, keep running) whose timed remove ran out: finish it
            await self.engine.fence(root, force=action != "osu")
        except OperationError as error:
            log.critical("%s: %s could not take it out of service: %s", root, action, error)

    def _reboot(self) -> None:
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

    def _clustered_in_service(self) -> bool:
        """Whether any resource of a clustered hierarchy is, or may still be, in service
        here (a failed one may hold some of its parts): the watchdog must stay armed."""
        states = self.engine.states
        return any(states[t].state.in_service or states[t].state == ResourceState.OSF
                   for h in self._clustered() for t in h.members if t in states)

    def _view(self, hierarchy: Hierarchy, seen: Snapshot) -> View:
        root = hierarchy.root
        settings = self.engine.config.hierarchy_settings(root)
        peers = sorted(p for p in self._peers(settings) if p in seen.alive)
        alive = frozenset([self.node, *peers])
        owner = next((p for p in peers
                      if root in seen.holds[p] or seen.states[p].get(root) in IN_SERVICE),
                     None)
        if owner is not None:
            self._fenced.pop(root, None)
        i_hold = self.leases.holds(root)
        # Vacant only counts while it should be in service: otherwise the rank wait would
        # already have passed when `tutela restore` sets the target, and all race.
        vacant = not i_hold and owner is None and settings.target == "in_service"
        now = time.monotonic()
        previous = self._last_owner_seen.get(root)
        parts_here = not hierarchy.members.isdisjoint(seen.in_service_here)
        if vacant and root not in self._vacant_since and not parts_here and (
                previous is None or previous in alive - {self.node}):
            # Its owner let it go alive and well (or this node has just started and does
            # not know who had it): a switchover's target, or the next node for a
            # switchback, may be taking it right now; do not race it for the lease.
            # Not when it runs here (just extended, or re-adopted after a restart): it
            # must be under a lease at once, or a partition could start it elsewhere too.
            self._vacant_since[root] = now + RELEASE_GRACE
        since = self._vacant_since.setdefault(root, now) if vacant else None
        if not vacant:
            self._vacant_since.pop(root, None)
        self._last_owner_seen[root] = owner if owner is not None else (
            self.node if i_hold else None)
        return View(
            me=self.node, settings=settings, alive=alive, i_hold=i_hold,
            in_service_here=root in seen.in_service_here,
            parts_in_service_here=parts_here,
            failed_here=root in self.failed
            or not hierarchy.members.isdisjoint(seen.failed_here),
            owner_elsewhere=owner,
            failed_on=frozenset(p for p in peers if root in seen.failed[p])
            | ({self.node} if root in self.failed else set()),
            last_owner=_last_owner(root, {n: seen.ran[n] for n in alive}),
            vacant_for=None if since is None else now - since,
            failover_blocked_by=self._failover_blocked_by(root, seen.blocking))

    def _failover_blocked_by(self, root: str, blocking: frozenset[str]) -> str | None:
        if not blocking:
            return None
        node = next((n for n in self._vanished_owners(root) if n in blocking), None)
        if node is None:
            self._blocked_logged.discard(root)
        elif root not in self._blocked_logged:
            self._blocked_logged.add(root)
            log.warning("%s: %s ran it and is gone, but failover away from %s is blocked; "
                        "confirm a takeover with 'tutela switchover %s --to NODE'",
                        root, node, node, root)
        return node

    def _peers(self, settings: HierarchySettings) -> list[str]:
        return [e.node for e in settings.equivalencies if e.node != self.node]


def _last_owner(root: str, ran: dict[str, dict[str, str]]) -> str | None:
    """The node that most recently put `root` into service (ISO UTC times compare as
    strings; nodes' clocks are assumed NTP-synchronised to well under a failover)."""
    times = {node: when[root] for node, when in ran.items() if root in when}
    return max(times, key=lambda node: times[node]) if times else None
