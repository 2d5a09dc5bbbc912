"""Joining a node with a one-time token: the request, the encrypted grant, the refusal.

The token is the only shared secret: both frames are sealed (ChaCha20-Poly1305, so the grant's
configuration is never in clear text) under a key derived from it, and the cluster key in the
grant is AES-GCM-encrypted again under another derived key. The token is spent by its first
use, so a recorded request replayed later is refused.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tutela.lcm import kinds
from tutela.lcm.frame import Envelope, FrameRejected, Sealer, derive_key, open_frame
from tutela.lcm.stream import FrameSplitter

JOIN, GRANT, REFUSAL = kinds.JOIN.name, kinds.JOIN_GRANT.name, kinds.JOIN_REFUSED.name
NO_CLUSTER = ""
"""The cluster name in join frames: the joining node does not know it yet."""
REFUSAL_KEY = derive_key(b"tutela", "join refusal")
"""Refusals are not secret; anyone may forge one, which only stops a join."""


class JoinRefused(Exception):
    """The cluster refused the join, or its answer could not be verified."""


@dataclass(frozen=True)
class Grant:
    cluster: str
    key: bytes
    generation: int
    config: dict[str, Any]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_digest(token: str) -> str:
    """What a node keeps of a token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def _mac_key(token: str) -> bytes:
    return derive_key(token.encode(), "join mac")


def _box(token: str) -> AESGCM:
    return AESGCM(derive_key(token.encode(), "join secret"))


def seal_request(token: str, node: str, addresses: list[str],
                 watchdog: dict[str, Any] | None = None) -> bytes:
    """`watchdog`: the joining node's NodeWatchdog record (its lease needs it)."""
    sealer = Sealer(_mac_key(token), NO_CLUSTER, node, 1)
    return sealer.seal("*", JOIN, {"node": node, "addresses": addresses, "watchdog": watchdog})


def open_request(tokens: list[str], data: bytes) -> tuple[str, Envelope]:
    """The token that authenticates `data` and the request; FrameRejected if none does."""
    for token in tokens:
        try:
            envelope = open_frame(_mac_key(token), data, NO_CLUSTER, "*")
        except FrameRejected:
            continue
        if envelope.kind == JOIN:
            return token, envelope
    raise FrameRejected("bad-join")


def seal_grant(token: str, node: str, grant: Grant) -> bytes:
    nonce = os.urandom(12)
    secret = _box(token).encrypt(nonce, grant.key, grant.cluster.encode())
    payload = {"cluster": grant.cluster, "generation": grant.generation,
               "config": grant.config, "nonce": nonce.hex(), "key": secret.hex()}
    return Sealer(_mac_key(token), NO_CLUSTER, "cluster", 1).seal(node, GRANT, payload)


def seal_refusal(node: str, reason: str) -> bytes:
    return Sealer(REFUSAL_KEY, NO_CLUSTER, "cluster", 1).seal(node, REFUSAL, {"reason": reason})


def open_answer(token: str, node: str, data: bytes) -> Grant:
    """The grant in `data`, or JoinRefused with the cluster's reason."""
    try:
        envelope = open_frame(_mac_key(token), data, NO_CLUSTER, node)
    except FrameRejected:
        try:
            refusal = open_frame(REFUSAL_KEY, data, NO_CLUSTER, node)
        except FrameRejected as rejected:
            raise JoinRefused(f"unreadable answer ({rejected.reason})") from None
        raise JoinRefused(str(refusal.payload.get("reason", "no reason given"))) from None
    payload = envelope.payload
    try:
        key = _box(token).decrypt(bytes.fromhex(payload["nonce"]),
                                  bytes.fromhex(payload["key"]), payload["cluster"].encode())
        return Grant(str(payload["cluster"]), key, int(payload["generation"]),
                     dict(payload["config"]))
    except (KeyError, ValueError, TypeError, InvalidTag) as error:
        raise JoinRefused(f"malformed grant: {error!r}") from None


def request_join(address: str, port: int, token: str, node: str, addresses: list[str],
                 watchdog: dict[str, Any] | None = None, timeout: float = 30.0) -> Grant:
    """Ask the cluster node at ADDRESS to let this node in (blocking; used by the CLI)."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(seal_request(token, node, addresses, watchdog))
        splitter = FrameSplitter()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise JoinRefused(f"{address} closed the connection without an answer")
            frames = splitter.feed(chunk)
            if frames:
                return open_answer(token, node, frames[0])
