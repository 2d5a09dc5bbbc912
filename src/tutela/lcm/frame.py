"""Cluster frames: seal an envelope into authenticated bytes, open and check received bytes.

Sans-IO: bytes in, bytes or an Envelope out. The wire format is described in docs/protocol.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any, Final, Literal

PROTOCOL_VERSION: Final = 1
MAX_FRAME: Final = 1 << 20
"""Largest body (the JSON part) in bytes."""

MAGIC: Final = b"TU"
HEADER: Final = struct.Struct(">2sBBI")  # magic, version, flags, body length
HEADER_SIZE: Final = HEADER.size  # 8
MAC_SIZE: Final = 32  # HMAC-SHA256
MAX_SEQ: Final = (1 << 63) - 1
"""Bound for seq and incarnation: they fit a signed 64-bit integer in any peer."""
MIN_KEY_SIZE: Final = 16
BROADCAST: Final = "*"

Reason = Literal["malformed", "version", "oversize", "bad-mac", "wrong-cluster", "not-for-me",
                 "replay", "stale-incarnation"]
REASONS: Final[tuple[Reason, ...]] = ("malformed", "version", "oversize", "bad-mac",
                                      "wrong-cluster", "not-for-me", "replay",
                                      "stale-incarnation")


class FrameRejected(Exception):
    """A received frame was dropped; `reason` names the counter it goes to.

    The cores raise only the reasons in REASONS; callers may add their own (a str).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Envelope:
    cluster: str
    sender: str
    recipient: str
    """A node name, or "*" for every node."""
    incarnation: int
    seq: int
    kind: str
    payload: dict[str, Any]


