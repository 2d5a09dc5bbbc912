"""The hierarchies' ownership leases from etcd (`settings.arbiter: etcd`): the thin driver of
`arbiter/etcd_lease.py`, as `daemon/leases.py` is of `arbiter/holder.py`.

`daemon/leases.py` hands it every lease name but the configuration lease, which stays with
the embedded voters (docs/arbiter.md, "What etcd decides"). It sends the core's requests
through `EtcdClient`, reports their answers back, and passes must-release and lease-lost to
the same self-fencing as the embedded leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tutela import clock
from tutela.arbiter.etcd_lease import (
    Create,
    Effect,
    EtcdLeaseHolder,
    EtcdRequest,
    Grant,
    KeepAlive,
    Revoke,
    etcd_timing,
    etcd_ttl,
    owner_key,
)
from tutela.arbiter.etcd_lease import _holder_node as holder_node
from tutela.arbiter.holder import Acquired, LeaseLost, MustRelease, Refused, Send
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming
from tutela.daemon.etcd_client import EtcdClient, EtcdUnavailable, b64, unb64
from tutela.lcm.messenger import spawn
from tutela.model.config import EtcdSettings

log = logging.getLogger("tutela.leases.etcd")
Fence = Callable[[MustRelease | LeaseLost], None]
AskVoter = Callable[[str, AcquireRequest | Release], Awaitable[AcquireReply | None]]
"""Deliver a failsafe request or release to a node's embedded voter; its reply (None for a
release, or when the node did not answer)."""


class EtcdLeaseUnavailable(Exception):
    """etcd did not grant the lease in time; the message says who holds it or why not."""


class EtcdLeaseLetGo(EtcdLeaseUnavailable):
    """The name was released while an acquire of it waited (a self-fence let it go)."""


class EtcdLeases:
    def __init__(self, node: str, cluster: str, settings: EtcdSettings, base: LeaseTiming,
                 incarnation: int, nodes: tuple[str, ...], fence: Fence,
                 ask_voter: AskVoter) -> None:
        """`base`: the embedded lease timing, whose watchdog bound the etcd TTL must cover
        and which the nodes' voters grant failsafe/R with; `nodes`: every node of the
        cluster; `fence`: told when a held lease must be given up now or has ended."""
        self.ttl = etcd_ttl(base)
        self.timing = etcd_timing(self.ttl, base)
        self.core = EtcdLeaseHolder(node, cluster, settings.prefix, self.ttl, self.timing,
                                    incarnation=incarnation, voters=nodes, base=base)
        self._ask_voter = ask_voter
        self.endpoints = tuple(settings.endpoints)
        self.client = EtcdClient(settings, timeout=self.timing.renew_every * 2)
        """A call may take two renewal periods: a member that hangs costs one, the next
        member answers within the other."""
        self._status_client = EtcdClient(settings, timeout=self.timing.renew_every * 2)
        """`tutela status`'s reads have threads of their own: however often status is
        asked while etcd hangs, no keepalive waits behind them."""
        self._status_read: asyncio.Task[dict[str, str | None]] | None = None
        self._fence = fence
        self._waiters: dict[str, asyncio.Future[Acquired]] = {}
        self._refusals: dict[str, str] = {}
        """Name -> why the last try failed (who holds it, or what etcd said)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        log.info("ownership leases from etcd (%s): TTL %d s, keys under %s", ", ".join(
            settings.endpoints), self.ttl, owner_key(settings.prefix, cluster, "<root>"))

    def start(self) -> None:
        self._task = spawn(self._tick_loop(), name="etcd-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.client.close()
        self._status_client.close()

    # --- the daemon's calls (through daemon/leases.py) ------------------------------------

    async def acquire(self, name: str, timeout: float, remove_time: float) -> float:
        """Hold `name` (kept alive until released); its end in this node's clock. While
        another node holds it, this tries every renewal period up to `timeout`; a release
        of `name` meanwhile ends it (EtcdLeaseLetGo). One acquire of a name at a time, as
        with the embedded leases (a second one is its caller's bug: RuntimeError)."""
        if name in self._waiters:
            raise RuntimeError(f"{name!r} is being acquired already: one acquire of a name "
                               "at a time")
        future: asyncio.Future[Acquired] = asyncio.get_running_loop().create_future()
        self._waiters[name] = future
        self._refusals.pop(name, None)
        self._run(self.core.acquire_each({name: remove_time}, clock.now()))
        try:
            async with asyncio.timeout(timeout):
                return (await future).until
        except TimeoutError:
            self._waiters.pop(name, None)  # the release below ends nothing that waits
            self.release(name)
            why = self._refusals.get(name, "no answer")
            raise EtcdLeaseUnavailable(f"etcd did not grant {name!r} within {timeout:g}s "
                                       f"({why})") from None
        finally:
            if self._waiters.get(name) is future:
                del self._waiters[name]

    def release(self, name: str) -> None:
        self._run(self.core.release([name], clock.now()))
        waiter = self._waiters.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(EtcdLeaseLetGo(f"{name!r} was let go while it was acquired"))

    def holds(self, name: str) -> bool:
        return self.core.holds(name, clock.now())

    def held(self) -> dict[str, float]:
        """Every name held now -> seconds left."""
        return self.core.held(clock.now())

    def holds_wanted(self, name: str) -> bool:
        return name in self.core.wanted

    def set_nodes(self, nodes: tuple[str, ...]) -> None:
        """The cluster's nodes changed: failsafe rounds ask these from now on."""
        self.core.set_voters(nodes)

    async def status(self) -> dict[str, Any]:
        """etcd as this node sees it now, for `tutela status`: the leases it holds, and the
        cluster's owner keys read from etcd (a linearizable read, which only a member with a
        quorum answers: `quorum` says whether this node reaches such a member)."""
        view: dict[str, Any] = {
            "kind": "etcd", "endpoints": list(self.endpoints), "ttl": self.ttl,
            "held": {name: round(left, 3) for name, left in self.held().items()}}
        if self._status_read is None or self._status_read.done():  # one read at a time
            self._status_read = asyncio.ensure_future(self._owner_keys())
        try:
            owners = await asyncio.shield(self._status_read)
        except EtcdUnavailable as error:
            return {**view, "quorum": False, "error": str(error), "owners": None}
        return {**view, "quorum": True, "error": None, "owners": owners}

    async def _owner_keys(self) -> dict[str, str | None]:
        """Every owner key of this cluster in etcd: hierarchy root -> the node it names."""
        prefix = owner_key(self.core.prefix, self.core.cluster, "")
        range_end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # every key under the prefix
        answer = await self._status_client.call(
            "/v3/kv/range", {"key": b64(prefix), "range_end": b64(range_end)})
        return {unb64(kv["key"]).removeprefix(prefix): holder_node(unb64(kv.get("value", "")))
                for kv in answer.get("kvs", [])}

    # --- effects -------------------------------------------------------------------------

    def _run(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Grant | Create | KeepAlive | Revoke):
                spawn(self._send(effect), name=f"etcd-{type(effect).__name__.lower()}")
            elif isinstance(effect, Send):
                spawn(self._vote(effect), name="etcd-failsafe")
            elif isinstance(effect, Acquired):
                waiter = self._waiters.get(effect.name)
                if waiter is not None and not waiter.done():
                    waiter.set_result(effect)
            elif isinstance(effect, Refused):
                self._refusals[effect.name] = f"it is held by {effect.holder or 'another run'}"
            else:
                self._fence(effect)
        self._wake.set()

    async def _send(self, request: EtcdRequest) -> None:
        try:
            effects = await self._answer(request)
        except EtcdUnavailable as error:
            log.debug("etcd %s for %s: %s", type(request).__name__, request.name, error)
            self._refusals[request.name] = f"etcd: {error}"
            effects = self.core.on_failed(request, clock.now())
        self._run(effects)

    async def _vote(self, send: Send) -> None:
        reply = await self._ask_voter(send.voter, send.message)
        if reply is not None:
            self._run(self.core.on_vote(reply, clock.now()))

    async def _answer(self, request: EtcdRequest) -> list[Effect]:
        """Make the call, and give the core its answer."""
        if isinstance(request, Grant):
            lease_id, ttl = await self.client.grant(request.ttl)
            return self.core.on_granted(request.name, lease_id, ttl, request.sent_at,
                                        clock.now())
        if isinstance(request, Create):
            holder = await self.client.create(request.key, request.value, request.lease_id)
            return self.core.on_created(request.name, request.lease_id, holder, clock.now())
        if isinstance(request, KeepAlive):
            ttl = await self.client.keepalive(request.lease_id)
            return self.core.on_kept(request.name, request.lease_id, ttl, request.sent_at,
                                     clock.now())
        await self.client.revoke(request.lease_id)
        return []

    async def _tick_loop(self) -> None:
        while True:
            now = clock.now()
            deadline = self.core.next_deadline(now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if deadline is None else max(0, deadline - now)):
                    await self._wake.wait()
            self._run(self.core.tick(clock.now()))


async def arbiter_status(etcd: EtcdLeases | None) -> dict[str, Any]:
    """`tutela status`'s "arbiter": the embedded majority (whose voters are the nodes,
    witnesses and disk voter shown beside it), or etcd as this node sees it now."""
    return {"arbiter": {"kind": "majority"} if etcd is None else await etcd.status()}
