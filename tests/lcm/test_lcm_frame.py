"""Frames: seal/open round trip, authentication, the rejection reasons, the published vectors."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.lcm.frame import (
    HEADER_SIZE,
    MAC_SIZE,
    MAX_FRAME,
    MAX_SEQ,
    REASONS,
    Envelope,
    FrameRejected,
    Sealer,
    derive_key,
    open_frame,
    sign,
    verify,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def sealer(sender: str = "alpha", incarnation: int = 7, key: bytes = KEY) -> Sealer:
    return Sealer(key, "demo", sender, incarnation)


def reason(data: bytes, key: bytes = KEY, cluster: str = "demo", me: str = "beta") -> str:
    with pytest.raises(FrameRejected) as caught:
        open_frame(key, data, cluster, me)
    found: str = caught.value.reason
    assert found in REASONS
    return found


def forge(fields: dict[str, Any] | bytes, key: bytes = KEY, version: int = 1,
          flags: int = 0) -> bytes:
    """A correctly signed frame around any body, to reach the checks behind the MAC."""
    body = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    unsigned = b"TU" + struct.pack(">BBI", version, flags, len(body)) + body
    return unsigned + sign(key, unsigned)


def valid_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"cluster": "demo", "sender": "alpha", "recipient": "beta",
                              "incarnation": 7, "seq": 1, "kind": "ping", "payload": {}}
    fields.update(changes)
    return fields


# --- round trip and sealing -------------------------------------------------------------

def test_round_trip() -> None:
    payload = {"hierarchies": ["app"], "load": 0.5, "note": "ünïcödé", "nested": {"a": [1]}}
    env = open_frame(KEY, sealer().seal("beta", "status", payload), "demo", "beta")
    assert env == Envelope("demo", "alpha", "beta", 7, 1, "status", payload)


def test_broadcast_is_for_everyone() -> None:
    frame = sealer().seal("*", "hello", {})
    assert open_frame(KEY, frame, "demo", "beta").recipient == "*"
    assert open_frame(KEY, frame, "demo", "gamma").recipient == "*"


def test_seq_starts_at_one_and_increases_over_all_recipients() -> None:
    s = sealer()
    seqs = [open_frame(KEY, s.seal(to, "ping", {}), "demo", "gamma" if to == "gamma" else "beta")
            .seq for to in ("beta", "gamma", "*", "beta")]
    assert seqs == [1, 2, 3, 4]
    assert s.seq == 4


def test_failed_seal_does_not_use_a_seq() -> None:
    s = sealer()
    with pytest.raises(ValueError, match="exceeds"):
        s.seal("beta", "big", {"blob": "x" * MAX_FRAME})
    with pytest.raises(TypeError):
        s.seal("beta", "bad", {"x": object()})
    with pytest.raises(ValueError):
        s.seal("beta", "nan", {"x": float("nan")})
    assert open_frame(KEY, s.seal("beta", "ok", {}), "demo", "beta").seq == 1


def test_body_at_the_limit_passes() -> None:
    empty = len(sealer().seal("beta", "big", {"blob": ""})) - HEADER_SIZE - MAC_SIZE
    frame = sealer().seal("beta", "big", {"blob": "x" * (MAX_FRAME - empty)})
    assert len(frame) == HEADER_SIZE + MAX_FRAME + MAC_SIZE
    assert open_frame(KEY, frame, "demo", "beta").kind == "big"


@pytest.mark.parametrize(("args", "message"), [
    ((b"short", "demo", "alpha", 1), "at least"),
    ((KEY, "demo", "*", 1), "sender"),
    ((KEY, "demo", "", 1), "sender"),
    ((KEY, "demo", "alpha", -1), "incarnation"),
])
def test_sealer_refuses_bad_identity(args: tuple[bytes, str, str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sealer(*args)


def test_empty_cluster_name_is_allowed_for_the_join_exchange() -> None:
    frame = Sealer(KEY, "", "newcomer", 1).seal("*", "join", {})
    assert open_frame(KEY, frame, "", "*").sender == "newcomer"


# --- rejection reasons ------------------------------------------------------------------

def test_wrong_key_is_bad_mac() -> None:
    assert reason(sealer(key=OTHER_KEY).seal("beta", "ping", {})) == "bad-mac"


def test_wrong_cluster() -> None:
    assert reason(sealer().seal("beta", "ping", {}), cluster="other") == "wrong-cluster"


def test_not_for_me() -> None:
    assert reason(sealer().seal("gamma", "ping", {})) == "not-for-me"


def test_own_frame_reflected_back_is_a_replay() -> None:
    assert reason(sealer(sender="beta").seal("*", "ping", {})) == "replay"


def test_header_checks() -> None:
    frame = sealer().seal("beta", "ping", {})
    assert reason(b"") == "malformed"
    assert reason(frame[:HEADER_SIZE - 1]) == "malformed"
    assert reason(b"XX" + frame[2:]) == "malformed"
    assert reason(frame[:2] + b"\x02" + frame[3:]) == "version"
    assert reason(frame[:4] + struct.pack(">I", MAX_FRAME + 1) + frame[8:]) == "oversize"
    assert reason(frame[:-1]) == "malformed"
    assert reason(frame + b"\x00") == "malformed"


def test_mac_is_checked_before_the_body_is_parsed() -> None:
    garbage = b"TU\x01\x00" + struct.pack(">I", 3) + b"{{{" + bytes(MAC_SIZE)
    assert reason(garbage) == "bad-mac"


def test_reserved_flags_must_be_zero() -> None:
    assert reason(forge(valid_fields(), flags=1)) == "malformed"


@pytest.mark.parametrize("body", [
    b"\xff\xfe", b"not json", b"[1, 2]", b"\xef\xbb\xbf{}", b"[" * 100_000,
    b'{"seq": NaN}', b'{"a": 1, "a": 2}',
])
def test_bodies_that_are_not_an_object(body: bytes) -> None:
    assert reason(forge(body)) == "malformed"


@pytest.mark.parametrize("changes", [
    {"cluster": 5}, {"sender": ""}, {"sender": "*"}, {"recipient": None}, {"kind": ""},
    {"seq": 0}, {"seq": True}, {"seq": 1.0}, {"seq": "1"}, {"seq": MAX_SEQ + 1},
    {"incarnation": -1}, {"incarnation": False}, {"payload": []}, {"payload": None},
])
def test_bad_fields_are_malformed(changes: dict[str, Any]) -> None:
    assert reason(forge(valid_fields(**changes))) == "malformed"


def test_missing_field_is_malformed() -> None:
    fields = valid_fields()
    del fields["kind"]
    assert reason(forge(fields)) == "malformed"


def test_unknown_fields_are_ignored() -> None:
    env = open_frame(KEY, forge(valid_fields(future="x")), "demo", "beta")
    assert env.kind == "ping"


def test_verify_checks_structure_and_mac() -> None:
    frame = sealer().seal("beta", "ping", {})
    assert verify(KEY, frame)
    assert not verify(OTHER_KEY, frame)
    assert not verify(KEY, frame[:-1])
    assert not verify(KEY, b"XX" + frame[2:])
    assert not verify(KEY, b"")


# --- properties -------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_frame_rejected(data: bytes) -> None:
    reason(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_behind_a_plausible_header(tail: bytes) -> None:
    reason(b"TU\x01\x00" + struct.pack(">I", max(0, len(tail) - MAC_SIZE)) + tail)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=5)
FIELD_NAMES = st.sampled_from(sorted(valid_fields()))


@settings(deadline=None)
@given(FIELD_NAMES, JSON_VALUES, st.booleans())
def test_signed_garbage_only_ever_raises_frame_rejected(name: str, value: Any,
                                                        drop: bool) -> None:
    # Behind a valid MAC (a buggy or hostile cluster member): any value in any field.
    fields = valid_fields(**{name: value})
    if drop:
        del fields[name]
    try:
        open_frame(KEY, forge(fields), "demo", "beta")
    except FrameRejected as rejected:
        assert rejected.reason in REASONS


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_signed_binary_only_ever_raises_frame_rejected(body: bytes) -> None:
    assert reason(forge(body)) in {"malformed", "wrong-cluster", "not-for-me", "replay"}


def _expected_reason(bit: int) -> set[str]:
    byte = bit // 8
    if byte < 2:
        return {"malformed"}
    if byte == 2:
        return {"version"}
    if 4 <= byte < 8:
        return {"oversize", "malformed"}
    return {"bad-mac"}  # flags, body and MAC are all under the MAC


@settings(deadline=None)
@given(st.data())
def test_any_single_bit_flip_is_rejected(data: st.DataObject) -> None:
    payload = data.draw(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
    frame = bytearray(sealer().seal("beta", "status", payload))
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    assert reason(bytes(frame)) in _expected_reason(bit)


def test_every_single_bit_flip_of_one_frame_is_rejected() -> None:
    frame = sealer().seal("beta", "ping", {"n": 1})
    for bit in range(len(frame) * 8):
        flipped = bytearray(frame)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert reason(bytes(flipped)) in _expected_reason(bit), bit


# --- key derivation and the vectors published in docs/protocol.md ---------------------

def test_derive_key_matches_rfc5869_test_case_3() -> None:
    okm = ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
           "9d201395faa4b61a96c8")
    assert derive_key(bytes([0x0B] * 22), "", 42).hex() == okm


def test_derive_key_separates_purposes() -> None:
    assert derive_key(b"token", "join mac") != derive_key(b"token", "join secret")
    assert len(derive_key(b"token", "join mac")) == 32
    with pytest.raises(ValueError):
        derive_key(b"token", "x", 0)


VECTOR_HEADER = "54 55 01 00 00 00 00 79"
VECTOR_BODY = ('{"cluster":"demo","incarnation":7,"kind":"heartbeat","payload":{"load":0.25},'
               '"recipient":"beta","sender":"alpha","seq":1}')
VECTOR_MAC = "357f4b2d033c7bbeb17463ab76ad719b1e85fa0dfab5b92ff9fd2b520e952528"
VECTOR_JOIN_KEY = "0effc37d483aa08e4e8cca5851cbddd8c92e0808de06eb3ff0b33c8da401ccca"


def test_frame_vector() -> None:
    frame = sealer().seal("beta", "heartbeat", {"load": 0.25})
    assert frame[:HEADER_SIZE].hex(" ") == VECTOR_HEADER
    assert frame[HEADER_SIZE:-MAC_SIZE].decode() == VECTOR_BODY
    assert frame[-MAC_SIZE:].hex() == VECTOR_MAC
    assert derive_key(b"example join token", "join mac").hex() == VECTOR_JOIN_KEY


def test_docs_publish_the_same_vectors() -> None:
    text = DOC.read_text()
    for vector in (VECTOR_HEADER, VECTOR_BODY, VECTOR_MAC, VECTOR_JOIN_KEY, KEY.hex()):
        assert vector in text
