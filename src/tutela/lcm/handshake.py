"""The connection handshake: both ends prove they hold the cluster key before any frame.

Sans-IO: the dialler's and the acceptor's sides are objects fed frames (bytes) that return the
frame to send next; nonces may be given (tests, vectors), else they are random.

    dialler  -> HELLO      {cluster, dialler, acceptor, nonce_d}           trailer: zeros
    acceptor -> CHALLENGE  {nonce_a}      trailer: proof("acceptor", ..., nonce_d, nonce_a)
    dialler  -> PROOF      {}             trailer: proof("dialler", ..., nonce_d, nonce_a)

proof(role) = HMAC-SHA256(K_hs, "tutela/2 " role " proof" || lp(cluster) || lp(dialler) ||
lp(acceptor) || nonce_d || nonce_a), first 16 bytes; K_hs = HKDF(cluster key, "tutela/2
handshake"). Each side MACs a nonce it did not choose, with its own role label: a proof from
one connection, or from the other role, proves nothing on another. docs/protocol.md section 3.

During a key rotation each side holds two keys (lcm/keyring.py): the acceptor proves with its
sending key, the dialler checks that proof under each key it holds and answers under the one
that matched; the acceptor checks the answer under each of its keys. `key` then names the
cluster key the connection was authenticated under.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from tutela.lcm.frame import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    TAG_SIZE,
    FrameRejected,
    decode_json,
    derive_key,
    encode_payload,
    length_prefixed,
    split_header,
)

HELLO: Final = 1
CHALLENGE: Final = 2
PROOF: Final = 3
NONCE_SIZE: Final = 32
HANDSHAKE_TIMEOUT: Final = 5.0
"""Seconds an accepted connection may take from its first byte to a verified proof."""
PRE_AUTH_BUFFER: Final = 4096
"""Most bytes an unauthenticated connection may leave waiting (a hello, a join request or
an enrolment request is a few hundred bytes)."""
_ZEROS: Final = bytes(TAG_SIZE)


@dataclass(frozen=True)
class Hello:
    cluster: str
    dialler: str
    acceptor: str
    nonce: bytes


def handshake_key(cluster_key: bytes) -> bytes:
    return derive_key(cluster_key, "tutela/2 handshake")


Keys = bytes | Sequence[bytes]
"""One cluster key, or the keys of a ring (the sending key first; at most two)."""


def _derived(keys: Keys) -> list[tuple[bytes, bytes]]:
    """(cluster key, handshake key) for each key, in order."""
    listed = [keys] if isinstance(keys, bytes) else list(keys)
    if not 1 <= len(listed) <= 2:
        raise ValueError("a handshake takes one or two cluster keys")
    return [(key, handshake_key(key)) for key in listed]


def _matching(keys: list[tuple[bytes, bytes]], role: str, hello: Hello, acceptor_nonce: bytes,
              trailer: bytes) -> tuple[bytes, bytes] | None:
    """The first key under which `trailer` is `role`'s proof; every key is tried (no early
    exit that would tell which key matched by its timing)."""
    found = None
    for pair in keys:
        if hmac.compare_digest(_proof(pair[1], role, hello, acceptor_nonce), trailer):
            found = found or pair
    return found


def _proof(key: bytes, role: str, hello: Hello, acceptor_nonce: bytes) -> bytes:
    message = (f"tutela/2 {role} proof".encode()
               + length_prefixed(hello.cluster.encode(), hello.dialler.encode(),
                                 hello.acceptor.encode())
               + hello.nonce + acceptor_nonce)
    return hmac.new(key, message, hashlib.sha256).digest()[:TAG_SIZE]


def pack(kind: int, body: dict[str, Any], trailer: bytes = _ZEROS) -> bytes:
    data = encode_payload(body).encode()
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, len(data)) + data + trailer


def unpack(data: bytes, expected: int) -> tuple[dict[str, Any], bytes]:
    """(body, trailer) of a handshake message of type `expected`; FrameRejected otherwise."""
    kind, length = split_header(data)
    if kind != expected:
        raise FrameRejected("handshake", f"message type {kind}, expected {expected}")
    try:
        body = decode_json(data[HEADER_SIZE:HEADER_SIZE + length])
    except ValueError as error:
        raise FrameRejected("malformed", f"handshake body: {error}") from None
    if not isinstance(body, dict):
        raise FrameRejected("malformed", "handshake body is not an object")
    return body, data[HEADER_SIZE + length:]


def _nonce(body: dict[str, Any]) -> bytes:
    try:
        nonce = bytes.fromhex(body["nonce"])
    except (KeyError, TypeError, ValueError):
        raise FrameRejected("malformed", "nonce must be hex") from None
    if len(nonce) != NONCE_SIZE:
        raise FrameRejected("malformed", f"nonce must be {NONCE_SIZE} bytes")
    return nonce


def read_hello(data: bytes) -> Hello:
    """The HELLO a dialler sent (nothing in it is authenticated yet)."""
    body, trailer = unpack(data, HELLO)
    cluster, dialler, acceptor = (body.get(k) for k in ("cluster", "dialler", "acceptor"))
    if not (isinstance(cluster, str) and isinstance(dialler, str) and dialler
            and isinstance(acceptor, str) and acceptor):
        raise FrameRejected("malformed", "hello needs cluster, dialler and acceptor names")
    if trailer != _ZEROS:
        raise FrameRejected("malformed", "a hello's trailer is zero")
    return Hello(cluster, dialler, acceptor, _nonce(body))


class Dialler:
    """The connecting side: HELLO, then PROOF once the acceptor proved the key."""

    def __init__(self, cluster_key: Keys, cluster: str, me: str, peer: str,
                 nonce: bytes | None = None) -> None:
        self._keys = _derived(cluster_key)
        self.key: bytes | None = None
        """The cluster key both ends proved, once the acceptor's proof checked out."""
        self.hello = Hello(cluster, me, peer, os.urandom(NONCE_SIZE) if nonce is None
                           else nonce)

    def hello_frame(self) -> bytes:
        hello = self.hello
        return pack(HELLO, {"cluster": hello.cluster, "dialler": hello.dialler,
                            "acceptor": hello.acceptor, "nonce": hello.nonce.hex()})

    def answer(self, challenge: bytes) -> bytes:
        """The PROOF for the acceptor's CHALLENGE; FrameRejected("bad-mac") when the acceptor
        does not hold the key or is not the peer named in the hello."""
        body, trailer = unpack(challenge, CHALLENGE)
        acceptor_nonce = _nonce(body)
        pair = _matching(self._keys, "acceptor", self.hello, acceptor_nonce, trailer)
        if pair is None:
            raise FrameRejected("bad-mac", "the acceptor's proof is wrong")
        self.key = pair[0]
        return pack(PROOF, {}, _proof(pair[1], "dialler", self.hello, acceptor_nonce))


class Acceptor:
    """The accepting side, once the caller checked the HELLO's names against its own."""

    def __init__(self, cluster_key: Keys, hello: Hello, nonce: bytes | None = None) -> None:
        self._keys = _derived(cluster_key)
        self.key: bytes | None = None
        """The cluster key the dialler proved, once its proof checked out."""
        self.hello = hello
        self.nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce

    def challenge_frame(self) -> bytes:
        return pack(CHALLENGE, {"nonce": self.nonce.hex()},
                    _proof(self._keys[0][1], "acceptor", self.hello, self.nonce))

    def finish(self, proof: bytes) -> None:
        """Accept the dialler's PROOF, or raise FrameRejected("bad-mac" | ...)."""
        _, trailer = unpack(proof, PROOF)
        pair = _matching(self._keys, "dialler", self.hello, self.nonce, trailer)
        if pair is None:
            raise FrameRejected("bad-mac", "the dialler's proof is wrong")
        self.key = pair[0]
