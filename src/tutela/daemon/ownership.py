"""Runs clustered hierarchies where the leases say: acquires, restores, gives up, fails over.

Every heartbeat interval it looks at each hierarchy with equivalencies, asks the pure
`engine.ownership.decide` what to do, and does it; a hierarchy runs only under its lease.
When nobody may take a vacant hierarchy over, it keeps why (`engine.stuck`), tells its peers
with its heartbeats, and retries a refused takeover less and less often.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tutela import clock
from tutela.arbiter.holder import LeaseLost, MustRelease
from tutela.daemon.leases import Leases, LeaseUnavailable
from tutela.daemon.watchdog import WatchdogFence, WatchdogUnavailable
from tutela.engine import damping, stuck
from tutela.engine.cluster_view import Snapshot, runs_there
from tutela.engine.node import (
    LeaseGone,
    NodeEngine,
    OperationError,
    RestoreRefused,
)
from tutela.engine.ownership import View, decide, rank_step
from tutela.engine.peer_report import PeerReport
from tutela.engine.stuck import Blocked, Stuck
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import Messenger, spawn
from tutela.lcm.ticks import next_tick
from tutela.model.config import ClusterConfig, HierarchySettings
from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

log = logging.getLogger("tutela.ownership")
FENCE_TIMEOUT = 30.0
RELEASE_GRACE = 1.0
"""Seconds the other candidates leave a hierarchy whose live owner released it (a
switchover or switchback hands it to a chosen node) before they follow their rank order."""
HANDOVER_GRACE = 10.0
"""Seconds the old owner leaves a switched-over hierarchy to its new owner."""
REBOOT_ENV = "TUTELA_REBOOT_COMMAND"
"""The quorum-loss action 'fastboot' runs this shell command if set (the lab power-cycles
the node); otherwise it reboots the machine at once through /proc/sysrq-trigger."""
T = TypeVar("T")


class PeerDied(OperationError):
    """The peer asked to do something was declared DEAD before it answered."""


class Ownership:
    def __init__(self, node: str, engine: NodeEngine, leases: Leases,
                 messenger: Messenger[PeerReport], config_behind: Callable[[], bool] = lambda: False
                 ) -> None:
        self.node = node
        self._config_behind = config_behind
        """Whether an alive peer announces a newer configuration than this node's: no
        takeover until it is fetched (it may say that the owner is in maintenance)."""
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
        self._last_owner_seen: dict[str, str | None] = {}
        """Root -> the node seen owning it at the last decision tick."""
        self._last_known_owner: dict[str, str] = {}
        """Root -> the last node seen owning it (this one included), kept while vacant."""
        self.stuck: dict[str, Stuck] = {}
        """Roots this node sees running nowhere although they should run -> why."""
        self._retries = stuck.Retries()
        """Refused takeover attempts, and when to try again (tutela.clock)."""
        self._failovers = damping.Failovers()
        """Recent failovers of each hierarchy, for failover damping (wall clock)."""
        self._alive_before: frozenset[str] = frozenset()
        self._settled_at = 0.0
        self._wake = asyncio.Event()
        self._deaths = asyncio.Event()
        """Set when a node is declared DEAD (then replaced): wakes `while_alive`."""
        self._busy: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._clustered_of: tuple[list[Hierarchy] | None, list[Hierarchy]] = (None, [])
        self._maintenance_of: tuple[ClusterConfig | None, dict[str, str]] = (None, {})
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
        self._settled_at = clock.now() + settings.heartbeat_interval * (
            settings.heartbeat_misses + 1)
        self._task = spawn(self._loop(), name="ownership")
        self.watchdog.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.watchdog.stop()

    def heartbeat(self) -> PeerReport:
        """What peers need to know: the hierarchies held here, those that failed here, and
        when each last went into service here (for the cold-start 'last' policy); why this
        node sees hierarchies stuck, and the recent failovers of those it holds."""
        clustered = self._clustered()
        holds = [h.root for h in clustered if self.leases.holds(h.root)]
        return PeerReport(
            holds=frozenset(holds), failed=frozenset(self.failed),
            ran=self._last_ran(clustered), stuck=dict(self.stuck),
            failovers={root: tuple(times)
                       for root, times in self._failovers.report(holds).items()})

    def _last_ran(self, hierarchies: list[Hierarchy]) -> dict[str, str]:
        """Root -> when it last went into service here; not for roots this node is handing
        on (switchback, switchover), which must not come back here as to their last node."""
        states, now = self.engine.states, clock.now()
        return {h.root: ran for h in hierarchies
                if h.root in states and (ran := states[h.root].last_in_service)
                and self._yielding.get(h.root, 0.0) <= now}

    def forget_failure(self, root: str) -> None:
        """An administrator restored it: a candidate again here, its failover hold ended,
        a refused takeover retried at once."""
        self.failed.discard(root)
        self._failovers.clear(root, time.time())
        self._retries.reset(root)

    async def _forget_request(self, envelope: Envelope) -> dict[str, Any]:
        self.forget_failure(str(envelope.payload["root"]))
        return {}

    async def give(self, root: str) -> dict[str, Any]:
        """Switchover, the old owner's half: out of service here, lease released at once."""
        self._busy.add(root)
        self._yielding[root] = clock.now() + HANDOVER_GRACE
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
            now = clock.now()
            if now >= self._settled_at:
                clustered = self._clustered()
                seen = self._snapshot(clustered)
                self._follow(seen)
                behind = self._config_behind()
                for hierarchy in clustered:
                    root = hierarchy.root
                    if root in self._busy:
                        continue
                    if now < self._yielding.get(root, 0.0) or self._retries.waiting(root, now):
                        self._settle_if_owned(hierarchy, seen)
                    elif not self._maintenance_step(hierarchy, seen):
                        self._step(hierarchy, seen, behind)
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

    def _follow(self, seen: Snapshot) -> None:
        """Per tick, before the decisions (also of hierarchies this node is busy with): who
        holds what and the failover histories the owners report, and a retry at once for
        every refused takeover when a node came or went (the owner that held on may be
        back, or gone for good)."""
        for peer, histories in seen.failovers.items():
            for root in seen.holds[peer]:
                self._last_known_owner[root] = peer
                self._failovers.adopt(root, histories.get(root, ()))
        if seen.alive != self._alive_before:
            self._alive_before = seen.alive
            self._retries.reset()

    def _settle_if_owned(self, hierarchy: Hierarchy, seen: Snapshot) -> None:
        """While this node leaves a hierarchy alone: if a node runs it, it is not stuck."""
        root = hierarchy.root
        settings = self.engine.config.hierarchy_settings(root)
        if self.leases.holds(root) or self._owner(root, settings, seen) is not None:
            self._running(root)

    def _running(self, root: str) -> None:
        """A node runs it (or it should not run): nothing to report, nothing to retry."""
        self.stuck.pop(root, None)
        self._failovers.running(root)
        self._retries.reset(root)

    def _rank_step(self) -> float:
        settings = self.engine.config.settings
        detection = settings.heartbeat_interval * settings.heartbeat_misses
        return rank_step(settings.heartbeat_interval, self.leases.timing.duration - detection)

    def _step(self, hierarchy: Hierarchy, seen: Snapshot, behind: bool = False) -> None:
        view = self._view(hierarchy, seen)
        verdict = decide(view, self._rank_step())
        root = hierarchy.root
        if verdict.decision == "acquire" and behind:
            return  # decide again once this node has the configuration its peers have
        if view.i_hold or view.owner_elsewhere or view.settings.target != "in_service":
            self._running(root)
        elif verdict.blocked is not None:
            self._note(root, verdict.blocked)
        elif root in self.stuck and (verdict.decision == "none"
                                     or self.stuck[root].reason in stuck.DECIDED):
            del self.stuck[root]  # what held it is gone, or it is another node's turn
        if verdict.decision in ("acquire", "restore", "give_up"):
            self._busy.add(root)
            spawn(self._act(verdict.decision, root, view))

    def maintained(self) -> dict[str, str]:
        """Root -> the node in maintenance that left it in service (configuration)."""
        config = self.engine.config
        if self._maintenance_of[0] is not config:
            self._maintenance_of = (config, maintenance_by_root(config))
        return self._maintenance_of[1]

    def _maintenance_step(self, hierarchy: Hierarchy, seen: Snapshot) -> bool:
        """A hierarchy left in service by a maintenance stop: another node's is left alone
        (no decision at all: its owner's silence is expected); this node's own, re-adopted
        at its start, goes under its lease at once, without the rank wait. Whether it was
        one of those (and handled)."""
        root = hierarchy.root
        away = self.maintained().get(root)
        if away is None or self.leases.holds(root):
            return False
        settings = self.engine.config.hierarchy_settings(root)
        owner = self._owner(root, settings, seen)
        if away != self.node:
            if owner is not None or settings.target != "in_service":
                self._running(root)  # back (or confirmed elsewhere): it says so itself
            else:
                self._note(root, Blocked("maintenance", away, self.node))
            return True
        if owner is not None or hierarchy.members.isdisjoint(seen.in_service_here):
            return False  # taken over by confirmation, or gone here: the usual decision
        log.info("%s: left in service by the maintenance stop; taking its lease again", root)
        self._busy.add(root)
        spawn(self._act("acquire", root, self._view(hierarchy, seen)))
        return True

    def maintenance_settled(self) -> bool:
        """Whether this node's maintenance record may go: every clustered hierarchy it left
        in service is under its lease here again, or no longer in service here (one no
        longer clustered needs no lease)."""
        states, mine = self.engine.states, self.maintained()
        return all(self.leases.holds(h.root) for h in self._clustered()
                   if mine.get(h.root) == self.node
                   and any(states[t].state.in_service for t in h.members if t in states))

    def in_service_here(self) -> list[str]:
        """The clustered hierarchies with any resource in service here (a maintenance stop
        leaves them so)."""
        states = self.engine.states
        return [h.root for h in self._clustered()
                if any(states[t].state.in_service for t in h.members if t in states)]

    def _note(self, root: str, blocked: Blocked) -> bool:
        """Keep why `root` is stuck; log it when the cause is new. Whether it is."""
        previous = self.stuck.get(root)
        new = previous is None or not previous.same_cause(blocked)
        self.stuck[root] = stuck.note(previous, blocked, time.time())
        if new and blocked.reason in stuck.DECIDED:
            settings = self.engine.config.settings
            log.warning("%s: %s", root, stuck.explain(self.stuck[root], root, settings.fencing,
                                                      time.time()))
        return new

    async def _act(self, decision: str, root: str, view: View) -> None:
        try:
            if decision == "acquire":
                await self._acquire_and_restore(root, automatic=True)
                self._taken_over(root)
            elif decision == "restore":
                await self._restore(root)
            else:
                await self._give_up(root, view.failed_here)
        except RestoreRefused as error:
            self.leases.release(root)
            self._refused(root, Blocked("address_answers", self._holder(root),
                                        _refusal(error)), f"{error}; letting the lease go")
        except TakeoverBlocked as error:
            self._refused(root, error.blocked, str(error))
        except LeaseUnavailable as error:
            self._refused(root, Blocked("no_quorum", self._holder(root), str(error)),
                          str(error))
        except OperationError as error:
            log.warning("%s: %s", root, error)
        finally:
            self._busy.discard(root)

    def _refused(self, root: str, blocked: Blocked, message: str) -> None:
        """A takeover attempt that waits on something else: keep why, and try again later,
        each time later (up to stuck.RETRY_MAX); log only a new cause."""
        delay = self._retries.refused(root, clock.now())
        new = self._note(root, blocked)
        log.log(logging.WARNING if new else logging.DEBUG,
                "%s: %s; trying again in %gs, then less often while nothing changes", root,
                message, delay)

    def _holder(self, root: str) -> str | None:
        """The node that ran `root` last, as far as this node saw, if not this one."""
        holder = self._last_known_owner.get(root)
        return None if holder == self.node else holder

    def _taken_over(self, root: str) -> None:
        """`root` is in service here under its lease; from another node, that counts as a
        failover for the damping, unless an administrator's restore ordered it."""
        previous = self._holder(root)  # now: an acquire may have waited while it moved
        self._last_known_owner[root] = self.node
        rule = self.engine.config.settings.failover_damping
        held = self._failovers.taken_over(root, previous, time.time(), rule)
        self._running(root)
        if held is not None:
            log.warning("%s: %d failovers in %gs: no automatic failover for %gs "
                        "(failover_damping; 'tutela restore %s' ends the hold)",
                        root, held.failovers, rule.window, rule.hold, root)

    async def _acquire_and_restore(self, root: str, automatic: bool = False) -> None:
        """Lease, fence, restore. `automatic`: this node's own decision (not a switchover),
        which failover damping may hold."""
        first = self._retries.first(root)
        if self.engine.states[root].state.in_service:  # e.g. just extended, or re-adopted
            log.info("%s: in service here without its lease; acquiring it", root)
        else:
            log.log(logging.INFO if first else logging.DEBUG,
                    "%s: no node runs it; trying to take it over", root)
        timing = self.leases.timing
        holder = self._holder(root)
        if automatic and holder is not None and root not in self.stuck:
            self._note(root, Blocked("lease_wait", holder, left=timing.duration))
        await self.leases.acquire(root, timeout=timing.duration * 3,
                                  remove_time=self.watchdog.remove_time)
        held = self._hold(root) if automatic else None
        if held is not None and self._holder(root) is not None and (
                root not in self._failovers.ordered):
            self.leases.release(root)  # it failed over while this node waited for votes
            raise TakeoverBlocked(held, "failover held (failover_damping)")
        if self.engine.config.settings.fencing == "watchdog":
            try:
                self.watchdog.ensure_armed()
            except WatchdogUnavailable as error:
                self.leases.release(root)
                raise TakeoverBlocked(Blocked("watchdog_unavailable", detail=str(error)),
                                      f"not taking it over: {error}") from None
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
            why = f"it did not finish in {FENCE_TIMEOUT:g}s"
            raise TakeoverBlocked(Blocked("fence_failed", node, why),
                                  f"fencing {node}: {why}; not taking over") from None
        if process.returncode != 0:
            self.leases.release(root)
            why = f"exit {process.returncode}: {output.decode(errors='replace').strip()}"
            raise TakeoverBlocked(Blocked("fence_failed", node, why),
                                  f"fencing {node} failed ({why}); not taking over")
        log.warning("%s: %s is fenced", root, node)
        self._fenced.setdefault(root, set()).add(node)

    def _vanished_owners(self, root: str) -> list[str]:
        """Peers that are not alive and whose last heartbeat said they ran `root`, less
        those this node fenced since."""
        fenced = self._fenced.get(root, set())
        detector = self.messenger.detector
        found = {peer for peer, (_, report) in self.messenger.heartbeats.items()
                 if runs_there(report, root)}
        away = self.maintained().get(root)  # confirmed by switchover: it may run it still
        if away is not None and away != self.node:
            found.add(away)
        return sorted(p for p in found if detector.node_state(p) != "ALIVE" and p not in fenced)

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
            self._yielding[root] = clock.now() + HANDOVER_GRACE
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
            self._yielding[root] = clock.now() + self.leases.timing.duration
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

    def owner(self, root: str) -> str | None:
        """The node a switchover asks to give `root` up: this one or an alive peer that holds
        its lease or has it in service. A node that won the lease and is still restoring
        (a failover or switchback under way) is the owner too: not asked, it would go on
        renewing the lease that the switchover's target waits for in vain."""
        if self.leases.holds(root) or self.engine.states[root].state.in_service:
            return self.node
        settings = self.engine.config.hierarchy_settings(root)
        return self._owner(root, settings, self._snapshot(self._clustered()))

    def _owner(self, root: str, settings: HierarchySettings, seen: Snapshot) -> str | None:
        """An alive peer that holds `root`'s lease or runs it."""
        return seen.owner(root, self._peers(settings))

    def _view(self, hierarchy: Hierarchy, seen: Snapshot) -> View:
        root = hierarchy.root
        settings = self.engine.config.hierarchy_settings(root)
        peers = sorted(p for p in self._peers(settings) if p in seen.alive)
        alive = frozenset([self.node, *peers])
        owner = self._owner(root, settings, seen)
        if owner is not None:
            self._fenced.pop(root, None)
        i_hold = self.leases.holds(root)
        if owner is not None or i_hold:
            self._last_known_owner[root] = owner or self.node
        # Vacant only counts while it should be in service: otherwise the rank wait would
        # already have passed when `tutela restore` sets the target, and all race.
        vacant = not i_hold and owner is None and settings.target == "in_service"
        now = clock.now()
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
            failover_blocked_by=self._failover_blocked_by(root, seen.blocking),
            previous_owner=self._last_known_owner.get(root), hold=self._hold(root))

    def _failover_blocked_by(self, root: str, blocking: frozenset[str]) -> str | None:
        if not blocking:
            return None
        return next((n for n in self._vanished_owners(root) if n in blocking), None)

    def _hold(self, root: str) -> Blocked | None:
        """The failover damping's hold on `root` now, if any, as the reason it gives."""
        window = self.engine.config.settings.failover_damping.window
        now = time.time()
        held = self._damping_hold(root, now)
        if held is None:
            return None
        return Blocked("damped", self._holder(root),
                       f"{held.failovers} failovers in {window:g}s", held.until - now)

    def _damping_hold(self, root: str, now: float) -> damping.Hold | None:
        rule = self.engine.config.settings.failover_damping
        return self._failovers.hold(root, now, rule)

    def report(self) -> dict[str, dict[str, Any]]:
        """For `tutela status`: root -> its failover hold here, and why each node that is
        alive (this one too) sees it running nowhere; only roots with something to say."""
        settings = self.engine.config.settings
        now, fencing, window = time.time(), settings.fencing, settings.failover_damping.window
        heartbeats, detector = self.messenger.heartbeats, self.messenger.detector
        by_node = {self.node: self.stuck} | {
            peer: report.stuck for peer, (_, report) in sorted(heartbeats.items())
            if detector.node_state(peer) == "ALIVE"}
        found: dict[str, dict[str, Any]] = {}
        for hierarchy in self._clustered():
            root = hierarchy.root
            held = self._damping_hold(root, now)
            reasons = [_stuck_status(node, records[root], root, fencing, now)
                       for node, records in by_node.items() if root in records]
            if held is not None or reasons:
                found[root] = {"hold": None if held is None else {
                    "failovers": held.failovers, "window": window,
                    "left": round(held.until - now, 1), "until": _iso(held.until)},
                    "stuck": reasons}
        return found

    def _peers(self, settings: HierarchySettings) -> list[str]:
        return [e.node for e in settings.equivalencies if e.node != self.node]


