"""The witness daemon: nodes' frames over TCP, its administrator over a Unix socket.

One asyncio loop; every connection has its own bounded splitter, so none can stall another.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

from tutela.lcm.frame import SEALED, Envelope, FrameRejected, frame_type, read_route
from tutela.lcm.handshake import HANDSHAKE_TIMEOUT, HELLO, PRE_AUTH_BUFFER, Acceptor, read_hello
from tutela.lcm.join import NO_CLUSTER
from tutela.lcm.keyring import REKEY, RotationError
from tutela.lcm.messenger import HEARTBEAT, REPLY, spawn
from tutela.lcm.stream import FrameSplitter
from tutela.lcm.transport import MAX_BUFFERED
from tutela.model.config import NAME_PATTERN
from tutela.notify import Notifier
from tutela.witness import control
from tutela.witness.enroll import (
    Admission,
    Refusal,
    Tokens,
    decide,
    seal_admission,
    seal_refusal,
)
from tutela.witness.registry import ClusterRecord, Registry, RegistryError, write_atomic
from tutela.witness.served import Served, counters

log = logging.getLogger("tutela.witness")

MAX_BODY: Final = 64 * 1024
"""Largest frame body taken from a node: lease messages are small, and every connection may
hold one body's worth of unfinished bytes."""
MAX_CONNECTIONS: Final = 1024
MAX_UNAUTHENTICATED: Final = 64
"""Connections still in their handshake, at most, in all and from one address: a stranger
cannot crowd out the nodes."""
MAX_UNAUTHENTICATED_PER_ADDRESS: Final = 8
MAX_GARBAGE_FRAMES: Final = 8
MAX_SKIPPED_BYTES: Final = 4096
"""On TCP, bytes are neither lost nor corrupted: garbage is a bug or an attack."""
IDLE_TIMEOUT: Final = 10.0
"""A connection without an authenticated frame for this long (or 5 heartbeat intervals, if
longer) is closed: a crashed node's connection or a client that never authenticates."""
DEFAULT_INTERVAL: Final = 0.2
MIN_INTERVAL, MAX_INTERVAL = 0.02, 10.0
EXPLAIN_EVERY: Final = 60.0
UNAUTHENTICATED: Final = frozenset({"malformed", "version", "oversize", "bad-mac"})
EXPLANATIONS: Final = {
    "bad-mac": "the sender does not have the key this witness holds for the cluster (was the "
               "cluster initialised anew?); enrol it again with a token from "
               "'tutela-witness token --cluster NAME'",
    "unknown-cluster": "no cluster of that name is enrolled here; enrol it with a token from "
                       "'tutela-witness token'",
    "not-for-me": "the frame is for another voter id than the cluster enrolled with; the "
                  "cluster's witness address and its enrolment disagree: enrol again",
    "stale-incarnation": "frames from an older run of the node (delayed or replayed)",
    "replay": "copies of frames taken already: someone re-sends captured frames",
}


class CannotStart(Exception):
    """The witness cannot run as asked; the message names the problem and the fix."""


