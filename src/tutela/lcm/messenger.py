"""The messenger: keeps every comm path connected, sends heartbeats, detects failures, and
carries authenticated messages and request/reply calls between nodes.

It feeds the sans-IO cores (frames, replay guard, failure detector) real sockets and clocks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tutela.lcm import kinds
from tutela.lcm.detector import Event, FailureDetector
from tutela.lcm.frame import (
    SEALED,
    Body,
    Envelope,
    FrameRejected,
    Opener,
    PayloadEncoder,
    Route,
    Sealer,
    decode_body,
    frame_type,
    read_route,
)
from tutela.lcm.handshake import (
    HANDSHAKE_TIMEOUT,
    HELLO,
    PRE_AUTH_BUFFER,
    Acceptor,
    Dialler,
    Hello,
    read_hello,
)
from tutela.lcm.join import NO_CLUSTER
from tutela.lcm.keyring import KeyRing
from tutela.lcm.paths import DEFAULT_PORT, PathSpec
from tutela.lcm.replay import DropCounters, ReplayGuard
from tutela.lcm.stream import FrameSplitter
from tutela.lcm.ticks import next_tick
from tutela.lcm.transport import Link, SerialLink, StreamLink

log = logging.getLogger("tutela.lcm")
HEARTBEAT = kinds.HEARTBEAT.name
REPLY = kinds.REPLY.name
Handler = Callable[[Envelope], Awaitable[dict[str, Any]]]
HeartbeatSource = Callable[[], dict[str, Any]]
R = TypeVar("R")
ReportReader = Callable[[Mapping[str, Any], R | None], R]
"""Reads a peer's heartbeat payload into its report, given the report it replaces (a
heartbeat may leave out what did not change since the last that had it). Reading a payload
again against the report it gave must give that report: the messenger does not read a
heartbeat whose bytes repeat the last one's, it keeps the report."""
EventSink = Callable[[Event], None]
JoinHandler = Callable[[bytes, asyncio.Transport], None]
"""Handles a join request (a sealed frame of no cluster) on a new connection; it answers and
closes the connection."""
MAX_UNAUTHENTICATED = 64
"""Accepted connections that have not finished their handshake, at most, in all..."""
MAX_UNAUTHENTICATED_PER_ADDRESS = 4
"""...and from one address: a stranger cannot crowd out a peer that reconnects."""


EXPLAIN_EVERY = 60.0
UNKNOWN_KEY = ("frames under an unknown key: was the cluster key rotated while this node was "
               "away? re-join it ('tutela node token' on a node of the cluster, then 'tutela "
               "join' here; or, if the peer was the one away, remove and re-join the peer)")
UNKNOWN_KEY_REASONS = frozenset({"bad-mac", "handshake"})
KEY_FAILURES = 3
"""Failures under every key within EXPLAIN_EVERY that make a peer's key 'unknown'."""
EXPLANATIONS = {
    "bad-mac": "the peer does not use this cluster's key (a node of another cluster, "
               "initialised anew?); " + UNKNOWN_KEY,
    "wrong-cluster": "the peer belongs to another cluster of the same key",
    "version": "the peer speaks another protocol version; upgrade both to the same tutela",
    "stale-incarnation": "frames from an older run of the peer (delayed or replayed)",
    "handshake": "the peer broke off or garbled the handshake: it does not hold this "
                 "cluster's key, speaks another protocol version, or is not tutela; "
                 + UNKNOWN_KEY,
}
_background: set[asyncio.Task[Any]] = set()


