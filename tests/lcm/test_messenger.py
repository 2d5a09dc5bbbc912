"""The messenger over real TCP on loopback addresses: heartbeats, detection, calls, keys.

Two messengers play two nodes on 127.0.0.2 and 127.0.0.3 (loopback, this host only).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tutela.engine.peer_report import PeerReport, parse
from tutela.lcm import kinds
from tutela.lcm import messenger as messenger_module
from tutela.lcm.detector import Event
from tutela.lcm.frame import Envelope, FrameRejected, Route, Sealer, decode_body
from tutela.lcm.handshake import PRE_AUTH_BUFFER, Acceptor, Dialler
from tutela.lcm.keyring import KeyRing, key_id
from tutela.lcm.messenger import (
    MAX_UNAUTHENTICATED_PER_ADDRESS,
    Identity,
    Messenger,
    PeerUnreachable,
)
from tutela.lcm.paths import PathSpec

A, B = "127.0.0.2", "127.0.0.3"
NAME = f"tcp/{A}-{B}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((A, 0))
        return int(sock.getsockname()[1])


def pair(key_b: bytes = b"k" * 32) -> tuple[Messenger[PeerReport], Messenger[PeerReport],
                                            list[Event]]:
    port = free_port()
    events: list[Event] = []

    def make(node: str, key: bytes) -> Messenger[PeerReport]:
        messenger = Messenger(Identity("c", node, key, 1), 0.05, 5, read_report=parse,
                              port=port)
        messenger.heartbeat_payload = lambda: {"generation": 1}
        messenger.on_event = events.append
        return messenger

    return make("a", b"k" * 32), make("b", key_b), events


async def started(a: Messenger, b: Messenger) -> None:
    await a.start([PathSpec("b", NAME, "tcp", A, B, 1)], {A})
    await b.start([PathSpec("a", NAME, "tcp", B, A, 1)], {B})


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def run(body: Callable[[Messenger, Messenger, list[Event]], Awaitable[None]],
        key_b: bytes = b"k" * 32) -> None:
    async def main() -> None:
        a, b, events = pair(key_b)
        await started(a, b)
        try:
            await body(a, b, events)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_heartbeats_make_both_ends_alive_and_carry_payload() -> None:
    async def body(a: Messenger, b: Messenger, events: list[Event]) -> None:
        await until(lambda: a.detector.node_state("b") == "ALIVE"
                    and b.detector.node_state("a") == "ALIVE")
        await until(lambda: "a" in b.heartbeats)
        assert b.heartbeats["a"][1].generation == 1
        assert {e.kind for e in events} >= {"path-up", "node-up"}

    run(body)


def test_request_reaches_the_handler_and_errors_come_back() -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        async def echo(envelope: Envelope) -> dict[str, Any]:
            if envelope.payload.get("fail"):
                raise RuntimeError("refused on purpose")
            return {"echo": envelope.payload["text"], "from": envelope.sender}

        b.handle(kinds.DOCTOR_FACTS, echo)  # any kind of the table
        await until(lambda: a.detector.node_state("b") == "ALIVE")
        assert await a.request("b", kinds.DOCTOR_FACTS, {"text": "hi"}) == {"echo": "hi",
                                                                          "from": "a"}
        with pytest.raises(PeerUnreachable, match="refused on purpose"):
            await a.request("b", kinds.DOCTOR_FACTS, {"fail": True})
        with pytest.raises(PeerUnreachable, match="no live comm path"):
            await a.request("nobody", kinds.DOCTOR_FACTS, {})

    run(body)


def test_stopped_peer_is_declared_dead() -> None:
    async def body(a: Messenger, b: Messenger, events: list[Event]) -> None:
        await until(lambda: a.detector.node_state("b") == "ALIVE")
        await b.stop()
        await until(lambda: a.detector.node_state("b") == "DEAD")
        assert [e.kind for e in events if e.node == "b"][-1] == "node-down"

    run(body)


def test_peer_with_another_key_is_dropped_and_explained(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        await until(lambda: a.counters.snapshot().get("bad-mac", 0) >= 3)
        # b accepts: it sees a dialler leave after its challenge, and says so too.
        await until(lambda: b.counters.snapshot().get("handshake", 0) >= 3)
        assert a.detector.node_state("b") == "DEAD"
        assert "does not use this cluster's key" in caplog.text

    with caplog.at_level(logging.WARNING, logger="tutela.lcm"):
        run(body, key_b=b"x" * 32)


def test_a_heartbeat_that_leaves_the_bulky_part_out_keeps_its_last_value() -> None:
    async def body(a: Messenger[PeerReport], b: Messenger[PeerReport], _: list[Event]
                   ) -> None:
        beat: dict[str, object] = {"generation": 1, "states": {"app": "ISP"}}
        a.heartbeat_payload = lambda: dict(beat)
        await until(lambda: "a" in b.heartbeats and bool(b.heartbeats["a"][1].states))
        beat.update(generation=2)
        del beat["states"]
        await until(lambda: b.heartbeats["a"][1].generation == 2)
        assert b.heartbeats["a"][1].states == {"app": "ISP"}

    run(body)


def test_heartbeat_rounds_are_on_the_wall_clock_grid() -> None:
    """Every node's rounds fall on multiples of the interval of the wall clock, so an idle
    node wakes once per round for its own heartbeats and its peers' together."""
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        await until(lambda: "a" in b.heartbeats)
        loop = asyncio.get_running_loop()
        for messenger in (a, b):
            wall = messenger.next_round - loop.time() + time.time()
            assert abs(wall / 0.05 - round(wall / 0.05)) < 0.02

    run(body)


