"""Frames: seal/open round trip, encryption, authentication of every byte, the rejection
reasons, and the vectors published in docs/protocol.md."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.lcm import frame
from tutela.lcm.frame import (
    HEADER_SIZE,
    MAX_FRAME,
    REASONS,
    ROUTE,
    TAG_SIZE,
    Envelope,
    FrameRejected,
    Opener,
    PayloadEncoder,
    Sealer,
    derive_key,
    encode_payload,
    frame_key,
    length_prefixed,
    nonce_of,
    open_frame,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SALT = bytes(range(8))
DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def sealer(sender: str = "alpha", incarnation: int = 7, key: bytes = KEY) -> Sealer:
    return Sealer(key, "demo", sender, incarnation, salt=SALT)


def reason(data: bytes, key: bytes = KEY, cluster: str = "demo", me: str = "beta") -> str:
    with pytest.raises(FrameRejected) as caught:
        open_frame(key, data, cluster, me)
    found: str = caught.value.reason
    assert found in REASONS
    return found


def forge(body: dict[str, Any] | bytes, key: bytes = KEY, sender: str = "alpha",
          seq: int = 1, version: int = 2, kind: int = 0) -> bytes:
    """A correctly encrypted frame around any body, to reach the checks behind the tag."""
    plain = body if isinstance(body, bytes) else json.dumps(body).encode()
    route = ROUTE.pack(7, SALT, seq) + length_prefixed(sender.encode(), b"demo")
    clear = b"TU" + struct.pack(">BBI", version, kind, len(route) + len(plain)) + route
    aead = ChaCha20Poly1305(frame_key(key, "demo", sender, 7, SALT))
    return clear + aead.encrypt(nonce_of(seq), plain, clear)


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"recipient": "beta", "kind": "ping", "payload": {}}
    body.update(changes)
    return body


# --- round trip and sealing -------------------------------------------------------------

def test_round_trip() -> None:
    payload = {"hierarchies": ["app"], "load": 0.5, "note": "ünïcödé", "nested": {"a": [1]}}
    env = open_frame(KEY, sealer().seal("beta", "status", payload), "demo", "beta")
    assert env == Envelope("demo", "alpha", "beta", 7, 1, "status", payload)


def test_payload_is_encrypted() -> None:
    secret = "s3cret-password-value"
    frame = Sealer(KEY, "demo", "alpha", 7).seal("beta", "config.put", {"env": secret})
    assert secret.encode() not in frame
    assert b"config.put" not in frame and b"beta" not in frame


def test_every_sealer_has_its_own_key() -> None:
    # Two runs with the same incarnation (a state directory restored from a backup) still
    # never encrypt under the same key and nonce: their salts differ.
    one, two = Sealer(KEY, "demo", "alpha", 7), Sealer(KEY, "demo", "alpha", 7)
    a, b = one.seal("beta", "ping", {"x": 1}), two.seal("beta", "ping", {"x": 1})
    assert one.salt != two.salt and a[HEADER_SIZE + 16:] != b[HEADER_SIZE + 16:]


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


def test_frame_at_the_limit_passes() -> None:
    empty = len(sealer().seal("beta", "big", {"blob": ""})) - HEADER_SIZE - TAG_SIZE
    frame = sealer().seal("beta", "big", {"blob": "x" * (MAX_FRAME - empty)})
    assert len(frame) == HEADER_SIZE + MAX_FRAME + TAG_SIZE
    assert open_frame(KEY, frame, "demo", "beta").kind == "big"


@pytest.mark.parametrize(("args", "message"), [
    ((b"short", "demo", "alpha", 1), "at least"),
    ((KEY, "demo", "*", 1), "sender"),
    ((KEY, "demo", "", 1), "sender"),
    ((KEY, "demo", "alpha", -1), "incarnation"),
    ((KEY, "demo", "a" * 256, 1), "longer than 255"),
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
    assert reason(frame[:2] + b"\x01" + frame[3:]) == "version"
    assert reason(frame[:4] + struct.pack(">I", MAX_FRAME + 1) + frame[8:]) == "oversize"
    assert reason(frame[:-1]) == "malformed"
    assert reason(frame + b"\x00") == "malformed"


def test_handshake_types_are_no_sealed_frame() -> None:
    assert reason(forge(valid_body(), kind=1)) == "malformed"


def test_routing_fields_are_authenticated() -> None:
    frame = sealer().seal("beta", "ping", {})
    for offset in range(HEADER_SIZE, HEADER_SIZE + ROUTE.size):  # incarnation, salt, seq
        changed = bytearray(frame)
        changed[offset] ^= 1
        assert reason(bytes(changed)) in {"bad-mac", "malformed"}, offset
    renamed = frame.replace(b"\x05alpha", b"\x05alphb", 1)
    assert reason(renamed) == "bad-mac"


def test_tag_is_checked_before_the_body_is_parsed() -> None:
    route = ROUTE.pack(7, SALT, 1) + length_prefixed(b"alpha", b"demo")
    garbage = b"TU\x02\x00" + struct.pack(">I", len(route) + 3) + route + b"{{{" + bytes(16)
    assert reason(garbage) == "bad-mac"


@pytest.mark.parametrize("body", [
    b"\xff\xfe", b"not json", b"[1, 2]", b"\xef\xbb\xbf{}", b"[" * 100_000,
    b'{"payload": NaN}', b'{"a": 1, "a": 2}',
])
def test_bodies_that_are_not_an_object(body: bytes) -> None:
    assert reason(forge(body)) == "malformed"


@pytest.mark.parametrize("changes", [
    {"recipient": None}, {"recipient": ""}, {"kind": ""}, {"kind": 5}, {"payload": []},
    {"payload": None},
])
def test_bad_fields_are_malformed(changes: dict[str, Any]) -> None:
    assert reason(forge(valid_body(**changes))) == "malformed"


def test_missing_field_is_malformed() -> None:
    body = valid_body()
    del body["kind"]
    assert reason(forge(body)) == "malformed"


def test_unknown_fields_are_ignored() -> None:
    assert open_frame(KEY, forge(valid_body(future="x")), "demo", "beta").kind == "ping"


@pytest.mark.parametrize("sender", ["*", ""])
def test_sender_must_be_a_node_name(sender: str) -> None:
    assert reason(forge(valid_body(), sender=sender)) == "malformed"


def test_check_is_the_tag_only() -> None:
    frame = sealer().seal("beta", "ping", {})
    opener = Opener(KEY, "demo", "beta")
    assert opener.check(frame)
    assert not Opener(OTHER_KEY, "demo", "beta").check(frame)
    assert not opener.check(frame[:-1])
    assert not opener.check(b"XX" + frame[2:])
    assert not opener.check(b"")


def test_forged_frames_do_not_fill_the_key_cache() -> None:
    opener = Opener(KEY, "demo", "beta")
    for i in range(Opener.CACHED + 10):
        forged = Sealer(OTHER_KEY, "demo", f"n{i}", 1).seal("beta", "ping", {})
        assert not opener.check(forged)
    assert not opener._ciphers
    assert opener.open(sealer().seal("beta", "ping", {})).seq == 1
    assert len(opener._ciphers) == 1


# --- properties -------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_frame_rejected(data: bytes) -> None:
    reason(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_behind_a_plausible_header(tail: bytes) -> None:
    reason(b"TU\x02\x00" + struct.pack(">I", max(0, len(tail) - TAG_SIZE)) + tail)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=5)
FIELD_NAMES = st.sampled_from(sorted(valid_body()))


@settings(deadline=None)
@given(FIELD_NAMES, JSON_VALUES, st.booleans())
def test_authentic_garbage_only_ever_raises_frame_rejected(name: str, value: Any,
                                                           drop: bool) -> None:
    # Behind a valid tag (a buggy or hostile cluster member): any value in any field.
    body = valid_body(**{name: value})
    if drop:
        del body[name]
    try:
        open_frame(KEY, forge(body), "demo", "beta")
    except FrameRejected as rejected:
        assert rejected.reason in REASONS


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_authentic_binary_only_ever_raises_frame_rejected(body: bytes) -> None:
    assert reason(forge(body)) in {"malformed", "not-for-me"}


def _expected_reason(bit: int) -> set[str]:
    byte = bit // 8
    if byte < 2:
        return {"malformed"}
    if byte == 2:
        return {"version"}
    if byte == 3:
        return {"malformed"}  # the type: a handshake message is no sealed frame
    if 4 <= byte < 8:
        return {"oversize", "malformed"}
    # Routing fields, ciphertext and tag are all authenticated; a changed name length or
    # cluster name may be caught before the tag is.
    return {"bad-mac", "malformed", "wrong-cluster"}


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


VECTOR_SALT = "0001020304050607"
VECTOR_HEADER = "54 55 02 00 00 00 00 62"
VECTOR_ROUTE = ("00 00 00 00 00 00 00 07 00 01 02 03 04 05 06 07 00 00 00 00 00 00 00 01 "
                "05 61 6c 70 68 61 04 64 65 6d 6f")
VECTOR_BODY = '{"kind":"heartbeat","payload":{"load":0.25},"recipient":"beta"}'
VECTOR_FRAME_KEY = "185f4f3a0e1653b99b7c7b5788f5b68d8859a4a15590f94524a5d48e9595e2c6"
VECTOR_CIPHERTEXT = ("b47331b46c6f4ce67348d101f48380b8c77c0d60db9ceaa3c2f483a63d46f9c4cf7ee03b"
                     "0093692a84c3c9677da105b51ab2352a696076e5190929cd8fbaa0")
VECTOR_TAG = "13f3630cab18295d3be1da906c4cce4f"
VECTOR_JOIN_KEY = "0effc37d483aa08e4e8cca5851cbddd8c92e0808de06eb3ff0b33c8da401ccca"


def test_frame_vector() -> None:
    frame = sealer().seal("beta", "heartbeat", {"load": 0.25})
    route_end = HEADER_SIZE + len(bytes.fromhex(VECTOR_ROUTE.replace(" ", "")))
    assert frame[:HEADER_SIZE].hex(" ") == VECTOR_HEADER
    assert frame[HEADER_SIZE:route_end].hex(" ") == VECTOR_ROUTE
    assert frame[route_end:-TAG_SIZE].hex() == VECTOR_CIPHERTEXT
    assert frame[-TAG_SIZE:].hex() == VECTOR_TAG
    assert frame_key(KEY, "demo", "alpha", 7, SALT).hex() == VECTOR_FRAME_KEY
    assert SALT.hex() == VECTOR_SALT
    plain = ChaCha20Poly1305(bytes.fromhex(VECTOR_FRAME_KEY)).decrypt(
        nonce_of(1), frame[route_end:], frame[:route_end])
    assert plain.decode() == VECTOR_BODY
    assert derive_key(b"example join token", "join mac").hex() == VECTOR_JOIN_KEY


def test_docs_publish_the_same_vectors() -> None:
    text = DOC.read_text()
    for vector in (VECTOR_HEADER, VECTOR_ROUTE, VECTOR_BODY, VECTOR_FRAME_KEY,
                   VECTOR_CIPHERTEXT, VECTOR_TAG, VECTOR_JOIN_KEY, VECTOR_SALT, KEY.hex()):
        assert vector in text, vector


# A heartbeat's field values: one JSON type per field, as its builder writes them.
FIELD_VALUES = st.recursive(st.none() | st.integers() | st.text(max_size=5),
                            lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                            max_leaves=8)


@given(st.lists(st.dictionaries(st.sampled_from(["states", "ran", "holds", "é\u2028\""]),
                                FIELD_VALUES), min_size=1, max_size=6))
def test_the_payload_encoder_writes_what_encode_payload_writes(
        payloads: list[dict[str, Any]]) -> None:
    encoder = PayloadEncoder()
    for payload in payloads:
        assert encoder.encode(payload) == encode_payload(payload)


def test_the_payload_encoder_does_not_encode_the_last_two_payloads_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    states = {f"r{n}": "ISP" for n in range(500)}
    bulky, light, changed = {"holds": ["a"], "states": states}, {"holds": ["a"]}, {"holds": []}
    encoder, encoded = PayloadEncoder(), []
    monkeypatch.setattr(frame, "encode_payload", lambda payload: encoded.append(payload) or
                        encode_payload(payload))
    for payload in (bulky, light, dict(bulky), dict(light), changed, light, bulky):
        assert encoder.encode(payload) == encode_payload(payload)
    assert encoded == [bulky, light, changed, bulky]  # light still one of the last two


def test_the_payload_encoder_refuses_what_is_not_json() -> None:
    encoder = PayloadEncoder()
    with pytest.raises(ValueError):
        encoder.encode({"left": float("nan")})
    with pytest.raises(TypeError):
        encoder.encode({"left": object()})