def sign(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of `data` under `key` (32 bytes)."""
    return hmac.new(key, data, hashlib.sha256).digest()


def derive_key(secret: bytes, purpose: str, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) of `secret`, with no salt and `purpose` as the info string.

    Distinct purposes give independent keys from one secret, e.g. a join key from a join token.
    """
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 output length must be 1..8160 bytes")
    prk = hmac.new(bytes(32), secret, hashlib.sha256).digest()  # extract; no salt = zeros
    info = purpose.encode()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:  # expand: T(i) = HMAC(PRK, T(i-1) | info | i)
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


class Sealer:
    """Seals outgoing envelopes for one sender; one Sealer per node, shared by all its paths.

    The seq is global to the sender (not per path or peer), so a receiver's replay window
    works whatever path a frame took.
    """

    def __init__(self, key: bytes, cluster: str, sender: str, incarnation: int) -> None:
        if len(key) < MIN_KEY_SIZE:
            raise ValueError(f"cluster key must be at least {MIN_KEY_SIZE} bytes")
        if not sender or sender == BROADCAST:
            raise ValueError("sender must be a node name, not empty or '*'")
        if not 0 <= incarnation <= MAX_SEQ:
            raise ValueError("incarnation out of range")
        self._key = key
        self.cluster = cluster
        self.sender = sender
        self.incarnation = incarnation
        self.seq = 0
        """The seq of the last sealed frame (0: none yet)."""

    def seal(self, recipient: str, kind: str, payload: dict[str, Any]) -> bytes:
        """The frame for one envelope, with the next seq.

        Raises ValueError (too large, empty names) or TypeError (payload not JSON); the seq is
        only used up by a frame that was sealed.
        """
        return self.seal_encoded(recipient, kind, encode_payload(payload))

    def seal_encoded(self, recipient: str, kind: str, payload_json: str) -> bytes:
        """`seal` for a payload already encoded by `encode_payload`: one payload sent to
        many peers (a heartbeat) is encoded once."""
        if not recipient or not kind:
            raise ValueError("recipient and kind must be non-empty")
        if self.seq >= MAX_SEQ:
            raise OverflowError("seq exhausted: restart with a higher incarnation")
        body = _encode_body(self.cluster, self.sender, recipient, self.incarnation,
                            self.seq + 1, kind, payload_json)
        if len(body) > MAX_FRAME:
            raise ValueError(f"frame body of {len(body)} bytes exceeds {MAX_FRAME}")
        self.seq += 1
        unsigned = HEADER.pack(MAGIC, PROTOCOL_VERSION, 0, len(body)) + body
        return unsigned + sign(self._key, unsigned)


def encode_payload(payload: dict[str, Any]) -> str:
    """A payload as the JSON text frames carry; TypeError/ValueError if it is not JSON."""
    return _dumps(payload)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _encode_body(cluster: str, sender: str, recipient: str, incarnation: int, seq: int,
                 kind: str, payload_json: str) -> bytes:
    # The envelope's keys in sorted order around the pre-encoded payload: the same bytes
    # as dumping the whole envelope with sort_keys.
    head = _dumps({"cluster": cluster, "incarnation": incarnation, "kind": kind})
    tail = _dumps({"recipient": recipient, "sender": sender, "seq": seq})
    return f'{head[:-1]},"payload":{payload_json},{tail[1:]}'.encode()


def verify(key: bytes, data: bytes) -> bool:
    """Whether `data` is exactly one frame whose MAC is right under `key` (any version).

    For FrameSplitter's `check`: cheap, no JSON parsing.
    """
    if len(data) < HEADER_SIZE + MAC_SIZE or data[:2] != MAGIC:
        return False
    length = HEADER.unpack_from(data)[3]
    if len(data) != HEADER_SIZE + length + MAC_SIZE:
        return False
    return hmac.compare_digest(sign(key, data[:-MAC_SIZE]), data[-MAC_SIZE:])


def open_frame(key: bytes, data: bytes, cluster: str, me: str) -> Envelope:
    """Check one received frame and return its envelope; raises only FrameRejected.

    The order matters: the unauthenticated header only locates the MAC, the MAC is checked
    before any JSON is parsed, and the body's fields are trusted only after that.
    Replay protection is not done here but by ReplayGuard on the envelope.
    """
    body = _authenticated_body(key, data)
    env = _decode_body(body)
    if env.cluster != cluster:
        raise FrameRejected("wrong-cluster", env.cluster)
    if env.recipient not in (me, BROADCAST):
        raise FrameRejected("not-for-me", env.recipient)
    if env.sender == me:
        # Our own frame sent back to us (a reflection); nobody else holds our name.
        raise FrameRejected("replay", "frame claims to come from this node")
    return env


def _authenticated_body(key: bytes, data: bytes) -> bytes:
    if len(data) < HEADER_SIZE:
        raise FrameRejected("malformed", "shorter than a header")
    magic, version, flags, length = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameRejected("malformed", "bad magic")
    if version != PROTOCOL_VERSION:  # another version may place its MAC differently
        raise FrameRejected("version", str(version))
    if length > MAX_FRAME:
        raise FrameRejected("oversize", str(length))
    if len(data) != HEADER_SIZE + length + MAC_SIZE:
        raise FrameRejected("malformed", "length does not match the header")
    mac_at = HEADER_SIZE + length
    if not hmac.compare_digest(sign(key, data[:mac_at]), data[mac_at:]):
        raise FrameRejected("bad-mac")
    if flags != 0:
        raise FrameRejected("malformed", "flags are reserved and must be 0")
    return data[HEADER_SIZE:mac_at]


_NAME_FIELDS: Final = ("sender", "recipient", "kind")
_INT_FIELDS: Final = {"incarnation": 0, "seq": 1}  # field: lowest value


def _decode_body(body: bytes) -> Envelope:
    try:
        fields = _DECODER.decode(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise FrameRejected("malformed", f"body is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise FrameRejected("malformed", "body is not a JSON object")
    if not isinstance(fields.get("cluster"), str):  # "" is allowed: the join exchange uses it
        raise FrameRejected("malformed", "cluster must be a string")
    for name in _NAME_FIELDS:
        if not isinstance(fields.get(name), str) or not fields[name]:
            raise FrameRejected("malformed", f"{name} must be a non-empty string")
    for name, lowest in _INT_FIELDS.items():
        value = fields.get(name)
        if type(value) is not int or not lowest <= value <= MAX_SEQ:  # bool is not an int here
            raise FrameRejected("malformed", f"{name} must be an integer >= {lowest}")
    if not isinstance(fields.get("payload"), dict):
        raise FrameRejected("malformed", "payload must be a JSON object")
    if fields["sender"] == BROADCAST:
        raise FrameRejected("malformed", "sender may not be '*'")
    # Unknown fields are ignored, so a later revision of version 1 may add some.
    return Envelope(fields["cluster"], fields["sender"], fields["recipient"],
                    fields["incarnation"], fields["seq"], fields["kind"], fields["payload"])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins, so a compatible peer could read another
    # message than we do: refuse duplicates instead.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One encoder and one decoder for every frame: json.dumps/loads with options build a new
# one per call, which cost more than the HMAC. Sorted keys make frames reproducible (test
# vectors); receivers must not rely on it.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=True,
                                   ensure_ascii=False, allow_nan=False)
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
