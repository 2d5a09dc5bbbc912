"""Cluster frames: seal an envelope into encrypted, authenticated bytes; open received bytes.

Sans-IO: bytes in, bytes or an Envelope out. The wire format is described in docs/protocol.md.
Every frame is encrypted with ChaCha20-Poly1305 under a key derived from the cluster key for
one sender run (cluster, sender, incarnation, a random salt); the nonce is the sender's seq.
"""

from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROTOCOL_VERSION: Final = 2
MAX_FRAME: Final = 1 << 20
"""Largest value of the header's length field: the routing fields plus the encrypted body
(the JSON part, whose ciphertext has its length)."""

MAGIC: Final = b"TU"
HEADER: Final = struct.Struct(">2sBBI")  # magic, version, type, length
HEADER_SIZE: Final = HEADER.size  # 8
TAG_SIZE: Final = 16
"""The trailer after the length's bytes: the Poly1305 tag, or a handshake proof."""
ROUTE: Final = struct.Struct(">Q8sQ")  # incarnation, salt, seq
SALT_SIZE: Final = 8
MAX_SEQ: Final = (1 << 63) - 1
"""Bound for seq and incarnation: they fit a signed 64-bit integer in any peer."""
MIN_KEY_SIZE: Final = 16
BROADCAST: Final = "*"
MAX_NAME: Final = 255
"""Longest sender or cluster name in bytes (UTF-8): its length is one byte on the wire."""

SEALED: Final = 0
"""The header's type byte: a sealed frame; 1-3 are the handshake's (lcm/handshake.py)."""

Reason = Literal["malformed", "version", "oversize", "bad-mac", "wrong-cluster", "not-for-me",
                 "replay", "stale-incarnation", "unauthenticated", "handshake",
                 "handshake-timeout", "too-many-connections"]
REASONS: Final[tuple[Reason, ...]] = ("malformed", "version", "oversize", "bad-mac",
                                      "wrong-cluster", "not-for-me", "replay",
                                      "stale-incarnation", "unauthenticated", "handshake",
                                      "handshake-timeout", "too-many-connections")


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


Body = tuple[str, str, dict[str, Any]]
"""A frame's decoded body: recipient, kind, payload."""


class Route(NamedTuple):
    """The clear routing fields of a sealed frame: authenticated, not encrypted. (A tuple:
    read from every frame received, and a tuple is made in a fraction of a frozen
    dataclass's time.)"""

    incarnation: int
    salt: bytes
    seq: int
    sender: str
    cluster: str
    end: int
    """Offset of the ciphertext in the frame."""


