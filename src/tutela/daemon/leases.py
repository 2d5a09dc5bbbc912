"""The arbiter on the wire: this node's vote, the leases it holds, the messages between them.

Feeds the sans-IO voter and holder the messenger and the boot-time clock (tutela.clock); waits for a
lease on behalf of the daemon (the configuration lease now, hierarchies later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from tutela import clock
from tutela.arbiter.holder import (
    Acquired,
    Deferred,
    Effect,
    LeaseHolder,
    LeaseLost,
    MustRelease,
    Refused,
    Send,
)
from tutela.arbiter.messages import (
    CONFIG_LEASE,
    AcquireReply,
    AcquireRequest,
    Release,
    parse_message,
)
from tutela.arbiter.voter import Voter
from tutela.daemon.disk_voter import DiskVoterDriver
from tutela.daemon.etcd_leases import EtcdLeaseLetGo, EtcdLeases, EtcdLeaseUnavailable
from tutela.journal.events import Emitter, no_events
from tutela.lcd.lease import effective_lease
from tutela.lcm import kinds
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import Messenger, PeerUnreachable, spawn
from tutela.lcm.paths import voters_of
from tutela.model.config import DISK_VOTER_PREFIX, ClusterConfig

log = logging.getLogger("tutela.leases")
Extra = Callable[[AcquireRequest], dict[str, Any]]
"""What a voter adds to its reply (for the configuration lease: its version and promise)."""
ReplyHook = Callable[[str, dict[str, Any]], None]


class LeaseMemory(Protocol):
    """Where a node keeps the longest lease its voter may still have grants of."""

    def start_lease_duration(self, duration: float) -> float: ...

    def settle_lease_duration(self, duration: float) -> None: ...


class LeaseUnavailable(Exception):
    """No majority granted the lease in time; the message says who holds it or who is away."""


class LeaseDeferred(LeaseUnavailable):
    """A voter granted the name to a candidate ranked before this node: the attempt ended
    and its grants were cleared, so that the two do not split the votes (holder rule 8)."""

    def __init__(self, name: str, holder: str) -> None:
        super().__init__(f"{holder}, ranked before this node, is taking {name!r}: left to it")
        self.holder = holder


class LeaseLetGo(LeaseUnavailable):
    """The name was released while an acquire of it waited (a self-fence let it go as it
    ended): no round asks for it any more, so the acquire ends at once."""


class Leases:
    def __init__(self, node: str, config: ClusterConfig, messenger: Messenger[Any],
                 incarnation: int, extra: Extra, on_reply: ReplyHook,
                 memory: LeaseMemory) -> None:
        """`memory` keeps, across runs, the longest lease this node's voter may still have
        grants of, which its quiet period must cover too (the Lcd)."""
        self.node = node
        self.lease = effective_lease(config)
        self.timing = self.lease.timing
        """Taken at start: a changed lease takes effect when tutelad restarts."""
        self._memory = memory
        self.voter = Voter(node, self.timing, started_at=clock.now(),
                           longest_before=memory.start_lease_duration(self.timing.duration))
        self.mismatches: dict[str, float] = {}
        """Candidate -> the longer lease it asked for, refused here (for `tutela status`)."""
        self._messenger = messenger
        self._incarnation = incarnation
        self._extra = extra
        self._on_reply = on_reply
        self.journal: Emitter = no_events
        self.on_effect: Callable[[MustRelease | LeaseLost], None] | None = None
        """Told when a held lease must be given up now or has ended (self-fencing)."""
        self._waiters: dict[str, asyncio.Future[Acquired]] = {}
        self._unsent: dict[str, tuple[float, frozenset[str]]] = {}
        """Names to acquire (-> remove time, the candidates to leave them to) in the round
        that ends this loop turn."""
        self._refusals: dict[str, Refused] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.holder = self._new_holder(config)
        self.disk = self._new_disk(config)
        """This node's side of the disk voter, when the cluster has one and this node a slot."""
        self.etcd = self._new_etcd(config)
        """With `arbiter: etcd`: the hierarchies' leases (all but the configuration lease)."""
        # Lease rounds go out on every live path: one path dying costs no lease (docs/leases.md)
        messenger.handle(kinds.LEASE_ACQUIRE, self._serve_acquire)
        messenger.handle(kinds.LEASE_RELEASE, self._serve_release)

    def _new_holder(self, config: ClusterConfig) -> LeaseHolder:
        voters = voters_of(config)
        return LeaseHolder(self.node, voters, self.timing, incarnation=self._incarnation,
                           quorum=config.settings.quorum)

    def _new_disk(self, config: ClusterConfig) -> DiskVoterDriver | None:
        settings = config.disk_voter
        if settings is None:
            return None
        if self.node not in settings.slots:
            log.warning("%s has no slot on the disk voter %s, so the disk never votes for it; "
                        "add it at the end of disk_voter.slots (tutela config set "
                        "disk_voter.slots ...)", self.node, settings.voter_id)
            return None
        return DiskVoterDriver(settings, self.node, self.timing, self._disk_answer)

    def _new_etcd(self, config: ClusterConfig) -> EtcdLeases | None:
        settings = config.settings
        if settings.arbiter != "etcd" or settings.etcd is None:
            return None
        return EtcdLeases(self.node, config.name, settings.etcd, self.timing,
                          self._incarnation, _node_names(config),
                          lambda effect: self._run([effect]), self._ask_voter)

    async def _ask_voter(self, voter: str, message: AcquireRequest | Release
                         ) -> AcquireReply | None:
        """A failsafe/R request or release of the etcd leases to a node's voter
        (docs/arbiter.md, "Failsafe"); its reply, None for a release or no answer."""
        if voter == self.node:
            result = self._vote(message)
        else:
            kind = "lease.acquire" if isinstance(message, AcquireRequest) else "lease.release"
            try:
                result = await self._messenger.request(voter, kind, message.to_payload(),
                                                       timeout=self.timing.duration)
            except PeerUnreachable:
                return None
        if isinstance(message, Release):
            return None
        return AcquireReply.from_payload(result.get("reply", result))

    def _etcd_for(self, name: str) -> EtcdLeases | None:
        """The etcd leases when they decide `name` (docs/arbiter.md); None: the voters do."""
        return None if name == CONFIG_LEASE else self.etcd

    def _disk_answer(self, reply: AcquireReply) -> None:
        self._run(self.holder.on_reply(reply, clock.now()))

    def start(self) -> None:
        self._task = spawn(self._tick_loop(), name="leases")
        if self.disk is not None:
            self.disk.start()
        if self.etcd is not None:
            self.etcd.start()
        spawn(self._settle_after_quiet(), name="lease-memory")

    async def _settle_after_quiet(self) -> None:
        """Once the voter's quiet period is over, its longest possible grant is its own L.
        (Late, never early: the event loop's clock does not count a suspend.)"""
        await asyncio.sleep(max(0.0, self.voter.quiet_until - clock.now()))
        try:
            self._memory.settle_lease_duration(self.timing.duration)
        except (sqlite3.Error, OSError) as error:  # a full disk, say: safe to leave
            log.warning("could not record that the voter's quiet period is over (%s); the "
                        "next start stays quiet for the longer lease kept, which is safe",
                        error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.disk is not None:
            await self.disk.stop()
        if self.etcd is not None:
            await self.etcd.stop()

    def config_changed(self, config: ClusterConfig) -> None:
        """A new voter set counts from now on, also for the leases held (renewed under it
        at once). Nodes learn the new set a few milliseconds apart; leases are safe across
        the change only while no fault strikes in that window (docs/failover.md)."""
        self._disk_changed(config)
        if self.etcd is not None:
            self.etcd.set_nodes(_node_names(config))
        voters = voters_of(config)
        if voters != self.holder.voters:
            log.info("lease voters are now %s", ", ".join(voters))
            self._run(self.holder.set_voters(voters, clock.now()))

    def _disk_changed(self, config: ClusterConfig) -> None:
        """A disk voter added, removed or changed takes effect at once: a changed one starts
        afresh (a new incarnation, waiting io_limit before its first write)."""
        old = self.disk.settings if self.disk is not None else None
        if old == config.disk_voter:
            return
        if self.disk is not None:
            spawn(self.disk.stop(), name="disk-voter-stop")
        self.disk = self._new_disk(config)
        if self.disk is not None:
            log.info("disk voter %s on %s", self.disk.voter_id, self.disk.device.path)
            self.disk.start()

    # --- the daemon's calls --------------------------------------------------------------

    async def acquire(self, name: str, timeout: float, remove_time: float = 0.0,
                      defer_to: frozenset[str] = frozenset()) -> float:
        """Hold `name` (renewed until released); its end in this node's clock (tutela.clock).

        While another node holds it, this waits (the holder asks again every L/4) up to
        `timeout`, like a lock; a release of `name` meanwhile ends it (LeaseLetGo), and so
        does a voter's grant to one of the candidates in `defer_to` (LeaseDeferred).
        One acquire of a name at a time: the callers keep them apart (the ownership core
        starts no action on a hierarchy while one is under way there; configuration
        changes take turns), so a second one is a bug in its caller, refused at once
        (RuntimeError) rather than handed the first one's outcome, which hid such a bug.
        """
        etcd = self._etcd_for(name)
        if etcd is not None:
            try:
                return await etcd.acquire(name, timeout, remove_time)
            except EtcdLeaseLetGo as error:
                raise LeaseLetGo(str(error)) from None
            except EtcdLeaseUnavailable as error:
                raise LeaseUnavailable(str(error)) from None
        end = self.holder.lease_end(name)
        if self.holder.holds(name, clock.now()) and end is not None:
            return end  # held already, and renewed: a won round would say nothing new
        if name in self._waiters:
            raise RuntimeError(f"{name!r} is being acquired already: one acquire of a name "
                               "at a time")
        future: asyncio.Future[Acquired] = asyncio.get_running_loop().create_future()
        self._waiters[name] = future
        self._refusals.pop(name, None)
        self._want(name, remove_time, defer_to)
        try:
            async with asyncio.timeout(timeout):
                return (await future).until
        except TimeoutError:
            self._waiters.pop(name, None)  # before its own release: no news to it
            self.release(name)
            raise self._unavailable(name, timeout) from None
        finally:
            if self._waiters.get(name) is future:
                del self._waiters[name]

    def _unavailable(self, name: str, timeout: float) -> LeaseUnavailable:
        refusal = self._refusals.get(name)
        held = f"; it is held by {refusal.holder}" if refusal and refusal.holder else ""
        return LeaseUnavailable(f"no majority of the {len(self.holder.voters)} voters "
                                f"granted {name!r} within {timeout:g}s{held}")

    def _want(self, name: str, remove_time: float, defer_to: frozenset[str]) -> None:
        """Acquires asked for in one turn of the event loop go out as one round: a node
        taking over many hierarchies at once asks each voter once, not once for each."""
        if not self._unsent:
            asyncio.get_running_loop().call_soon(self._send_wanted)
        self._unsent[name] = (remove_time, defer_to)

    def _send_wanted(self) -> None:
        unsent, self._unsent = self._unsent, {}
        if unsent:
            self._run(self.holder.acquire_each(
                {name: remove_time for name, (remove_time, _) in unsent.items()},
                clock.now(), {name: ahead for name, (_, ahead) in unsent.items()}))

    def disk_status(self) -> dict[str, Any] | None:
        """The disk voter as this node casts it (for `tutela status`); None without one."""
        return None if self.disk is None else self.disk.status()

    def holds(self, name: str) -> bool:
        etcd = self._etcd_for(name)
        return etcd.holds(name) if etcd is not None else self.holder.holds(name, clock.now())

    def lease_ends(self, names: set[str]) -> list[float]:
        """The ends (this node's clock, tutela.clock) of the leases held on any of `names`."""
        now = clock.now()
        held = self.holder.held(now) if self.etcd is None else self.etcd.held()
        return [now + left for name, left in held.items() if name in names]

    def holds_wanted(self, name: str) -> bool:
        """Whether this node still wants `name` (acquired or trying)."""
        etcd = self._etcd_for(name)
        if etcd is not None:
            return etcd.holds_wanted(name)
        return name in self.holder.wanted or name in self._unsent

    def release(self, name: str) -> None:
        if self.holds(name):
            self.journal("lease.released", name, "given back to the voters")
        etcd = self._etcd_for(name)
        if etcd is not None:
            etcd.release(name)
            return
        self._unsent.pop(name, None)
        self._run(self.holder.release([name], clock.now()))
        waiter = self._waiters.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(LeaseLetGo(f"{name!r} was let go while it was acquired"))

    # --- effects and messages ------------------------------------------------------------

    def _run(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                spawn(self._send(effect))
            elif isinstance(effect, Acquired):
                waiter = self._waiters.get(effect.name)
                if waiter is not None and not waiter.done():
                    waiter.set_result(effect)
            elif isinstance(effect, Refused):
                self._refusals[effect.name] = effect  # the holder asks again; we wait
            elif isinstance(effect, Deferred):
                waiter = self._waiters.pop(effect.name, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(LeaseDeferred(effect.name, effect.holder))
            elif isinstance(effect, MustRelease | LeaseLost):
                if isinstance(effect, LeaseLost):
                    log.warning("lease %s lost: it ended without a renewal", effect.name)
                    self.journal("lease.lost", effect.name, "it ended without a renewal by a "
                                 "majority of the voters")
                if self.on_effect is not None:
                    self.on_effect(effect)
        self._wake.set()

    async def _send(self, send: Send) -> None:
        message = send.message
        if self.disk is not None and send.voter == self.disk.voter_id:
            self.disk.deliver(message)  # its vote comes back through _disk_answer
            return
        if send.voter.startswith(DISK_VOTER_PREFIX):
            return  # the disk voter of a node without a slot: no vote
        if send.voter == self.node:
            result = self._vote(message)
        else:
            kind = "lease.acquire" if isinstance(message, AcquireRequest) else "lease.release"
            sent_at = clock.now()
            try:
                result = await self._messenger.request(send.voter, kind, message.to_payload(),
                                                       timeout=self.timing.duration)
            except PeerUnreachable as error:
                log.debug("%s: %s", send.voter, error)
                return
            took = clock.now() - sent_at
            if took > self.timing.renew_every:
                log.warning("%s round %d: %s answered after %.0f ms (renewals go out every "
                            "%.0f ms)", kind, message.round, send.voter, took * 1000,
                            self.timing.renew_every * 1000)
        if isinstance(message, AcquireRequest):
            self._on_reply(send.voter, result)
            # nodes wrap the reply to add their configuration version; witnesses do not
            reply = result.get("reply", result)
            self._run(self.holder.on_reply(AcquireReply.from_payload(reply), clock.now()))

    def _vote(self, message: AcquireRequest | Release) -> dict[str, Any]:
        now = clock.now()
        if isinstance(message, Release):
            self.voter.on_release(message, now)
            return {}
        if self.voter.longer_than_mine(message):
            self._warn_longer(message)
        reply = self.voter.on_acquire(message, now)
        return {"reply": reply.to_payload(), **self._extra(message)}

    def _warn_longer(self, message: AcquireRequest) -> None:
        """Once per candidate and lease: the two tutelads run with different leases."""
        if self.mismatches.get(message.candidate) == message.duration:
            return
        self.mismatches[message.candidate] = message.duration
        log.warning("refusing %s's lease requests: it counts on %gs leases and this node "
                    "grants %gs; restart tutelad on every node (one at a time) so that all "
                    "take the configuration's lease", message.candidate, message.duration,
                    self.timing.duration)

    async def _serve_acquire(self, envelope: Envelope) -> dict[str, Any]:
        message = parse_message(_without_call(envelope.payload))
        if not isinstance(message, AcquireRequest) or message.candidate != envelope.sender:
            raise ValueError("lease.acquire must carry the sender's own acquire request")
        return self._vote(message)

    async def _serve_release(self, envelope: Envelope) -> dict[str, Any]:
        message = parse_message(_without_call(envelope.payload))
        if not isinstance(message, Release) or message.holder != envelope.sender:
            raise ValueError("lease.release must carry the sender's own release")
        return self._vote(message)

    async def _tick_loop(self) -> None:
        while True:
            now = clock.now()
            deadline = self.holder.next_deadline(now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if deadline is None else max(0, deadline - now)):
                    await self._wake.wait()
            self._run(self.holder.tick(clock.now()))


def _node_names(config: ClusterConfig) -> tuple[str, ...]:
    """Every node of the cluster: the voters a failsafe round of the etcd leases asks."""
    return tuple(sorted(n.name for n in config.nodes))


def _without_call(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "call"}