def spawn(coroutine: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
    """Run a coroutine in the background, holding a reference until it ends."""
    task = asyncio.create_task(coroutine, name=name)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


BEATS_KEPT = 2
"""Heartbeats kept per peer to compare with the next: light and bulky ones alternate."""


@dataclass(frozen=True)
class _Beat(Generic[R]):
    """A peer's heartbeat read: its decrypted body, what that decoded to, its report."""

    body: bytes
    decoded: Body
    report: R


class PeerUnreachable(Exception):
    """No live comm path leads to the peer, or it did not answer in time."""


@dataclass
class PathStats:
    sent: int = 0
    received: int = 0
    dropped_sends: int = 0
    last_heartbeat: float | None = None
    max_heartbeat_gap: float = 0.0
    """Longest time between two heartbeats received on this path while it was ALIVE."""

    def heartbeat(self, now: float) -> None:
        if self.last_heartbeat is not None:
            self.max_heartbeat_gap = max(self.max_heartbeat_gap, now - self.last_heartbeat)
        self.last_heartbeat = now


@dataclass
class Identity:
    cluster: str
    node: str
    key: bytes
    incarnation: int


@dataclass
class _Calls:
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)


class Messenger(Generic[R]):
    def __init__(self, identity: Identity, interval: float, misses: int, *,
                 read_report: ReportReader[R], port: int = DEFAULT_PORT) -> None:
        self.identity = identity
        self.interval = interval
        self.dead_after = interval * misses
        self.port = port
        self.counters = DropCounters()
        self.frames_sent: collections.Counter[str] = collections.Counter()
        """Frames sent by kind, every path's copy counted (a request's reply as 'reply'):
        what a node's traffic costs, for `tutela status` and the scale benchmark."""
        self.detector = FailureDetector(interval, misses)
        self.stats: dict[str, PathStats] = {}
        self.max_heartbeat_lateness = 0.0
        """Longest delay of a heartbeat round behind its schedule (a stalled event loop)."""
        self.observe_lateness: Callable[[float], None] = lambda _late: None
        """Told every heartbeat round's delay (tutelad's metrics histogram)."""
        self.next_round = 0.0
        """Loop time of the next heartbeat round; periodic work of the same period waits
        for it too, so both share one wake-up."""
        self.heartbeats: dict[str, tuple[float, R]] = {}
        """Peer -> (monotonic time received, report) of its latest heartbeat."""
        self.on_join: JoinHandler | None = None
        self.on_heartbeat: Callable[[str, R], None] | None = None
        self.heartbeat_payload: HeartbeatSource = dict
        """What this node's heartbeats carry (the cluster side sets it); a new dict each
        round, not changed once returned."""
        self._heartbeat_encoder = PayloadEncoder()
        self.on_event: EventSink = lambda _event: None
        """Told of every path and node going up or down."""
        self._read_report = read_report
        self._beats: dict[str, list[_Beat[R]]] = {}
        """Peer -> its last heartbeats read, the newest first. The same bytes as one of them
        (the other paths' copies of a round, a settled peer's next rounds) are not decoded
        again; the same as the newest are not read again either."""
        self.ring = KeyRing(identity.key)
        """The cluster keys: frames are sealed under `ring.send`, accepted under any of
        `ring.accepted`; see set_ring."""
        self._sealer = Sealer(identity.key, identity.cluster, identity.node, identity.incarnation)
        self._opener = Opener(identity.key, identity.cluster, identity.node)
        self._key_failures: dict[str, collections.deque[float]] = {}
        """Peer -> monotonic times its last few frames or handshakes failed under our keys."""
        self.unauthenticated: dict[str, int] = {}
        """Accepted connections still in their handshake (or a join), per remote address."""
        self._guard = ReplayGuard()
        self._handlers: dict[str, Handler] = {}
        self._specs: dict[tuple[str, str], PathSpec] = {}
        self._specs_by_peer: dict[str, list[PathSpec]] | None = None
        """_specs indexed by peer (every send looks its peer's paths up); None: rebuild."""
        self._links: dict[tuple[str, str], Link] = {}
        self._link_lost: dict[tuple[str, str], asyncio.Event] = {}
        """Per dialled path: set when its connection goes, so the dialler wakes at once
        instead of polling a live connection."""
        self._servers: dict[str, asyncio.Server] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._calls = _Calls()
        self._wake = asyncio.Event()
        self._explained: dict[tuple[str, str], float] = {}

    # --- life cycle ------------------------------------------------------------------

    async def start(self, paths: list[PathSpec], listen: set[str]) -> None:
        self._tasks = [asyncio.create_task(self._heartbeat_loop(), name="heartbeats"),
                       asyncio.create_task(self._detector_loop(), name="failure-detector")]
        await self.set_paths(paths, listen)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.set_paths([], set())
        for future in self._calls.pending.values():
            future.cancel()

    async def set_paths(self, paths: list[PathSpec], listen: set[str]) -> None:
        """Adopt a new set of paths: open what is new, close what is gone.

        `listen`: this node's own addresses, where joining nodes connect too.
        """
        wanted = {(p.peer, p.name): p for p in paths}
        gone = {peer for peer, _ in self._specs} - {peer for peer, _ in wanted}
        for key in [k for k in self._specs if k not in wanted or self._specs[k] != wanted[k]]:
            self._drop_path(key)
        for peer in gone:
            # Left the cluster: if it joins again from a fresh state directory, its frames
            # start again at incarnation 1, sequence 1, which the old window would drop.
            self._guard.forget(peer)
            self._beats.pop(peer, None)
        now = time.monotonic()
        self._specs_by_peer = None
        for key, spec in wanted.items():
            if key not in self._specs:
                self._specs[key] = spec
                self.stats.setdefault(spec.name, PathStats())
                self.detector.add_path(key, now)
                self._open(spec)
        await self._listen(listen | {p.local for p in paths if p.kind == "tcp" and p.local})
        self._wake.set()

    def handle(self, kind: kinds.Kind | str, handler: Handler) -> None:
        """Serve requests of `kind`, one that the table (`lcm/kinds.py`) says tutelad serves;
        a kind of the table's `every_path` goes out, with its replies, on every live path."""
        entry = kinds.of(kind)
        if not entry.served_on_node:
            raise ValueError(f"{entry.name!r} is not served by a handler on the messenger "
                             "(tutela.lcm.kinds: served_on_node)")
        self._handlers[entry.name] = handler

    def handled(self) -> frozenset[str]:
        """The kinds this node serves."""
        return frozenset(self._handlers)

    def alive_reports(self) -> dict[str, R]:
        """The peers ALIVE now -> the report of their last heartbeat."""
        return {peer: report for peer, (_, report) in self.heartbeats.items()
                if self.detector.node_state(peer) == "ALIVE"}

    # --- sending -----------------------------------------------------------------------

    def send(self, peer: str, kind: str, payload: dict[str, Any], *,
             every_path: bool = False) -> bool:
        """Send on the best live path to `peer` (lowest priority number first), or with
        `every_path` the same frame on each live path; whether any path took it."""
        frame: bytes | None = None
        sent = False
        for spec in self._ranked_paths(peer):
            link = self._links.get((peer, spec.name))
            if link is None:
                continue
            frame = frame or self._sealer.seal(peer, kind, payload)
            sent = self._send_on(link, frame, kind) or sent
            if sent and not every_path:
                break
        return sent

    async def request(self, peer: str, kind: kinds.Kind | str, payload: dict[str, Any],
                      timeout: float = 5.0) -> dict[str, Any]:
        """Call a handler on `peer` and return its result; PeerUnreachable on failure (a
        kind not in the table: ValueError, before anything is sent)."""
        kind = kinds.of(kind).name
        call_id = next(self._calls.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls.pending[call_id] = future
        try:
            if not self.send(peer, kind, {**payload, "call": call_id},
                             every_path=kind in kinds.EVERY_PATH):
                raise PeerUnreachable(f"no live comm path to {peer}")
            async with asyncio.timeout(timeout):
                reply = await future
        except TimeoutError:
            raise PeerUnreachable(f"{peer} did not answer {kind} within {timeout:g}s") from None
        finally:
            self._calls.pending.pop(call_id, None)
        if not reply.get("ok"):
            raise PeerUnreachable(f"{peer} refused {kind}: {reply.get('error')}")
        return dict(reply.get("result") or {})

    def _ranked_paths(self, peer: str) -> list[PathSpec]:
        if self._specs_by_peer is None:
            self._specs_by_peer = {}
            for spec in self._specs.values():
                self._specs_by_peer.setdefault(spec.peer, []).append(spec)
        alive = [s for s in self._specs_by_peer.get(peer, ())
                 if self.detector.path_state((peer, s.name)) == "ALIVE"]
        return sorted(alive, key=lambda s: (s.priority, s.name))

    def _send_on(self, link: Link, frame: bytes, kind: str) -> bool:
        stats = self.stats[link.spec.name]
        if link.send(frame):
            stats.sent += 1
            self.frames_sent[kind] += 1
            return True
        stats.dropped_sends += 1
        return False

    # --- receiving ---------------------------------------------------------------------

    def _on_frame(self, data: bytes, spec: PathSpec) -> None:
        try:
            route = read_route(data)
            if self._copy_of_accepted(route, spec):
                # The other path's copy of a frame sent on every path: not decrypted again.
                self.reject(spec, "duplicate")
                return
            envelope, body, known = self._open_frame(route, data, spec)
        except FrameRejected as rejected:
            self.reject(spec, rejected.reason)
            return
        try:
            self._guard.accept(envelope.sender, envelope.incarnation, envelope.seq)
        except FrameRejected as rejected:
            duplicate = rejected.reason == "replay" and self._on_every_path(envelope)
            # The copy of a frame sent on every path is expected, not a sign of replays.
            self.reject(spec, "duplicate" if duplicate else rejected.reason)
            return
        now = time.monotonic()
        stats = self.stats[spec.name]
        stats.received += 1
        if envelope.kind == HEARTBEAT:
            stats.heartbeat(now)
        self._emit(self.detector.heard((spec.peer, spec.name), now))
        if envelope.kind == HEARTBEAT:
            self._read_heartbeat(envelope, body, known)
        else:
            self._dispatch(envelope)

    def _open_frame(self, route: Route, data: bytes, spec: PathSpec
                    ) -> tuple[Envelope, bytes, _Beat[R] | None]:
        """The frame's envelope and decrypted body, and the peer's heartbeat read before
        whose body is the same bytes, if any: that body is not decoded again."""
        body = self._opener.authenticate(route, data)
        known = next((beat for beat in self._beats.get(spec.peer, ()) if beat.body == body),
                     None)
        envelope = self._opener.envelope(
            route, decode_body(body) if known is None else known.decoded)
        if envelope.sender != spec.peer:
            raise FrameRejected("wrong-sender")
        return envelope, body, known

    def _copy_of_accepted(self, route: Route, spec: PathSpec) -> bool:
        """Whether the frame's clear route names a frame of this path's peer that was
        accepted already. Dropping it unopened drops only what the replay guard would drop
        after opening (a forgery naming it is refused either way); at 32 nodes nearly a quarter of
        the frames a node receives are such copies (lease rounds and their replies)."""
        return route.sender == spec.peer and self._guard.seen(route.sender,
                                                                route.incarnation, route.seq)

    def _on_every_path(self, envelope: Envelope) -> bool:
        """Whether the frame is of a kind sent on every live path (or the reply to one)."""
        if envelope.kind == REPLY:
            return envelope.payload.get("every_path") is True
        return envelope.kind in kinds.EVERY_PATH

    def reject(self, spec: PathSpec, reason: str) -> None:
        self.counters.count(reason)
        if reason in UNKNOWN_KEY_REASONS:
            failures = self._key_failures.setdefault(
                spec.peer, collections.deque(maxlen=KEY_FAILURES))
            failures.append(time.monotonic())
        if reason != "duplicate":  # the copies of every-path frames: expected, only counted
            self._explain(spec, reason)

    def _explain(self, spec: PathSpec, reason: str) -> None:
        """Say once a minute per path why its frames are dropped, with the likely cause."""
        now = time.monotonic()
        if now - self._explained.get((spec.name, reason), -EXPLAIN_EVERY) < EXPLAIN_EVERY:
            return
        self._explained[(spec.name, reason)] = now
        cause = EXPLANATIONS.get(reason, "")
        log.warning("path %s to %s: dropping frames (%s)%s", spec.name, spec.peer, reason,
                    f": {cause}" if cause else "")

    def unknown_key(self) -> list[str]:
        """Peers whose frames or handshakes failed under every key we hold, again and again
        in the last minute (one failure may be a peer that died mid-handshake)."""
        now = time.monotonic()
        return sorted(peer for peer, times in self._key_failures.items()
                      if len(times) == KEY_FAILURES and now - times[0] < EXPLAIN_EVERY)

    def stranger(self, address: str, reason: str) -> None:
        """Count a refused connection or frame from a stranger (no path known yet); say so at
        most once a minute per reason, whoever sends: a flood must not flood the log."""
        self.counters.count(reason)
        now = time.monotonic()
        if now - self._explained.get(("", reason), -EXPLAIN_EVERY) < EXPLAIN_EVERY:
            return
        self._explained[("", reason)] = now
        log.warning("refusing a connection from %s (%s); more are counted in dropped_frames "
                    "and logged once a minute", address, reason)

    def _read_heartbeat(self, envelope: Envelope, body: bytes, known: _Beat[R] | None
                        ) -> None:
        """Keep the peer's report; `known`: a heartbeat of the peer read before whose body
        is the same bytes. If its report is the one kept, it stays as it is: reading the
        same payload against the report it gave gives that report (ReportReader)."""
        sender = envelope.sender
        last = self.heartbeats.get(sender)
        if known is not None and last is not None and last[1] is known.report:
            report = known.report
        else:
            report = self._read_report(envelope.payload, None if last is None else last[1])
            others = [beat for beat in self._beats.get(sender, ()) if beat.body != body]
            self._beats[sender] = [
                _Beat(body, (envelope.recipient, envelope.kind, envelope.payload), report),
                *others[:BEATS_KEPT - 1]]
        self.heartbeats[sender] = (time.monotonic(), report)
        if self.on_heartbeat is not None:
            self.on_heartbeat(sender, report)

    def _dispatch(self, envelope: Envelope) -> None:
        if envelope.kind == REPLY:
            future = self._calls.pending.get(int(envelope.payload.get("call", 0)))
            if future is not None and not future.done():
                future.set_result(envelope.payload)
        elif envelope.kind in self._handlers:
            spawn(self._serve(envelope))
        else:
            self.counters.count("unknown-kind")

    async def _serve(self, envelope: Envelope) -> None:
        call = envelope.payload.get("call")
        try:
            reply = {"ok": True, "result": await self._handlers[envelope.kind](envelope)}
        except Exception as error:  # noqa: BLE001 - the caller gets the reason; we go on
            log.warning("%s from %s failed: %s", envelope.kind, envelope.sender, error)
            reply = {"ok": False, "error": str(error)}
        if call is not None:
            every_path = envelope.kind in kinds.EVERY_PATH
            self.send(envelope.sender, REPLY,
                      {**reply, "call": call, **({"every_path": True} if every_path else {})},
                      every_path=every_path)

    # --- paths and links ------------------------------------------------------------------

    def _open(self, spec: PathSpec) -> None:
        if spec.kind == "tty":
            try:
                link = SerialLink(spec, self._opener.check, self._on_frame)
                self._links[(spec.peer, spec.name)] = link
            except OSError as error:
                log.error("path %s: cannot open %s: %s", spec.name, spec.local, error)
        elif spec.dials:
            self._tasks.append(asyncio.create_task(self._dial(spec), name=f"dial {spec.name}"))

    def _drop_path(self, key: tuple[str, str]) -> None:
        spec = self._specs.pop(key)
        self._specs_by_peer = None
        link = self._links.pop(key, None)
        if link is not None:
            link.close()
        self._emit(self.detector.remove_path(key))
        for task in [t for t in self._tasks if t.get_name() == f"dial {spec.name}"]:
            task.cancel()
            self._tasks.remove(task)
        self._link_lost.pop(key, None)

    async def _dial(self, spec: PathSpec) -> None:
        """Keep one TCP connection up for a path this node dials; retry every interval."""
        key = (spec.peer, spec.name)
        loop = asyncio.get_running_loop()
        lost = self._link_lost.setdefault(key, asyncio.Event())
        while True:
            if key not in self._links:
                await self._connect(spec, loop)
            if key in self._links:
                lost.clear()
                await lost.wait()  # until the connection closes or the path is reset
            else:
                await asyncio.sleep(self.interval)  # the retry period while the path is down

    async def _connect(self, spec: PathSpec, loop: asyncio.AbstractEventLoop) -> None:
        """One connection attempt and its handshake; the link is the path's once both ends
        proved they hold the key."""
        identity = self.identity
        dialler = Dialler(self.ring.accepted, identity.cluster, identity.node, spec.peer)
        link: StreamLink | None = None
        try:
            async with asyncio.timeout(self.dead_after):
                _, link = await loop.create_connection(
                    lambda: self.stream_link(spec, dialler), spec.remote,
                    spec.port or self.port, local_addr=(spec.local, 0) if spec.local else None)
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await link.ready.wait()
        except (OSError, TimeoutError) as error:
            log.debug("path %s: connect failed: %s", spec.name, error)
            if link is not None:
                link.close()
            return
        if link.authenticated and self.knows(spec):
            self.adopt_link(link)
        else:
            link.close()

    # --- the key ring (a key rotation: lcm/keyring.py) -------------------------------------

    def set_ring(self, ring: KeyRing) -> None:
        """Seal under `ring.send` and accept `ring.accepted` from now on. A new sending key
        starts a new sender run (a fresh salt) whose seqs continue the old run's, so peers'
        replay windows need nothing new. Connections authenticated under a key no longer
        accepted are closed (`renew` replaced them first, so none should be left)."""
        if ring.send != self.ring.send:
            seq = self._sealer.seq
            identity = self.identity
            self._sealer = Sealer(ring.send, identity.cluster, identity.node,
                                  identity.incarnation)
            self._sealer.seq = seq
        self.ring = ring
        self._opener.set_keys(ring.accepted)
        for key, link in list(self._links.items()):
            if isinstance(link, StreamLink) and link.auth_key not in ring.accepted:
                log.info("path %s: closing its connection made under a retired key",
                         link.spec.name)
                del self._links[key]
                link.close()
                self._wake_dialler(key)

    async def renew(self) -> list[str]:
        """Connect anew every dialled path whose connection was made under another key than
        the sending key: the new connection displaces the old one only once its handshake is
        done, so the path keeps a link throughout. A path without a connection is left to
        its dialler, which uses the ring in force. The names of the paths still on a
        connection made under another key."""
        loop = asyncio.get_running_loop()
        stale = [spec for key, spec in self._specs.items() if spec.dials and self._stale(key)]
        await asyncio.gather(*(self._connect(spec, loop) for spec in stale))
        return sorted(spec.name for spec in stale if self._stale((spec.peer, spec.name)))

    def _stale(self, key: tuple[str, str]) -> bool:
        link = self._links.get(key)
        return isinstance(link, StreamLink) and link.auth_key != self.ring.send

    def set_timing(self, interval: float, misses: int) -> None:
        """A changed heartbeat interval or misses: heartbeats and detection follow at once."""
        self.interval = interval
        self.dead_after = interval * misses
        self.detector.set_timing(interval, misses)
        self._wake.set()  # the detector's next deadline moved

    def stream_link(self, spec: PathSpec, dialler: Dialler | None = None) -> StreamLink:
        return StreamLink(spec, self._on_frame, self._link_closed, self.reject, dialler)

    def _link_closed(self, link: StreamLink) -> None:
        key = (link.spec.peer, link.spec.name)
        if self._links.get(key) is link:
            del self._links[key]
            self._wake_dialler(key)

    def _wake_dialler(self, key: tuple[str, str]) -> None:
        lost = self._link_lost.get(key)
        if lost is not None:
            lost.set()

    async def _listen(self, addresses: set[str]) -> None:
        for address in set(self._servers) - addresses:
            self._servers.pop(address).close()
        for address in addresses - set(self._servers):
            try:
                self._servers[address] = await asyncio.get_running_loop().create_server(
                    lambda: _Accepted(self), address, self.port, reuse_address=True)
            except OSError as error:
                log.error("cannot listen on %s:%d: %s", address, self.port, error)

    def knows(self, spec: PathSpec) -> bool:
        """Whether `spec` is still one of the paths (not removed or changed meanwhile)."""
        return self._specs.get((spec.peer, spec.name)) == spec

    def accepted(self, local: str, remote: str) -> PathSpec | None:
        return next((s for s in self._specs.values()
                     if s.kind == "tcp" and s.local == local and s.remote == remote), None)

    def adopt_link(self, link: StreamLink) -> None:
        """Make an authenticated connection the path's link (never an unauthenticated one)."""
        assert link.authenticated
        if link.auth_key not in self.ring.accepted:
            link.close()  # its handshake began before a key rotation dropped that key
            return
        key = (link.spec.peer, link.spec.name)
        previous = self._links.get(key)
        if previous is not None and previous is not link:
            previous.close()  # the peer reconnected: its old connection is stale
        self._links[key] = link

    # --- heartbeats and failure detection -----------------------------------------------

    async def _heartbeat_loop(self) -> None:
        """Send a heartbeat on every path every interval, on the wall-clock grid (ticks)."""
        loop = asyncio.get_running_loop()
        self.next_round = next_tick(self.interval)
        while True:
            await asyncio.sleep(self.next_round - loop.time())
            late = loop.time() - self.next_round
            self.max_heartbeat_lateness = max(self.max_heartbeat_lateness, late)
            self.observe_lateness(late)
            if late > self.interval / 2:
                log.warning("heartbeat round %.0f ms late: the event loop was held up "
                            "(CPU starvation, a blocking call?)", late * 1000)
            payload = self._heartbeat_encoder.encode(self.heartbeat_payload())
            for (peer, _), link in list(self._links.items()):
                self._send_on(link, self._sealer.seal_encoded(peer, HEARTBEAT, payload),
                              HEARTBEAT)
            self.next_round = next_tick(self.interval)

    async def _detector_loop(self) -> None:
        while True:
            deadline = self.detector.next_deadline()
            delay = self.interval if deadline is None else max(0.0, deadline - time.monotonic())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._emit(self.detector.tick(time.monotonic()))

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            if event.kind == "path-down" and event.path is not None:
                self._reset_stream((event.node, event.path))
                self.stats[event.path].last_heartbeat = None  # an outage is not a gap
            self._wake.set()
            self.on_event(event)

    def _reset_stream(self, key: tuple[str, str]) -> None:
        """Close a dead path's TCP connection: a fresh one after the heal carries no backlog
        of stale frames. Serial lines stay open; they have no connection to renew."""
        link = self._links.get(key)
        if isinstance(link, StreamLink):
            del self._links[key]
            link.close()
            self._wake_dialler(key)


class _Accepted(asyncio.Protocol):
    """An accepted TCP connection. Until its handshake is done it carries nothing: its first
    frame must be a HELLO from the peer of the path its addresses match (or a join request),
    it may hold at most PRE_AUTH_BUFFER bytes, and it has HANDSHAKE_TIMEOUT to finish. Only
    then does it become the path's link, replacing the path's previous connection."""

    def __init__(self, messenger: Messenger[Any]) -> None:
        self._messenger = messenger
        self._link: StreamLink | None = None
        self._transport: asyncio.Transport | None = None
        self._splitter = FrameSplitter()
        self._spec: PathSpec | None = None
        self._acceptor: Acceptor | None = None
        self._address = "?"
        self._counted = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._address = str(transport.get_extra_info("peername")[0])
        pending = self._messenger.unauthenticated
        if (sum(pending.values()) >= MAX_UNAUTHENTICATED
                or pending.get(self._address, 0) >= MAX_UNAUTHENTICATED_PER_ADDRESS):
            self._refuse("too-many-connections")
            return
        pending[self._address] = pending.get(self._address, 0) + 1
        self._counted = True
        self._timer = asyncio.get_running_loop().call_later(
            HANDSHAKE_TIMEOUT, self._refuse, "handshake-timeout")

    def data_received(self, data: bytes) -> None:
        if self._link is not None:
            self._link.data_received(data)
            return
        if not self._counted:
            return  # refused, or handed to the join service
        for frame in self._splitter.feed(data):
            if self._link is not None:
                self._link.deliver(frame)  # what the dialler sent right after its proof
            elif not self._counted or not self._pre_auth(frame):
                return
        if self._link is not None or not self._counted:
            return
        if self._splitter.skipped_bytes:  # TCP neither loses nor corrupts bytes
            self._refuse("malformed")
        elif self._splitter.buffered > PRE_AUTH_BUFFER:
            self._refuse("oversize")

    def _pre_auth(self, frame: bytes) -> bool:
        """Take one frame of the handshake; False once the connection is refused."""
        try:
            if self._acceptor is None:
                self._first(frame)
            else:
                self._acceptor.finish(frame)
                self._authenticated()
        except FrameRejected as rejected:
            self._refuse(rejected.reason)
            return False
        return True

    def _first(self, frame: bytes) -> None:
        kind = frame_type(frame)
        messenger, transport = self._messenger, self._transport
        assert transport is not None
        if kind == SEALED and read_route(frame).cluster == NO_CLUSTER and messenger.on_join:
            self._done()  # the join service answers and closes the connection
            messenger.on_join(frame, transport)
            return
        if kind != HELLO:
            raise FrameRejected("unauthenticated", "a frame before the handshake")
        hello = read_hello(frame)
        self._spec = self._path_of(hello)
        self._acceptor = Acceptor(messenger.ring.accepted, hello)
        transport.write(self._acceptor.challenge_frame())

    def _path_of(self, hello: Hello) -> PathSpec:
        """The path the connection's addresses and the hello's names agree on."""
        identity = self._messenger.identity
        if hello.cluster != identity.cluster:
            raise FrameRejected("wrong-cluster", hello.cluster)
        if hello.acceptor != identity.node:
            raise FrameRejected("not-for-me", hello.acceptor)
        assert self._transport is not None
        local = self._transport.get_extra_info("sockname")[0]
        spec = self._messenger.accepted(local, self._address)
        if spec is None or spec.peer != hello.dialler:
            raise FrameRejected("unauthenticated", f"no path from {hello.dialler} here")
        return spec

    def _authenticated(self) -> None:
        assert self._spec is not None and self._transport is not None
        if not self._messenger.knows(self._spec):
            raise FrameRejected("unauthenticated", "the path was removed meanwhile")
        self._done()
        assert self._acceptor is not None and self._acceptor.key is not None
        self._link = self._messenger.stream_link(self._spec)
        self._link.take_over(self._transport, self._splitter, self._acceptor.key)
        self._messenger.adopt_link(self._link)

    def _done(self) -> None:
        """No longer an unauthenticated connection: uncount it, stop its timer."""
        if self._timer is not None:
            self._timer.cancel()
        if self._counted:
            self._counted = False
            pending = self._messenger.unauthenticated
            pending[self._address] -= 1
            if not pending[self._address]:
                del pending[self._address]

    def _refuse(self, reason: str) -> None:
        self._done()
        if self._spec is not None and reason != "too-many-connections":
            self._messenger.reject(self._spec, reason)
        else:
            self._messenger.stranger(self._address, reason)
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted and self._acceptor is not None and self._spec is not None:
            # A dialler without the key finds our challenge wrong and leaves: say so here too.
            self._messenger.reject(self._spec, "handshake")
        self._done()
        if self._link is not None:
            self._link.connection_lost(exc)