def derive_key(secret: bytes, purpose: str | bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) of `secret`, with no salt and `purpose` as the info string.

    Distinct purposes give independent keys from one secret, e.g. a join key from a join token.
    """
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 output length must be 1..8160 bytes")
    info = purpose.encode() if isinstance(purpose, str) else purpose
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def length_prefixed(*parts: bytes) -> bytes:
    """Each part with its one-byte length first: no two lists of parts give the same bytes."""
    out = bytearray()
    for part in parts:
        if len(part) > MAX_NAME:
            raise ValueError(f"a name of {len(part)} bytes is longer than {MAX_NAME}")
        out.append(len(part))
        out += part
    return bytes(out)


def frame_key(cluster_key: bytes, cluster: str, sender: str, incarnation: int,
              salt: bytes) -> bytes:
    """The key of one sender run: every frame it seals, whoever receives it."""
    info = (b"tutela/2 frame key" + length_prefixed(cluster.encode(), sender.encode())
            + struct.pack(">Q", incarnation) + salt)
    return derive_key(cluster_key, info)


def nonce_of(seq: int) -> bytes:
    """The 96-bit AEAD nonce: four zero bytes, then the seq (big-endian)."""
    return struct.pack(">IQ", 0, seq)


class Sealer:
    """Seals outgoing envelopes for one sender; one Sealer per node, shared by all its paths.

    The seq is global to the sender (not per path or peer), so a receiver's replay window
    works whatever path a frame took. It is also the AEAD nonce: unique because the key is
    unique to this Sealer (its random salt) and the seq never repeats within it.
    """

    def __init__(self, key: bytes, cluster: str, sender: str, incarnation: int,
                 salt: bytes | None = None) -> None:
        if len(key) < MIN_KEY_SIZE:
            raise ValueError(f"cluster key must be at least {MIN_KEY_SIZE} bytes")
        if not sender or sender == BROADCAST:
            raise ValueError("sender must be a node name, not empty or '*'")
        if not 0 <= incarnation <= MAX_SEQ:
            raise ValueError("incarnation out of range")
        self.salt = os.urandom(SALT_SIZE) if salt is None else salt
        if len(self.salt) != SALT_SIZE:
            raise ValueError(f"salt must be {SALT_SIZE} bytes")
        self.names = length_prefixed(sender.encode(), cluster.encode())
        self._aead = ChaCha20Poly1305(frame_key(key, cluster, sender, incarnation, self.salt))
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
        body = _encode_body(recipient, kind, payload_json)
        seq = self.seq + 1
        route = ROUTE.pack(self.incarnation, self.salt, seq) + self.names
        length = len(route) + len(body)
        if length > MAX_FRAME:
            raise ValueError(f"frame of {length} bytes exceeds {MAX_FRAME}")
        self.seq = seq
        clear = HEADER.pack(MAGIC, PROTOCOL_VERSION, SEALED, length) + route
        return clear + self._aead.encrypt(nonce_of(seq), body, clear)


def encode_payload(payload: dict[str, Any]) -> str:
    """A payload as the JSON text frames carry; TypeError/ValueError if it is not JSON."""
    return _dumps(payload)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


class PayloadEncoder:
    """Encodes payloads as `encode_payload` does, but a payload equal to one of the last
    KEPT encoded is not encoded again: a settled node's heartbeats repeat themselves, light
    and bulky in turn (encoding the 500 states of a bulky one takes 150 us or more). A
    payload must not change after it was encoded (it is kept to compare). Values equal
    across JSON types (1, 1.0, True) would reuse the first one's text: a heartbeat's fields
    keep their types."""

    KEPT: Final = 2

    def __init__(self) -> None:
        self._known: list[tuple[dict[str, Any], str]] = []
        """The last payloads encoded and their text, the newest first."""

    def encode(self, payload: dict[str, Any]) -> str:
        """`encode_payload(payload)`; TypeError/ValueError if it is not JSON."""
        for known, text in self._known:
            if known == payload:
                return text
        text = encode_payload(payload)
        self._known = [(payload, text), *self._known[:self.KEPT - 1]]
        return text


def _encode_body(recipient: str, kind: str, payload_json: str) -> bytes:
    # The body's keys in sorted order around the pre-encoded payload: the same bytes as
    # dumping the whole object with sort_keys.
    return (f'{{"kind":{_dumps(kind)},"payload":{payload_json},'
            f'"recipient":{_dumps(recipient)}}}').encode()


def split_header(data: bytes) -> tuple[int, int]:
    """(type, length) of exactly one frame in `data`; FrameRejected otherwise.

    Only locates the trailer: nothing in the header is trusted before it is authenticated.
    """
    if len(data) < HEADER_SIZE:
        raise FrameRejected("malformed", "shorter than a header")
    magic, version, kind, length = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameRejected("malformed", "bad magic")
    if version != PROTOCOL_VERSION:  # another version may lay its frames out differently
        raise FrameRejected("version", str(version))
    if length > MAX_FRAME:
        raise FrameRejected("oversize", str(length))
    if len(data) != HEADER_SIZE + length + TAG_SIZE:
        raise FrameRejected("malformed", "length does not match the header")
    return kind, length


def frame_type(data: bytes) -> int:
    """The header's type byte of a well-formed frame (SEALED or a handshake message)."""
    return split_header(data)[0]


def read_route(data: bytes) -> Route:
    """The clear routing fields of a sealed frame (not yet authenticated)."""
    kind, length = split_header(data)
    if kind != SEALED:
        raise FrameRejected("malformed", f"frame type {kind} where a sealed frame belongs")
    if length < ROUTE.size + 2:
        raise FrameRejected("malformed", "too short for the routing fields")
    incarnation, salt, seq = ROUTE.unpack_from(data, HEADER_SIZE)
    # The two names, each after its one-byte length (read on every frame: unrolled).
    stop, sender_at = HEADER_SIZE + length, HEADER_SIZE + ROUTE.size + 1
    cluster_at = sender_at + data[sender_at - 1] + 1
    end = cluster_at if cluster_at - 1 > stop else cluster_at + data[cluster_at - 1]
    if end > stop:
        raise FrameRejected("malformed", "names run past the frame")
    try:
        sender, cluster = data[sender_at:cluster_at - 1].decode(), data[cluster_at:end].decode()
    except UnicodeDecodeError:
        raise FrameRejected("malformed", "names are not UTF-8") from None
    if not sender or sender == BROADCAST:
        raise FrameRejected("malformed", "sender must be a node name")
    if not (incarnation <= MAX_SEQ and 1 <= seq <= MAX_SEQ):
        raise FrameRejected("malformed", "incarnation or seq out of range")
    return Route(incarnation, salt, seq, sender, cluster, end)