class Connection(asyncio.Protocol):
    """One TCP connection: an enrolment, or one node of one cluster once its handshake proved
    that the node holds the cluster's key (nothing else is taken or sent before)."""

    def __init__(self, witness: Witness) -> None:
        self.witness = witness
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self.splitter = FrameSplitter(max_frame=MAX_BODY)
        self.served: Served | None = None
        self.node: str | None = None
        """Set by the handshake; the connection then carries only that node's frames."""
        self.acceptor: tuple[Served, Acceptor] | None = None
        """The handshake under way: the cluster the hello named, our side of it."""
        self.opened_at = time.monotonic()
        self.interval = DEFAULT_INTERVAL
        self.garbage = 0
        self.last_valid = time.monotonic()
        self.enrolling = False
        self.auth_key: bytes | None = None
        """The cluster key its handshake was done under (a key rotation retires keys)."""
        self._beat: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        who = f"{self.node} of {self.served.name}" if self.served and self.node else "unknown"
        return f"{self.address} ({who})"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self.witness.connected(self)

    def data_received(self, data: bytes) -> None:
        if self.enrolling:
            return  # one enrolment per connection; its answer closes the connection
        skipped = self.splitter.skipped_bytes
        for frame in self.splitter.feed(data):
            if not self.open or self.enrolling:
                return
            self.witness.on_frame(self, frame)
        if self.node is None and self.splitter.buffered > PRE_AUTH_BUFFER and self.open:
            self.witness.refuse(self, "oversize")
        elif self.splitter.skipped_bytes > skipped:
            self.witness.counters.count("malformed")
            if self.splitter.skipped_bytes > MAX_SKIPPED_BYTES:
                self.close(f"{self.splitter.skipped_bytes} bytes that are no frame")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._beat is not None:
            self._beat.cancel()
        self.witness.disconnected(self)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def bind(self, served: Served, node: str, auth_key: bytes) -> None:
        self.served, self.node, self.auth_key = served, node, auth_key
        self._beat = asyncio.create_task(self._beat_loop(served, node), name=f"hb {self}")

    def announce(self, interval: Any) -> None:
        """The node's heartbeat interval: the witness beats at the same rate to it."""
        if (isinstance(interval, int | float) and not isinstance(interval, bool)
                and math.isfinite(interval)):
            self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, float(interval)))

    def send(self, frame: bytes) -> None:
        if self.transport is None or not self.open:
            return
        if self.transport.get_write_buffer_size() > MAX_BUFFERED:
            self.close("it does not read what the witness sends")  # queueing only goes stale
            return
        self.transport.write(frame)

    def answer(self, frame: bytes) -> None:
        """Send the one answer of an enrolment and close once it is written."""
        if self.transport is not None and self.open:
            self.transport.write(frame)
            self.transport.close()

    def close(self, why: str) -> None:
        if self.transport is not None and self.open:
            log.info("closing the connection from %s: %s", self, why)
            self.transport.abort()

    async def _beat_loop(self, served: Served, node: str) -> None:
        """Heartbeats on a fixed schedule, so the node's failure detector can track us."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.open:
            self.send(served.sealer.seal(node, HEARTBEAT, {"interval": self.interval}))
            next_at += self.interval
            now = loop.time()
            if next_at < now:  # we fell behind (a stall): do not send a burst
                next_at = now + self.interval
            await asyncio.sleep(next_at - now)


class Witness:
    """The served clusters, the enrolment tokens and every open connection."""

    def __init__(self, state_dir: Path, registry: Registry, started_at: float) -> None:
        self.state_dir = state_dir
        self.registry = registry
        self.incarnation = registry.incarnation
        self.started_at = started_at
        self.served = {name: Served(record, self.incarnation, started_at)
                       for name, record in registry.clusters.items()}
        self.tokens = Tokens()
        self.counters = counters("unknown-cluster", "enrol-refused")
        """Drops no served cluster can be charged with (unknown cluster, unreadable frame)."""
        self.connections: set[Connection] = set()
        self.listening: list[str] = []
        self.stopping = asyncio.Event()
        self._lock = asyncio.Lock()  # one state-file change at a time
        self._names_served = set(self.served)
        self._seqs: dict[str, int] = {}
        self._retired_grants: dict[str, float] = {}
        """Removed or replaced clusters -> the longest lease their voter may still have
        granted when it went (`_longest_grant`)."""
        self._warned: dict[tuple[str, str], float] = {}
        self._servers: list[asyncio.Server] = []
        self._housekeeper: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        """Set whenever no connection is open (stop waits for it)."""

    # --- life cycle ----------------------------------------------------------------------

    async def start(self, listen: list[tuple[str, int]]) -> None:
        loop = asyncio.get_running_loop()
        for host, port in listen:
            try:
                server = await loop.create_server(lambda: Connection(self), host, port,
                                                  reuse_address=True)
            except OSError as error:
                raise CannotStart(f"cannot listen on {host}:{port}: {error.strerror}; is "
                                  "another witness running there? choose another --listen"
                                  ) from None
            self._servers.append(server)
            self.listening += [_address(sock.getsockname()) for sock in server.sockets]
        self._servers.append(await control.serve(self.handlers(),
                                                 control.socket_path(self.state_dir)))
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="housekeeping")

    async def stop(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
        for server in self._servers:
            server.close()
            await server.wait_closed()
        for conn in list(self.connections):
            conn.close("the witness stops")
        if self.connections:  # abort() reports connection_lost on a later turn of the loop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._drained.wait()
        control.socket_path(self.state_dir).unlink(missing_ok=True)

    def connected(self, conn: Connection) -> None:
        self._drained.clear()
        waiting = [c.address for c in self.connections if c.node is None]
        if (len(self.connections) >= MAX_CONNECTIONS or len(waiting) >= MAX_UNAUTHENTICATED
                or waiting.count(conn.address) >= MAX_UNAUTHENTICATED_PER_ADDRESS):
            self.counters.count("too-many-connections")
            self._warn("", "connections", f"refusing connections from {conn.address} and "
                       "others: too many are open or in their handshake")
            conn.close("too many connections")
            return
        self.connections.add(conn)

    def disconnected(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._drained.set()
        if conn.served is not None:
            log.info("node %s of cluster %s disconnected (%s)", conn.node, conn.served.name,
                     conn.address)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                limit = max(IDLE_TIMEOUT, 5 * conn.interval)
                if conn.node is None and not conn.enrolling:
                    if now - conn.opened_at > HANDSHAKE_TIMEOUT:
                        self.refuse(conn, "handshake-timeout")
                elif now - conn.last_valid > limit:
                    conn.close(f"nothing authenticated for {limit:g}s")

    # --- frames from nodes ---------------------------------------------------------------

    def on_frame(self, conn: Connection, data: bytes) -> None:
        served, node = conn.served, conn.node
        if served is None or node is None:
            self._pre_auth(conn, data)
            return
        try:
            envelope = served.open(data, node)
        except FrameRejected as rejected:
            self._drop(conn, served, rejected.reason)
            return
        now = conn.last_valid = time.monotonic()
        served.heard(envelope.sender, conn.address, now)
        if envelope.kind == HEARTBEAT:
            conn.announce(envelope.payload.get("interval"))
        if envelope.kind == REKEY:
            spawn(self._rekey(conn, served, envelope), name=f"rekey {served.name}")
            return
        reply = served.answer(envelope, now)
        if reply is not None:
            conn.send(served.sealer.seal(envelope.sender, REPLY, reply))

    def _pre_auth(self, conn: Connection, data: bytes) -> None:
        """The handshake (or an enrolment): the only frames an unauthenticated connection
        may send; anything else, or a failed step, closes the connection."""
        try:
            if conn.acceptor is None:
                self._first(conn, data)
                return
            served, acceptor = conn.acceptor
            acceptor.finish(data)
            if acceptor.key not in served.record.ring.accepted:  # dropped by a rotation since
                raise FrameRejected("bad-mac", "a key retired during the handshake")
        except FrameRejected as rejected:
            self.refuse(conn, rejected.reason, rejected.detail)
            return
        node = acceptor.hello.dialler
        conn.acceptor = None
        conn.last_valid = now = time.monotonic()
        assert acceptor.key is not None
        conn.bind(served, node, acceptor.key)
        served.heard(node, conn.address, now)
        log.info("node %s of cluster %s connected from %s", node, served.name, conn.address)

    def _first(self, conn: Connection, data: bytes) -> None:
        kind = frame_type(data)
        if kind == SEALED and read_route(data).cluster == NO_CLUSTER:
            self._enrol(conn, data)
            return
        if kind != HELLO:
            raise FrameRejected("unauthenticated", "a frame before the handshake")
        hello = read_hello(data)
        served = self.served.get(hello.cluster)
        if served is None:
            raise FrameRejected("unknown-cluster", hello.cluster)
        if hello.acceptor != served.record.voter:
            conn.acceptor = (served, Acceptor(served.record.ring.accepted, hello))  # charged
            raise FrameRejected("not-for-me", hello.acceptor)
        conn.acceptor = (served, Acceptor(served.record.ring.accepted, hello))
        conn.send(conn.acceptor[1].challenge_frame())

    def refuse(self, conn: Connection, reason: str, claimed: str = "") -> None:
        """Count, and log at a bounded rate, why a connection fails its handshake; close it."""
        served = conn.acceptor[0] if conn.acceptor is not None else None
        self._drop(conn, served, reason, claimed if reason == "unknown-cluster" else "")
        conn.close(f"handshake refused ({reason})")

    def _drop(self, conn: Connection, served: Served | None, reason: str,
              claimed: str = "") -> None:
        (self.counters if served is None else served.counters).count(reason)
        cluster = claimed if served is None else served.name
        where = f" for cluster {cluster}" if cluster else ""
        cause = f": {EXPLANATIONS[reason]}" if reason in EXPLANATIONS else ""
        # Claimed names are the sender's choice: they must not grow the table of warnings.
        self._warn("" if served is None else served.name, reason,
                   f"dropping frames ({reason}) from {conn.address}{where}{cause}")
        if reason in UNAUTHENTICATED:
            conn.garbage += 1
            if conn.garbage > MAX_GARBAGE_FRAMES:
                conn.close(f"{conn.garbage} frames failed authentication")

    def _warn(self, cluster: str, reason: str, message: str) -> None:
        """Log a problem once a minute per cluster and reason: a flood must not flood the log."""
        now = time.monotonic()
        if now - self._warned.get((cluster, reason), -EXPLAIN_EVERY) >= EXPLAIN_EVERY:
            self._warned[(cluster, reason)] = now
            log.warning("%s", message)

    # --- key rotation (`tutela cluster rotate-key` on a node) -------------------------------

    async def _rekey(self, conn: Connection, served: Served, envelope: Envelope) -> None:
        """One step of a key rotation asked by a node of the cluster (its frame opened under
        the cluster's key, so only the cluster's nodes can ask); the new ring is on disk
        before it is used or acknowledged."""
        try:
            reply: dict[str, Any] = {"ok": True,
                                     "result": await self._rekey_step(served, envelope.payload)}
        except (RotationError, RegistryError, ValueError, KeyError, TypeError) as error:
            reply = {"ok": False, "error": str(error)}
        call = envelope.payload.get("call")
        if call is not None:
            conn.send(served.sealer.seal(envelope.sender, REPLY, {**reply, "call": call}))

    async def _rekey_step(self, served: Served, payload: dict[str, Any]) -> dict[str, Any]:
        phase = payload["phase"]
        async with self._lock:
            if self.served.get(served.name) is not served:
                raise ValueError(f"cluster {served.name} was re-enrolled or removed meanwhile")
            if phase == "state":
                return served.record.ring.view()
            new = bytes.fromhex(payload["key"]) if phase == "stage" else None
            ring = served.record.ring.step(phase, str(payload["id"]), new)
            if ring != served.record.ring:
                record = served.record.with_ring(ring)
                await self._store({**self.registry.clusters, served.name: record})
                served.rekeyed(record)
                log.info("cluster %s: key rotation step %s (key %s)", served.name, phase,
                         payload["id"])
            for conn in [c for c in self.connections
                         if c.served is served and c.auth_key not in ring.accepted]:
                conn.close("its handshake was under a retired cluster key")
            return ring.view()

    # --- enrolment -----------------------------------------------------------------------

    def _enrol(self, conn: Connection, data: bytes) -> None:
        conn.enrolling = True
        decision = decide(self.tokens, data, time.monotonic(), set(self.served))
        if isinstance(decision, Refusal):
            self.counters.count("enrol-refused")
            log.warning("enrolment from %s refused: %s", conn.address, decision.reason)
            conn.answer(decision.frame)
            return
        spawn(self._admit(conn, decision), name=f"enrol {decision.request.cluster}")

    async def _admit(self, conn: Connection, admission: Admission) -> None:
        request = admission.request
        async with self._lock:
            replaced = request.cluster in self.served
            if replaced and not admission.may_replace:  # enrolled while this one was checked
                self._refuse(conn, admission, f"cluster {request.cluster!r} was enrolled "
                             "meanwhile; to replace its key use a token made by "
                             f"'tutela-witness token --cluster {request.cluster}'")
                return
            record = ClusterRecord(request.cluster, request.key, request.voter,
                                   request.timing, request.node, _utc_now(),
                                   longest_lease_before=self._longest_grant(request.cluster))
            try:
                await self._store({**self.registry.clusters, request.cluster: record})
            except RegistryError as error:
                log.error("%s", error)
                self._refuse(conn, admission, f"the witness cannot store the cluster: {error}")
                return
            self._serve(record)
        log.info("cluster %s %s by node %s from %s: voter id %s, lease %gs",
                 request.cluster, "re-enrolled (new key)" if replaced else "enrolled",
                 request.node, conn.address, request.voter, request.timing.duration)
        conn.answer(seal_admission(admission, replaced))

    def _refuse(self, conn: Connection, admission: Admission, reason: str) -> None:
        self.counters.count("enrol-refused")
        log.warning("enrolment from %s refused: %s", conn.address, reason)
        conn.answer(seal_refusal(admission.token, admission.request.node, reason))

    def _serve(self, record: ClusterRecord) -> None:
        old = self.served.pop(record.name, None)
        if old is not None:
            self._retire(old)
        # A name served before in this run may have granted leases that its new voter has
        # forgotten: quiet again. A name new to this run is covered by the start's quiet.
        started = time.monotonic() if record.name in self._names_served else self.started_at
        self._names_served.add(record.name)
        self.served[record.name] = Served(record, self.incarnation, started,
                                          self._seqs.get(record.name, 0))

    def _longest_grant(self, name: str) -> float:
        """The longest lease the witness may still have granted `name` under an earlier
        enrolment (this run's, a removed one's, or the previous run's as recorded): its
        next voter must stay quiet that long, whatever lease it is enrolled with now."""
        served = self.served.get(name)
        now = time.monotonic()
        if served is not None:
            return served.longest_grant(now)
        return self._retired_grants.get(name, 0.0)

    def _retire(self, served: Served) -> None:
        self._retired_grants[served.name] = served.longest_grant(time.monotonic())
        self._seqs[served.name] = served.sealer.seq  # its nodes' replay windows remember them
        for conn in [c for c in self.connections if c.served is served]:
            conn.close(f"cluster {served.name} was re-enrolled or removed")

    async def _store(self, clusters: dict[str, ClusterRecord]) -> None:
        data = self.registry.encode(clusters)
        await asyncio.to_thread(write_atomic, self.registry.path, data)  # fsync: off the loop
        self.registry.clusters = clusters

    # --- the control socket --------------------------------------------------------------

    def handlers(self) -> dict[str, control.Handler]:
        return {"ping": self._ping, "token": self._token, "list": self._list,
                "remove": self._remove}

    async def _ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"incarnation": self.incarnation}

    async def _token(self, request: dict[str, Any]) -> dict[str, Any]:
        ttl, cluster = request.get("ttl", 600.0), request.get("cluster")
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
            raise control.Refused(f"--ttl must be a positive number of seconds, not {ttl!r}")
        if cluster is not None and not (isinstance(cluster, str)
                                        and re.fullmatch(NAME_PATTERN, cluster)):
            raise control.Refused(f"--cluster {cluster!r} is not a cluster name")
        try:
            token = self.tokens.issue(float(ttl), cluster, time.monotonic())
        except ValueError as error:
            raise control.Refused(str(error)) from None
        log.info("made an enrolment token, valid %gs, for %s", ttl,
                 f"cluster {cluster}" if cluster else "a new cluster")
        return {"token": token, "ttl": ttl, "cluster": cluster}

    async def _list(self, request: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        per_node = Counter((c.served.name, c.node) for c in self.connections if c.served)
        clusters = {name: served.status(now, {node: n for (c, node), n in per_node.items()
                                              if c == name and node is not None})
                    for name, served in sorted(self.served.items())}
        return {"witness": {"incarnation": self.incarnation, "listen": self.listening,
                            "uptime": round(now - self.started_at, 3),
                            "tokens": self.tokens.outstanding(now),
                            "connections": len(self.connections),
                            "dropped_frames": self.counters.snapshot()},
                "clusters": clusters}

    async def _remove(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("cluster")
        async with self._lock:
            if not isinstance(name, str) or name not in self.served:
                raise control.Refused(f"no cluster {name!r} is enrolled here; "
                                      "'tutela-witness list' shows the clusters served")
            await self._store({k: v for k, v in self.registry.clusters.items() if k != name})
            self._retire(self.served.pop(name))
        log.info("cluster %s removed: its key is forgotten, its nodes disconnected", name)
        return {"removed": name}


async def run(state_dir: Path, listen: list[tuple[str, int]],
              notifier: Notifier | None = None) -> None:
    """Serve until SIGTERM or SIGINT; raises CannotStart or RegistryError when it cannot.
    `notifier` tells systemd when it is ready (Type=notify)."""
    control.claim_socket(control.socket_path(state_dir))
    registry = Registry.load(state_dir)
    registry.start()
    witness = Witness(state_dir, registry, time.monotonic())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, witness.stopping.set)
    try:
        await witness.start(listen)
        log.info("ready on %s (incarnation %d), serving %s; every voter refuses grants for "
                 "its first L(1+drift)", ", ".join(witness.listening), witness.incarnation,
                 ", ".join(sorted(witness.served)) or "no cluster yet")
        if notifier is not None:
            notifier.ready(f"serving on {', '.join(witness.listening)} ('tutela-witness "
                           f"list' shows the clusters)")
        await witness.stopping.wait()
        log.info("stopping")
    finally:
        await witness.stop()
        log.info("stopped")


def _address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
