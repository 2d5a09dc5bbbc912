"""Runs clustered hierarchies where the leases say: the thin driver of the ownership core.

Every heartbeat interval it hands `engine.ownership_core` what this node sees (the cluster
view, the leases held here, the configuration) and carries out the effects: lease rounds,
restores and removes through the engine, fencing through `daemon.fencing`; it tells the core
how each ended. It serves the switchover's two halves (give, take) and the peers' requests.
The rules and their timers are the core's (docs/failover.md, "Ownership rules").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from tutela import clock
from tutela.arbiter.holder import LeaseLost, MustRelease
from tutela.daemon.fencing import FenceFailed, Fencing
from tutela.daemon.leases import LeaseDeferred, LeaseLetGo, Leases, LeaseUnavailable
from tutela.engine import stuck
from tutela.engine.cluster_view import Snapshot
from tutela.engine.node import LeaseGone, NodeEngine, OperationError, RestoreRefused
from tutela.engine.ownership_core import (
    Acquire,
    ArmWatchdog,
    ClearStuck,
    Effect,
    FencePeer,
    FenceSelf,
    GiveUp,
    Held,
    NoteStuck,
    OwnershipCore,
    QuorumLossAction,
    Release,
    Restore,
    Situation,
    clustered,
    maintenance_by_root,
)
from tutela.engine.peer_report import PeerReport
from tutela.engine.stuck import Blocked, Stuck
from tutela.journal.events import Emitter, correlation_id, no_events, recorded
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import Messenger, spawn
from tutela.lcm.ticks import next_tick
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

log = logging.getLogger("tutela.ownership")
T = TypeVar("T")
__all__ = ["Ownership", "PeerDied", "maintenance_by_root"]


class PeerDied(OperationError):
    """The peer asked to do something was declared DEAD before it answered."""


class Ownership:
    def __init__(self, node: str, engine: NodeEngine, leases: Leases,
                 messenger: Messenger[PeerReport],
                 config_behind: Callable[[], bool] = lambda: False,
                 left_untold: Iterable[str] = ()) -> None:
        self.node = node
        self._config_behind = config_behind
        """Whether an alive peer announces a newer configuration than this node's: no
        takeover until it is fetched (it may say that the owner is in maintenance)."""
        self.engine = engine
        self.leases = leases
        self.messenger = messenger
        self.core = OwnershipCore(node, leases.timing.duration, left_here=set(left_untold))
        self.journal: Emitter = no_events
        self._correlation: dict[str, str] = {}
        """Root -> the id of its records since this node last won its lease."""
        self._under_way: dict[str, set[asyncio.Future[Any]]] = {}
        """Root -> the tasks acting on it here (a takeover, restore, give-up or self-fence
        the core started, or a switchover's give or take), as the core's `busy` counts
        them: one, or a self-fence beside the action that the lease's end overtook."""
        self._wake = asyncio.Event()
        self._deaths = asyncio.Event()
        """Set when a node is declared DEAD (then replaced): wakes `while_alive`."""
        self._task: asyncio.Task[None] | None = None
        self._clustered_of: tuple[list[Hierarchy] | None, list[Hierarchy]] = (None, [])
        self._maintenance_of: tuple[ClusterConfig | None, dict[str, str]] = (None, {})
        self.fencing = Fencing(
            engine, leases.timing,
            lambda: leases.lease_ends({h.root for h in self._clustered()}),
            self._clustered_in_service)
        self.watchdog = self.fencing.watchdog
        self.core.remove_time = self.fencing.remove_time
        leases.on_effect = self._lease_effect
        messenger.handle("ownership.give", lambda e: self.give(str(e.payload["root"])))
        messenger.handle("ownership.take", lambda e: self.take(str(e.payload["root"])))
        messenger.handle("ownership.forget", self._forget_request)

    @property
    def stuck(self) -> dict[str, Stuck]:
        """Roots this node sees running nowhere although they should run -> why."""
        return self.core.stuck

    def start(self) -> None:
        self.core.start(clock.now(), self.engine.config)
        self._task = spawn(self._loop(), name="ownership")
        self.fencing.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.fencing.stop()

    def heartbeat(self) -> PeerReport:
        """What peers need to know: the hierarchies held here, those that failed here, and
        when each last went into service here (for the cold-start 'last' policy); why this
        node sees hierarchies stuck, and the recent failovers of those it holds."""
        clustered, config = self._clustered(), self.engine.config
        holds = [h.root for h in clustered if self.leases.holds(h.root)]
        in_service = frozenset(t for t, s in self.engine.states.items() if s.state.in_service)
        unleased = self.core.running_unleased(clustered, in_service, frozenset(holds), config)
        return PeerReport(
            holds=frozenset(holds), failed=frozenset(self.core.failed),
            ran=self._last_ran(clustered), stuck=dict(self.core.stuck),
            failovers={root: tuple(times)
                       for root, times in self.core.failovers_report(holds).items()},
            unleased=self.core.unleased_report(unleased, clock.now(), config))

    def _last_ran(self, hierarchies: list[Hierarchy]) -> dict[str, str]:
        """Root -> when it last went into service here (less what it hands on)."""
        states = self.engine.states
        return self.core.ran_to_report(
            {h.root: ran for h in hierarchies
             if h.root in states and (ran := states[h.root].last_in_service)}, clock.now())

    def forget_failure(self, root: str) -> None:
        """An administrator restored it: a candidate again here, its failover hold ended,
        a refused takeover retried at once."""
        self.core.forget_failure(root, time.time())

    async def _forget_request(self, envelope: Envelope) -> dict[str, Any]:
        self.forget_failure(str(envelope.payload["root"]))
        return {}

    async def give(self, root: str) -> dict[str, Any]:
        """Switchover, the old owner's half: out of service here, lease released at once."""
        await self._after_action_on(root)
        self.core.give(root, clock.now())
        try:
            with self._acting_on(root), recorded(
                    self.journal, "remove", root, "switchover: another node takes it",
                    self._correlation.get(root, "")):
                await self.engine.remove(root)
        finally:
            self.leases.release(root)
            self.core.done(root)
        return {"node": self.node, "removed": [root]}

    async def take(self, root: str) -> dict[str, Any]:
        """Switchover, the new owner's half: acquire now (no rank wait), then restore.

        The vacancy the old owner's give made may have started an automatic takeover here
        already: that one ends first (two acquires of one lease at once would leave the
        slower one waiting for a win that came, then letting the lease go)."""
        await self._after_action_on(root)
        if self.leases.holds(root) and self.engine.states[root].state.in_service:
            return {"node": self.node, "restored": [root]}  # that takeover took it
        acquire = self.core.take(root)
        try:
            with self._acting_on(root):
                await self._takeover(acquire)
        except LeaseUnavailable as error:
            raise OperationError(f"{root}: {error}") from None
        except FenceFailed:
            self.leases.release(root)
            raise
        finally:
            self.core.done(root)
        return {"node": self.node, "restored": [root]}

    # --- the decision tick -----------------------------------------------------------------

    async def _loop(self) -> None:
        interval = self.engine.config.settings.heartbeat_interval
        while True:
            for effect in self.core.tick(self._situation()):
                self._start(effect)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                # The decision period: with the next heartbeat round, in its wake-up.
                async with asyncio.timeout_at(self._next_decision(interval)):
                    await self._wake.wait()

    def _next_decision(self, interval: float) -> float:
        at, now = self.messenger.next_round, asyncio.get_running_loop().time()
        return at if now < at <= now + interval * 1.5 else next_tick(interval)

    def _situation(self) -> Situation:
        """What this node knows now, for the core."""
        clustered = self._clustered()
        return Situation(
            clock.now(), time.time(), self.engine.config, self.engine.hierarchies,
            self._snapshot(clustered),
            {peer: report for peer, (_, report) in self.messenger.heartbeats.items()},
            frozenset(h.root for h in clustered if self.leases.holds(h.root)),
            self._config_behind(), self._unleased_elsewhere())

    def _unleased_elsewhere(self) -> dict[str, tuple[str, float]]:
        """Root -> the peer whose last report said it ran it without its lease and when
        (`clock.now()`) it has it out of service at the latest, counted from when that
        report arrived, stretched by the clocks' drift; the latest such peer per root."""
        mono, now = time.monotonic(), clock.now()
        stretch = 1 + self.leases.timing.drift
        found: dict[str, tuple[str, float]] = {}
        for peer, (heard, report) in self.messenger.heartbeats.items():
            for root, left in report.unleased.items():
                until = now + (heard - mono) + left * stretch
                if root not in found or until > found[root][1]:
                    found[root] = (peer, until)
        return found

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
            self._clustered_of = (hierarchies, clustered(self.engine.config, hierarchies))
        return self._clustered_of[1]

    def _start(self, effect: Effect) -> None:
        """An effect of the tick: an action under way in its own task, or a note."""
        if isinstance(effect, Acquire | Restore | GiveUp):
            self._track(effect.root, spawn(self._act(effect)))
        elif isinstance(effect, FenceSelf):  # in service here without its lease
            log.error("%s: %s: taking it out of service (within %.2fs) before another node "
                      "may take it over", effect.root, _UNLEASED, effect.within or 0.0)
            self._track(effect.root, spawn(self._fence_self(effect)))
        else:
            self._noted(effect)

    def _track(self, root: str, action: asyncio.Future[Any]) -> None:
        """`action` acts on `root` until it is done (the core counts it in `busy`)."""
        self._under_way.setdefault(root, set()).add(action)
        action.add_done_callback(lambda done: self._ended(root, done))

    def _ended(self, root: str, action: asyncio.Future[Any]) -> None:
        actions = self._under_way.get(root, set())
        actions.discard(action)
        if not actions:
            self._under_way.pop(root, None)

    @contextlib.contextmanager
    def _acting_on(self, root: str) -> Iterator[None]:
        """A request's action on `root` (a switchover's give or take), tracked like a task."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._track(root, done)
        try:
            yield
        finally:
            done.set_result(None)

    async def _after_action_on(self, root: str) -> None:
        """Wait until no action on `root` is under way here."""
        while actions := self._under_way.get(root):
            await asyncio.wait(set(actions))

    def _noted(self, effect: Effect) -> None:
        if isinstance(effect, NoteStuck):
            record, root = effect.record, effect.root
            if effect.message is not None:  # what a refused attempt said
                log.warning("%s: %s", root, effect.message)
                self.journal("takeover.blocked", root, effect.message,
                             correlation=self._correlation.get(root, ""),
                             details={"reason": record.reason, "holder": record.holder})
            elif record.reason in stuck.DECIDED:
                fencing = self.engine.config.settings.fencing
                why = stuck.explain(record, root, fencing, time.time())
                log.warning("%s: %s", root, why)
                # tutela why tells a held or blocked failover from this record
                self.journal("takeover.blocked", root, why,
                             details={"reason": record.reason, "holder": record.holder})
        elif isinstance(effect, Held):
            rule = self.engine.config.settings.failover_damping
            log.warning("%s: %d failovers in %gs: no automatic failover for %gs "
                        "(failover_damping; 'tutela restore %s' ends the hold)",
                        effect.root, effect.hold.failovers, rule.window, rule.hold, effect.root)
        elif not isinstance(effect, ClearStuck):
            raise TypeError(f"not a note: {effect!r}")

    # --- carrying out ----------------------------------------------------------------------

    async def _act(self, effect: Acquire | Restore | GiveUp) -> None:
        root = effect.root
        try:
            if isinstance(effect, Acquire):
                await self._takeover(effect)
            elif isinstance(effect, Restore):
                await self._restore(effect)
            else:
                await self._give_up(effect)
        except RestoreRefused as error:
            self._refused(root, Blocked("address_answers", self.core.holder(root),
                                        _refusal(error)), f"{error}; letting the lease go")
        except FenceFailed as error:
            self._refused(root, error.blocked, str(error))
        except LeaseLetGo as error:  # by a self-fence, which leaves it alone a while
            log.info("%s: %s", root, error)
        except LeaseDeferred as error:  # a higher rank asks too: its turn, not a split
            self._refused(root, Blocked("lease_wait", error.holder, str(error),
                                        left=self.core.lease_duration),
                          str(error), release=False)  # the holder let it go already
        except LeaseUnavailable as error:
            self._refused(root, Blocked("no_quorum", self.core.holder(root), str(error)),
                          str(error), release=False)  # acquire let it go already
        except OperationError as error:
            log.warning("%s: %s", root, error)
        finally:
            self.core.done(root, gave_up=isinstance(effect, GiveUp))

    def _refused(self, root: str, blocked: Blocked, message: str, release: bool = True
                 ) -> None:
        """A takeover attempt that waits on something else: the core keeps why and when to
        try again; a new cause is logged as a warning, a repeated one at debug."""
        effects = self.core.refused(root, blocked, message, clock.now(), time.time(), release)
        for effect in effects:
            if isinstance(effect, Release):
                self.leases.release(root)
            elif isinstance(effect, NoteStuck):
                self._noted(effect)  # a new reason: logged and journaled
        if not any(isinstance(e, NoteStuck) for e in effects):
            log.debug("%s: %s", root, message)

    async def _takeover(self, acquire: Acquire) -> None:
        """Lease; then what the core says must come first (the watchdog armed, vanished
        owners fenced); then the restore."""
        root = acquire.root
        if self.engine.states[root].state.in_service:  # e.g. just extended, or re-adopted
            log.info("%s: in service here without its lease; acquiring it", root)
        else:
            log.log(logging.INFO if acquire.first else logging.DEBUG,
                    "%s: no node runs it; trying to take it over", root)
        timeout = self.core.acquire_timeout if acquire.timeout is None else acquire.timeout
        await self.leases.acquire(root, timeout=timeout,
                                  remove_time=self.fencing.remove_time,
                                  defer_to=acquire.defer_to)
        self._lease_won(acquire)
        effects = self.core.lease_won(root, self._situation(), acquire.automatic)
        for effect in effects:
            await self._carry_out(effect)
        if not acquire.automatic and not any(isinstance(e, Restore) for e in effects):
            record = self.core.stuck.get(root)  # a switchover to where it may not run
            why = f"it {record.detail}" if record is not None else "the lease was let go"
            raise OperationError(f"{root}: not taking it over here: {why}")

    def _lease_won(self, acquire: Acquire) -> None:
        """Record it, under a new correlation id that the takeover's records share."""
        root, detector = acquire.root, self.messenger.detector
        dead = sorted(p for p in self.messenger.heartbeats if detector.node_state(p) != "ALIVE")
        why = ("no alive node runs it" if acquire.automatic
               else "asked to take it (switchover or an administrator's restore)")
        if dead and acquire.automatic:
            why += f" ({', '.join(dead)} DEAD here)"
        correlation = self._correlation[root] = correlation_id(root)
        self.journal("lease.won", root, why, correlation=correlation,
                     details={"dead": dead, "voters": list(self.leases.holder.voters)})

    async def _carry_out(self, effect: Effect) -> None:
        """One step of a takeover or a self-fence (FenceFailed stops a takeover)."""
        if isinstance(effect, Restore):
            await self._restore(effect)
        elif isinstance(effect, FencePeer):
            await self.fencing.fence_peer(effect.root, effect.peer, effect.command)
            self.core.fenced(effect.root, effect.peer)
        elif isinstance(effect, ArmWatchdog):
            if effect.root is None:
                self.fencing.check()
            else:
                self.fencing.arm()
        elif isinstance(effect, QuorumLossAction):
            await self.fencing.quorum_loss_action(effect.root, effect.action)
        elif isinstance(effect, Release):
            self.leases.release(effect.root)
        else:
            self._noted(effect)

    async def _restore(self, restore: Restore) -> None:
        root = restore.root
        if not self.leases.holds(root):
            return
        try:
            with recorded(self.journal, "restore", root, "its lease is held here",
                          self._correlation.get(root, "")):
                await self.engine.restore(root, allowed=lambda: self.leases.holds(root))
        except (RestoreRefused, LeaseGone):
            raise  # not this node's failure: the caller lets go and waits
        except OperationError:
            self.core.restore_failed(root)  # let the next node try
            raise
        for effect in self.core.restored(root, restore.automatic, time.time(),
                                         self.engine.config):
            self._noted(effect)

    async def _give_up(self, give_up: GiveUp) -> None:
        log.info("%s: giving it up (%s)", give_up.root, give_up.why)
        try:
            with recorded(self.journal, "remove", give_up.root, f"giving it up: {give_up.why}",
                          self._correlation.get(give_up.root, "")):
                await self.engine.remove(give_up.root)
        finally:
            self.leases.release(give_up.root)

    # --- self-fencing ------------------------------------------------------------------------

    def _lease_effect(self, effect: MustRelease | LeaseLost) -> None:
        action = self.engine.config.settings.quorum_loss_action
        remaining = effect.remaining if isinstance(effect, MustRelease) else None
        for fence in self.core.lease_ending(effect.name, remaining, action):
            if remaining is not None:
                log.error("%s: the lease could not be renewed (no majority?); taking it out "
                          "of service, addresses first, before the lease ends in %.2fs",
                          effect.name, remaining)
            else:
                log.error("%s: the lease ended before it was out of service here",
                          effect.name)
            assert isinstance(fence, FenceSelf)
            self._track(fence.root, spawn(self._fence_self(fence)))

    async def _fence_self(self, fence: FenceSelf) -> None:
        """Self-fencing: out of service before another node may take over; if that does
        not finish within the lease, the quorum-loss action."""
        why = _UNLEASED if fence.unleased else "the lease is ending"
        out = fence.remove and await self.fencing.fence_self(fence.root, fence.within, why)
        action = self.engine.config.settings.quorum_loss_action
        for effect in self.core.self_fence_ended(fence.root, out, action, clock.now()):
            await self._carry_out(effect)

    # --- what the rest of the daemon asks ----------------------------------------------------

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
        if self.core.end_handover(root):
            self.wake()

    def maintained(self) -> dict[str, str]:
        """Root -> the node in maintenance that left it in service (configuration)."""
        config = self.engine.config
        if self._maintenance_of[0] is not config:
            self._maintenance_of = (config, maintenance_by_root(config))
        return self._maintenance_of[1]

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
        peers = [e.node for e in settings.equivalencies if e.node != self.node]
        return self._snapshot(self._clustered()).owner(root, peers)

    def report(self) -> dict[str, dict[str, Any]]:
        """For `tutela status`: root -> its failover hold here, and why each node that is
        alive (this one too) sees it running nowhere; only roots with something to say."""
        config = self.engine.config
        settings = config.settings
        now, fencing, window = time.time(), settings.fencing, settings.failover_damping.window
        heartbeats, detector = self.messenger.heartbeats, self.messenger.detector
        by_node = {self.node: self.core.stuck} | {
            peer: report.stuck for peer, (_, report) in sorted(heartbeats.items())
            if detector.node_state(peer) == "ALIVE"}
        found: dict[str, dict[str, Any]] = {}
        for hierarchy in self._clustered():
            root = hierarchy.root
            held = self.core.damping_hold(root, config, now)
            reasons = [_stuck_status(node, records[root], root, fencing, now)
                       for node, records in by_node.items() if root in records]
            if held is not None or reasons:
                found[root] = {"hold": None if held is None else {
                    "failovers": held.failovers, "window": window,
                    "left": round(held.until - now, 1), "until": _iso(held.until)},
                    "stuck": reasons}
        return found


_UNLEASED = ("in service here without its lease (re-adopted after tutelad died, or "
             "extended here and the lease not won in time)")


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