# --- connections before their handshake (docs/protocol.md section 3) ----------------------

async def rogue(a: Messenger, first: bytes = b"", source: str = B
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to a's cluster port from `source` (b's address: a path's address)."""
    reader, writer = await asyncio.open_connection(A, a.port, local_addr=(source, 0))
    if first:
        writer.write(first)
    return reader, writer


async def received_until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.read()


def drops(m: Messenger, reason: str) -> int:
    return m.counters.snapshot().get(reason, 0)


def test_rogue_from_the_peers_address_gets_nothing_and_displaces_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        await until(lambda: a.detector.node_state("b") == "ALIVE" and "a" in b.heartbeats)
        working = a._links[("b", NAME)]
        # An authentic frame of b (a recording) on a connection without a handshake.
        replay = Sealer(b"k" * 32, "c", "b", 1).seal("a", "hb", {"generation": 1})
        for _ in range(5):
            reader, writer = await rogue(a, replay)
            assert await received_until_closed(reader) == b""
            writer.close()
        assert drops(a, "unauthenticated") == 5
        assert a._links[("b", NAME)] is working
        heard = b.stats[NAME].received
        await until(lambda: b.stats[NAME].received > heard)  # the path still carries frames
        assert a.detector.node_state("b") == "ALIVE"
        assert caplog.text.count("refusing a connection") == 1  # once a minute per reason

    with caplog.at_level(logging.WARNING, logger="tutela.lcm"):
        run(body)


def test_hello_with_the_wrong_names_is_refused() -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        for dialler, acceptor, cluster, reason in (("c", "a", "c", "unauthenticated"),
                                                   ("b", "x", "c", "not-for-me"),
                                                   ("b", "a", "other", "wrong-cluster")):
            hello = Dialler(b"k" * 32, cluster, dialler, acceptor).hello_frame()
            reader, writer = await rogue(a, hello)
            assert await received_until_closed(reader) == b""
            writer.close()
            assert drops(a, reason) == 1, reason

    run(body)


def test_a_stranger_gets_one_challenge_and_a_wrong_proof_closes_it() -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        await until(lambda: a.detector.node_state("b") == "ALIVE")
        working = a._links[("b", NAME)]
        impostor = Dialler(b"x" * 32, "c", "b", "a")
        reader, writer = await rogue(a, impostor.hello_frame())
        challenge = await reader.readexactly(len(Acceptor(b"k" * 32, impostor.hello)
                                                 .challenge_frame()))
        with pytest.raises(FrameRejected, match="bad-mac"):
            impostor.answer(challenge)  # the impostor cannot even check it
        writer.write(challenge)  # the challenge reflected as a proof
        assert await received_until_closed(reader) == b""
        assert drops(a, "handshake") == 1
        assert a._links[("b", NAME)] is working

    run(body)


def test_preauth_limits_size_time_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough for every connection below to be made before the first times out.
    monkeypatch.setattr(messenger_module, "HANDSHAKE_TIMEOUT", 2.0)

    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        hoard = b"TU\x02\x01" + (60000).to_bytes(4, "big") + bytes(PRE_AUTH_BUFFER)
        reader, writer = await rogue(a, hoard)
        assert await received_until_closed(reader) == b""
        assert drops(a, "oversize") == 1
        silent = [await rogue(a) for _ in range(MAX_UNAUTHENTICATED_PER_ADDRESS + 1)]
        assert await received_until_closed(silent[-1][0]) == b""  # refused at once
        assert drops(a, "too-many-connections") == 1
        for reader, writer in silent[:-1]:
            assert await received_until_closed(reader) == b""
            writer.close()
        assert drops(a, "handshake-timeout") == MAX_UNAUTHENTICATED_PER_ADDRESS
        assert a.unauthenticated == {}

    run(body)


# --- a cluster key rotation (lcm/keyring.py, docs/protocol.md) ------------------------------

OLD_KEY, NEW_KEY = b"k" * 32, b"n" * 32


async def rotate(a: Messenger, b: Messenger, phases: tuple[str, ...]) -> None:
    """Both messengers take each phase, and frames flow both ways after each."""
    for phase in phases:
        for messenger in (a, b):
            messenger.set_ring(messenger.ring.step(phase, key_id(NEW_KEY), NEW_KEY))
        await flowing(a, b)


async def flowing(a: Messenger, b: Messenger) -> None:
    heard = a.stats[NAME].received, b.stats[NAME].received
    await until(lambda: a.stats[NAME].received > heard[0] + 2
                and b.stats[NAME].received > heard[1] + 2)


def test_a_key_rotation_renews_the_connection_and_no_path_goes_down() -> None:
    async def body(a: Messenger, b: Messenger, events: list[Event]) -> None:
        await until(lambda: a.detector.node_state("b") == "ALIVE"
                    and b.detector.node_state("a") == "ALIVE")
        before = len(events)
        await rotate(a, b, ("stage", "switch"))
        old_link = a._links[("b", NAME)]  # a dials: its address sorts first
        assert old_link.auth_key == OLD_KEY
        assert await a.renew() == []
        assert a._links[("b", NAME)] is not old_link
        assert a._links[("b", NAME)].auth_key == NEW_KEY
        await until(lambda: b._links[("a", NAME)].auth_key == NEW_KEY)
        await rotate(a, b, ("drop",))
        assert a.ring == b.ring == KeyRing(NEW_KEY)
        assert [e for e in events[before:] if e.kind.endswith("down")] == []
        assert drops(a, "bad-mac") == drops(b, "bad-mac") == 0
        # The old key is refused now, in frames and in handshakes.
        with pytest.raises(FrameRejected, match="bad-mac"):
            a._opener.open(Sealer(OLD_KEY, "c", "b", 1).seal("a", "hb", {}))
        impostor = Dialler(OLD_KEY, "c", "b", "a")
        reader, writer = await rogue(a, impostor.hello_frame())
        challenge = await reader.readexactly(len(Acceptor(NEW_KEY, impostor.hello)
                                                 .challenge_frame()))
        with pytest.raises(FrameRejected, match="bad-mac"):
            impostor.answer(challenge)
        writer.close()

    run(body)


def test_dropping_the_old_key_closes_connections_made_under_it_and_they_come_back() -> None:
    async def body(a: Messenger, b: Messenger, events: list[Event]) -> None:
        await until(lambda: a.detector.node_state("b") == "ALIVE"
                    and b.detector.node_state("a") == "ALIVE")
        before = len(events)
        await rotate(a, b, ("stage", "switch", "drop"))  # no renew: the drop closes them
        await until(lambda: a._links.get(("b", NAME)) is not None
                    and a._links[("b", NAME)].auth_key == NEW_KEY)
        await flowing(a, b)
        assert [e for e in events[before:] if e.kind.endswith("down")] == []

    run(body)


def test_a_peer_left_on_the_old_key_is_explained_as_a_rotation_it_missed(
        caplog: pytest.LogCaptureFixture) -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        await until(lambda: a.unknown_key() == ["b"] and b.unknown_key() == ["a"])
        assert "was the cluster key rotated while this node was away? re-join it" in caplog.text

    with caplog.at_level(logging.WARNING, logger="tutela.lcm"):
        run(body, key_b=NEW_KEY)


def test_the_copy_of_a_frame_sent_on_every_path_is_dropped_unopened(
        caplog: pytest.LogCaptureFixture) -> None:
    """Two paths; a lease request goes out on both, with its reply: each end opens (decrypts)
    one copy and drops the other before decrypting it, counted as a duplicate and not
    logged (expected: docs/protocol.md)."""
    c, d = "127.0.0.4", "127.0.0.5"
    second = f"tcp/{c}-{d}"

    async def main() -> None:
        a, b, _ = pair()
        opened: list[str] = []
        authenticate = b._opener.authenticate

        def counting_authenticate(route: Route, data: bytes) -> bytes:
            body = authenticate(route, data)
            opened.append(decode_body(body)[1])
            return body

        b._opener.authenticate = counting_authenticate  # type: ignore[method-assign]
        served: list[int] = []

        async def vote(envelope: Envelope) -> dict[str, Any]:
            served.append(envelope.seq)
            return {}

        b.handle(kinds.LEASE_ACQUIRE, vote)
        await a.start([PathSpec("b", NAME, "tcp", A, B, 1),
                       PathSpec("b", second, "tcp", c, d, 2)], {A, c})
        await b.start([PathSpec("a", NAME, "tcp", B, A, 1),
                       PathSpec("a", second, "tcp", d, c, 2)], {B, d})
        try:
            await until(lambda: all(a.detector.path_state(("b", p)) == "ALIVE"
                                    and b.detector.path_state(("a", p)) == "ALIVE"
                                    for p in (NAME, second)))
            await a.request("b", kinds.LEASE_ACQUIRE, {})
            await until(lambda: b.counters.snapshot()["duplicate"] == 1
                        and a.counters.snapshot()["duplicate"] == 1)
            assert len(served) == 1 and opened.count(kinds.LEASE_ACQUIRE.name) == 1
            assert b.frames_sent[kinds.REPLY.name] == 2  # the reply on both paths
            assert "dropping frames" not in caplog.text
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())
