"""The messenger's receive path for heartbeats, fed frames directly (no sockets: its paths
are udp paths, which open nothing): a heartbeat whose bytes repeat the peer's last one is
neither decoded nor read again, gives exactly the report reading it gives, and passes every
check a new one passes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from tutela.engine.peer_report import PeerReport, parse
from tutela.lcm import messenger as messenger_module
from tutela.lcm.frame import Body, Sealer, decode_body
from tutela.lcm.messenger import HEARTBEAT, Identity, Messenger
from tutela.lcm.paths import PathSpec

KEY = b"k" * 32
BULKY = {"generation": 3, "version": [3, 1], "holds": ["app"], "failed": [], "stuck": [],
         "failovers": {}, "unleased": {}, "hears": ["a"],
         "states": {"app": "ISP", "ip": "ISP"}, "ran": {"app": "2026-12-07T06:00:00+00:00"}}
LIGHT = {key: value for key, value in BULKY.items() if key not in ("states", "ran")}


def paths(peer: str) -> list[PathSpec]:
    return [PathSpec(peer, f"udp/203.0.113.{n}-{peer}", "udp", f"203.0.113.{n}", peer, n)
            for n in (1, 2)]


class Receiver:
    """Node a's messenger with two paths to b and one to c, counting what it reads."""

    def __init__(self) -> None:
        self.read: list[Mapping[str, Any]] = []
        self.told: list[PeerReport] = []
        self.messenger: Messenger[PeerReport] = Messenger(
            Identity("c", "a", KEY, 1), 0.2, 5, read_report=self.read_report)
        self.messenger.on_heartbeat = lambda _peer, report: self.told.append(report)
        self.paths = paths("b")
        asyncio.run(self.messenger.set_paths(self.paths + paths("c")[:1], set()))

    def read_report(self, payload: Mapping[str, Any], previous: PeerReport | None
                    ) -> PeerReport:
        self.read.append(payload)
        return parse(payload, previous)

    def feed(self, frame: bytes, path: int = 0) -> None:
        self.messenger._on_frame(frame, self.paths[path])

    def report(self) -> PeerReport:
        return self.messenger.heartbeats["b"][1]

    def drops(self) -> dict[str, int]:
        return {reason: n for reason, n in self.messenger.counters.snapshot().items() if n}


def beat(sealer: Sealer, payload: dict[str, Any]) -> bytes:
    return sealer.seal("a", HEARTBEAT, payload)


def test_a_heartbeat_that_repeats_the_last_bytes_is_not_read_again() -> None:
    receiver, b = Receiver(), Sealer(KEY, "c", "b", 1)
    receiver.feed(beat(b, BULKY))
    first = receiver.messenger.heartbeats["b"]
    for path in (0, 1, 0, 1, 0, 1):  # three rounds on both paths
        receiver.feed(beat(b, BULKY), path)
    assert len(receiver.read) == 1
    assert receiver.report() is first[1] and receiver.messenger.heartbeats["b"][0] > first[0]
    assert len(receiver.told) == 7  # every heartbeat is told, repeated or not
    assert receiver.drops() == {}


def test_light_and_bulky_heartbeats_in_turn_are_decoded_once_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes] = []

    def counting_decode(body: bytes) -> Body:
        decoded.append(body)
        return decode_body(body)

    monkeypatch.setattr(messenger_module, "decode_body", counting_decode)
    receiver, b = Receiver(), Sealer(KEY, "c", "b", 1)
    for payload in (BULKY, LIGHT, LIGHT, BULKY, BULKY, LIGHT, BULKY):
        receiver.feed(beat(b, payload))
    assert len(decoded) == 2 and len(receiver.read) == 5  # read again after each change
    assert receiver.report() == parse(BULKY)


def test_a_repeat_gives_exactly_what_reading_it_gives() -> None:
    """Bulky, light and changed heartbeats in the order a settled peer sends them; after
    each, the kept report is the one reading every heartbeat from scratch gives."""
    receiver, b = Receiver(), Sealer(KEY, "c", "b", 1)
    changed = {**BULKY, "states": {"app": "OSS", "ip": "ISP"}}
    schedule = [BULKY, BULKY, LIGHT, LIGHT, {**LIGHT, "holds": []}, {**LIGHT, "holds": []},
                changed, LIGHT, LIGHT, changed, BULKY, LIGHT]
    expected: PeerReport | None = None
    for n, payload in enumerate(schedule):
        expected = parse(payload, expected)
        receiver.feed(beat(b, payload), n % 2)
        assert receiver.report() == expected, n
    assert len(receiver.read) == 8  # the repeats of the heartbeat before were not read


def test_a_repeat_is_checked_like_any_frame() -> None:
    receiver, b = Receiver(), Sealer(KEY, "c", "b", 2)
    frame = beat(b, BULKY)
    receiver.feed(frame)
    heard = receiver.messenger.heartbeats["b"]
    receiver.feed(frame, 1)  # the same frame again: dropped unopened as a copy
    tampered = bytearray(beat(b, BULKY))
    tampered[-1] ^= 1
    receiver.feed(bytes(tampered))
    receiver.feed(beat(Sealer(KEY, "c", "b", 1), BULKY))  # the peer's previous run
    forger = Sealer(b"x" * 32, "c", "b", 2)  # another cluster key, seqs not yet seen
    forger.seq = 10
    receiver.feed(beat(forger, BULKY))
    receiver.messenger._on_frame(beat(b, BULKY), paths("c")[0])  # on another peer's path
    assert receiver.drops() == {"duplicate": 1, "bad-mac": 2, "stale-incarnation": 1,
                                "wrong-sender": 1}
    assert receiver.messenger.heartbeats["b"] is heard and len(receiver.told) == 1


@pytest.mark.parametrize("payload", [BULKY, LIGHT])
def test_a_repeat_from_a_restarted_peer_is_kept_as_the_same_report(
        payload: dict[str, Any]) -> None:
    receiver = Receiver()
    receiver.feed(beat(Sealer(KEY, "c", "b", 1), BULKY))
    receiver.feed(beat(Sealer(KEY, "c", "b", 2), payload))
    receiver.feed(beat(Sealer(KEY, "c", "b", 3), payload))
    assert receiver.report() == parse(payload, parse(BULKY)) and receiver.drops() == {}
