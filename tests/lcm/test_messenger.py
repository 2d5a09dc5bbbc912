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

from tutela.lcm.detector import Event
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import Identity, Messenger, PeerUnreachable
from tutela.lcm.paths import PathSpec

A, B = "127.0.0.2", "127.0.0.3"
NAME = f"tcp/{A}-{B}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((A, 0))
        return int(sock.getsockname()[1])


def pair(key_b: bytes = b"k" * 32) -> tuple[Messenger, Messenger, list[Event]]:
    port = free_port()
    events: list[Event] = []

    def make(node: str, key: bytes) -> Messenger:
        return Messenger(Identity("c", node, key, 1), 0.05, 5,
                         lambda: {"generation": 1}, events.append, port=port)

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
        assert b.heartbeats["a"][1] == {"generation": 1}
        assert {e.kind for e in events} >= {"path-up", "node-up"}

    run(body)


def test_request_reaches_the_handler_and_errors_come_back() -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        async def echo(envelope: Envelope) -> dict[str, Any]:
            if envelope.payload.get("fail"):
                raise RuntimeError("refused on purpose")
            return {"echo": envelope.payload["text"], "from": envelope.sender}

        b.handle("echo", echo)
        await until(lambda: a.detector.node_state("b") == "ALIVE")
        assert await a.request("b", "echo", {"text": "hi"}) == {"echo": "hi", "from": "a"}
        with pytest.raises(PeerUnreachable, match="refused on purpose"):
            await a.request("b", "echo", {"fail": True})
        with pytest.raises(PeerUnreachable, match="no live comm path"):
            await a.request("nobody", "echo", {})

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
        assert a.detector.node_state("b") == "DEAD"
        assert "does not use this cluster's key" in caplog.text

    with caplog.at_level(logging.WARNING, logger="tutela.lcm"):
        run(body, key_b=b"x" * 32)


def test_a_heartbeat_that_leaves_a_key_out_keeps_its_last_value() -> None:
    async def body(a: Messenger, b: Messenger, _: list[Event]) -> None:
        beat: dict[str, object] = {"generation": 1, "states": {"app": "ISP"}}
        a._heartbeat = lambda: dict(beat)
        await until(lambda: "states" in b.heartbeats.get("a", (0, {}))[1])
        beat.update(generation=2)
        del beat["states"]
        await until(lambda: b.heartbeats["a"][1].get("generation") == 2)
        assert b.heartbeats["a"][1] == {"generation": 2, "states": {"app": "ISP"}}

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