class Opener:
    """Opens the frames sent to one node of one cluster; keeps the keys of recent sender runs.

    A key is derived (HKDF) the first time a sender run is seen and kept once a frame opened
    with it: forged frames cost a derivation each but never fill the cache.

    During a key rotation it holds two cluster keys (the ring's, lcm/keyring.py): a sender
    run's first frame is tried under each, and the key that opened it is kept for the run, so
    later frames cost one decryption as before. A forged frame costs two derivations.
    """

    CACHED: Final = 256
    """Sender runs whose keys are kept: every node and witness of a large cluster, twice."""

    def __init__(self, key: bytes | tuple[bytes, ...], cluster: str, me: str) -> None:
        self.keys = (key,) if isinstance(key, bytes) else key
        self.cluster = cluster
        self.me = me
        self._ciphers: OrderedDict[tuple[str, int, bytes],
                                   tuple[ChaCha20Poly1305, bytes]] = OrderedDict()

    def set_keys(self, keys: tuple[bytes, ...]) -> None:
        """Accept frames under `keys` (one or two) from now on; runs opened under a key that
        is no longer among them are forgotten, so their next frame is refused."""
        if not 1 <= len(keys) <= 2:
            raise ValueError("an opener takes one or two cluster keys")
        self.keys = keys
        for run in [r for r, (_, k) in self._ciphers.items() if k not in keys]:
            del self._ciphers[run]

    def open(self, data: bytes) -> Envelope:
        """Check one received frame and return its envelope; raises only FrameRejected.

        The clear header and routing fields are read only to find the key and the nonce; the
        AEAD tag covers them, and no byte of the body is parsed before the tag is verified.
        Replay protection is not done here but by ReplayGuard on the envelope.
        """
        route = read_route(data)
        return self.envelope(route, decode_body(self.authenticate(route, data)))

    def authenticate(self, route: Route, data: bytes) -> bytes:
        """The decrypted body of the frame `data` whose route is `route`, once its tag is
        verified; FrameRejected otherwise. `open` in two steps, for a caller that knows what
        a body it has seen before decodes to (Messenger: a heartbeat that repeats the last)."""
        if route.cluster != self.cluster:
            raise FrameRejected("wrong-cluster", route.cluster)
        return self._decrypt(route, data)

    def envelope(self, route: Route, body: Body) -> Envelope:
        """The envelope of an authenticated frame from its route and its decoded body,
        once the body names this node (or every node) and the frame is not our own."""
        recipient, kind, payload = body
        if recipient not in (self.me, BROADCAST):
            raise FrameRejected("not-for-me", recipient)
        if route.sender == self.me:
            # Our own frame sent back to us (a reflection); nobody else holds our name.
            raise FrameRejected("replay", "frame claims to come from this node")
        return Envelope(route.cluster, route.sender, recipient, route.incarnation, route.seq,
                        kind, payload)

    def check(self, data: bytes) -> bool:
        """Whether `data` is one frame that this cluster's key authenticates (the serial
        splitter's check: no JSON parsing)."""
        try:
            route = read_route(data)
            if route.cluster != self.cluster:
                return False
            self._decrypt(route, data)
        except FrameRejected:
            return False
        return True

    def _decrypt(self, route: Route, data: bytes) -> bytes:
        run = (route.sender, route.incarnation, route.salt)
        known = self._ciphers.get(run)
        if known is not None:
            try:
                body = known[0].decrypt(nonce_of(route.seq), data[route.end:], data[:route.end])
            except InvalidTag:
                raise FrameRejected("bad-mac") from None
            self._ciphers.move_to_end(run)
            return body
        for key in self.keys:
            cipher = ChaCha20Poly1305(frame_key(key, route.cluster, route.sender,
                                                route.incarnation, route.salt))
            try:
                body = cipher.decrypt(nonce_of(route.seq), data[route.end:], data[:route.end])
            except InvalidTag:
                continue
            self._ciphers[run] = (cipher, key)
            if len(self._ciphers) > self.CACHED:
                self._ciphers.popitem(last=False)
            return body
        raise FrameRejected("bad-mac")


def open_frame(key: bytes, data: bytes, cluster: str, me: str) -> Envelope:
    """Open one frame with a throw-away Opener (one-off exchanges: joins, enrolments)."""
    return Opener(key, cluster, me).open(data)


def decode_body(body: bytes) -> Body:
    """An authenticated frame's decrypted body decoded; FrameRejected("malformed") if it is
    not one."""
    try:
        fields = _DECODER.decode(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise FrameRejected("malformed", f"body is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise FrameRejected("malformed", "body is not a JSON object")
    for name in ("recipient", "kind"):
        if not isinstance(fields.get(name), str) or not fields[name]:
            raise FrameRejected("malformed", f"{name} must be a non-empty string")
    if not isinstance(fields.get("payload"), dict):
        raise FrameRejected("malformed", "payload must be a JSON object")
    # Unknown fields are ignored, so a later revision of version 2 may add some.
    return fields["recipient"], fields["kind"], fields["payload"]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins, so a compatible peer could read another
    # message than we do: refuse duplicates instead.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(text: bytes) -> Any:
    """Strict JSON (no duplicate keys, no NaN) as frames use it; ValueError otherwise."""
    try:
        return _DECODER.decode(text.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


# One encoder and one decoder for every frame: json.dumps/loads with options build a new
# one per call. Sorted keys make frames reproducible (test vectors); receivers must not rely
# on it.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=True,
                                   ensure_ascii=False, allow_nan=False)
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