class TakeoverBlocked(OperationError):
    """A takeover attempt stopped by something that waits on another node or the
    administrator (a failed fence, no watchdog); why, as data."""

    def __init__(self, blocked: Blocked, message: str) -> None:
        super().__init__(message)
        self.blocked = blocked


def maintenance_by_root(config: ClusterConfig) -> dict[str, str]:
    """Root -> the node whose maintenance stop left it in service."""
    return {root: node.name for node in config.nodes if node.maintenance is not None
            for root in node.maintenance.hierarchies}


def _refusal(error: RestoreRefused) -> str:
    """What the pre-check said, without the engine's preamble."""
    text = str(error)
    return text.partition("refused before any change: ")[2] or text


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(timespec="seconds")


def _stuck_status(node: str, record: Stuck, root: str, fencing: str, now: float
                  ) -> dict[str, Any]:
    """One node's reason in `tutela status --json`."""
    return {"node": node, "reason": record.reason, "holder": record.holder,
            "detail": record.detail, "since": _iso(record.since),
            "until": None if record.until is None else _iso(record.until),
            "left": None if record.until is None else round(max(record.until - now, 0), 1),
            "message": stuck.explain(record, root, fencing, now)}


def _last_owner(root: str, ran: Mapping[str, Mapping[str, str]]) -> str | None:
    """The node that most recently put `root` into service (ISO UTC times compare as
    strings; nodes' clocks are assumed NTP-synchronised to well under a failover)."""
    times = {node: when[root] for node, when in ran.items() if root in when}
    return max(times, key=lambda node: times[node]) if times else None
