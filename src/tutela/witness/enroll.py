"""Enrolling a cluster at a witness with a one-time token: the request, the answer, the tokens.

Both frames are sealed (encrypted and authenticated) under a key derived from the token, and
the cluster key inside is AES-GCM-encrypted again under another derived key.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Final, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tutela.arbiter.timing import LeaseTiming, timing_problems
from tutela.lcm import kinds
from tutela.lcm.frame import (
    BROADCAST,
    MIN_KEY_SIZE,
    Envelope,
    FrameRejected,
    Opener,
    Sealer,
    derive_key,
    open_frame,
)
from tutela.lcm.join import NO_CLUSTER, new_token
from tutela.lcm.paths import witness_voter_id
from tutela.lcm.stream import FrameSplitter
from tutela.model.config import NAME_PATTERN
from tutela.witness.registry import timing_json

ENROL, ENROLLED, REFUSED = (kinds.WITNESS_ENROL.name, kinds.WITNESS_ENROLLED.name,
                            kinds.WITNESS_REFUSED.name)
WITNESS: Final = "witness@enrolment"
"""The sender of the witness's answers; no node can have this name (no '@' in node names)."""
MAX_ENROL_FRAME: Final = 4096
"""An enrolment request is a few hundred bytes; a larger frame is not worth an HMAC per token."""
REFUSAL_KEY: Final = derive_key(b"tutela-witness", "witness enrolment refusal")
"""Refusals to a token the witness does not know are not secret: anyone may forge one, which
only stops an enrolment. A known token's refusal is authenticated with the token."""
MAX_OUTSTANDING: Final = 64
MAX_REMEMBERED: Final = 256
"""Spent tokens are remembered (up to this many) so a refusal can say 'used' or 'expired'."""


class EnrolmentFailed(Exception):
    """The witness could not be reached, or its answer could not be verified."""


class EnrolmentRefused(EnrolmentFailed):
    """The witness refused the enrolment; the message is its reason."""


@dataclass(frozen=True)
class EnrolRequest:
    cluster: str
    key: bytes
    node: str
    """The cluster node that enrols (for the witness's records and logs)."""
    voter: str
    timing: LeaseTiming


def voter_id(host: str, port: int) -> str:
    """The witness's voter id in a cluster (lcm.paths.witness_voter_id): every node can
    name the voter from the cluster's `witnesses` without asking the witness."""
    return witness_voter_id(host, port)


def _mac_key(token: str) -> bytes:
    # Purposes differ from the node join's: a join token can never enrol, nor the reverse.
    return derive_key(token.encode(), "witness enrolment mac")


def _box(token: str) -> AESGCM:
    return AESGCM(derive_key(token.encode(), "witness enrolment secret"))


# --- the cluster's side ------------------------------------------------------------------


def seal_request(token: str, request: EnrolRequest) -> bytes:
    nonce = os.urandom(12)
    secret = _box(token).encrypt(nonce, request.key, request.cluster.encode())
    payload = {"cluster": request.cluster, "voter": request.voter, "nonce": nonce.hex(),
               "key": secret.hex(), "lease": timing_json(request.timing)}
    return Sealer(_mac_key(token), NO_CLUSTER, request.node, 1).seal(BROADCAST, ENROL, payload)


def open_answer(token: str, request: EnrolRequest, data: bytes) -> str:
    """The voter id the witness confirmed, or EnrolmentRefused with its reason."""
    try:
        answer = open_frame(_mac_key(token), data, NO_CLUSTER, request.node)
    except FrameRejected:
        _raise_public_refusal(data, request.node)
    if answer.kind == REFUSED:
        raise EnrolmentRefused(str(answer.payload.get("reason", "no reason given")))
    confirmed = (answer.kind, answer.payload.get("cluster"), answer.payload.get("voter"))
    if confirmed != (ENROLLED, request.cluster, request.voter):
        raise EnrolmentFailed(f"unexpected answer {confirmed!r}")
    return request.voter


def _raise_public_refusal(data: bytes, node: str) -> NoReturn:
    """An answer under the public key: anyone can make one, so it can only ever refuse."""
    try:
        answer = open_frame(REFUSAL_KEY, data, NO_CLUSTER, node)
    except FrameRejected as rejected:
        raise EnrolmentFailed(f"unreadable answer ({rejected.reason})") from None
    if answer.kind != REFUSED:
        raise EnrolmentFailed(f"a {answer.kind!r} answer not authenticated by the token")
    raise EnrolmentRefused(str(answer.payload.get("reason", "no reason given")))


def enroll(host: str, port: int, token: str, cluster: str, key: bytes, node: str,
           timeout: float = 10.0, *, timing: LeaseTiming | None = None) -> str:
    """Hand `cluster`'s key to the witness at HOST:PORT; returns its voter id (blocking).

    `timing` must be the cluster's lease timing (default LeaseTiming()): the witness grants
    for that L. Raises EnrolmentRefused (the witness's reason) or EnrolmentFailed.
    """
    if len(key) < MIN_KEY_SIZE:
        raise ValueError(f"a cluster key has at least {MIN_KEY_SIZE} bytes")
    request = EnrolRequest(cluster, key, node, voter_id(host, port), timing or LeaseTiming())
    where = f"{host}:{port}"
    try:
        answer = _exchange(host, port, seal_request(token, request), timeout)
    except (OSError, TimeoutError) as error:
        raise EnrolmentFailed(f"cannot reach the witness at {where}: {error}; is "
                              "'tutela-witness run' listening there?") from None
    try:
        return open_answer(token, request, answer)
    except EnrolmentRefused as refused:
        raise EnrolmentRefused(f"the witness at {where} refused: {refused}") from None
    except EnrolmentFailed as failed:
        raise EnrolmentFailed(f"the witness at {where} answered badly: {failed}") from None


def _exchange(host: str, port: int, frame: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(frame)
        splitter = FrameSplitter(max_frame=MAX_ENROL_FRAME)
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed without an answer")
            frames = splitter.feed(chunk)
            if frames:
                return frames[0]


# --- the witness's side ------------------------------------------------------------------


@dataclass
class Token:
    expires: float
    """Monotonic time."""
    cluster: str | None
    """The one cluster this token may enrol (and replace); None: new clusters only."""
    spent_at: float | None = None


@dataclass(frozen=True)
class Refusal:
    reason: str
    frame: bytes


@dataclass(frozen=True)
class Admission:
    token: str
    request: EnrolRequest
    may_replace: bool
    """The token was made for this cluster: it may replace the cluster's key."""


class Tokens:
    """Enrolment tokens, in the witness's memory only: a restart forgets them all."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}

    def issue(self, ttl: float, cluster: str | None, now: float) -> str:
        if self.outstanding(now) >= MAX_OUTSTANDING:
            raise ValueError(f"{MAX_OUTSTANDING} tokens are outstanding already; use them "
                             "or let them expire")
        token = new_token()
        self._tokens[token] = Token(now + ttl, cluster)
        self._forget_oldest_spent()
        return token

    def outstanding(self, now: float) -> int:
        return sum(1 for t in self._tokens.values() if t.spent_at is None and now < t.expires)

    def match(self, data: bytes) -> tuple[str, Token] | None:
        """The remembered token whose MAC key authenticates `data` (spent ones included)."""
        if len(data) > MAX_ENROL_FRAME:
            return None
        return next(((token, info) for token, info in self._tokens.items()
                     if Opener(_mac_key(token), NO_CLUSTER, BROADCAST).check(data)), None)

    def _forget_oldest_spent(self) -> None:
        while len(self._tokens) > MAX_REMEMBERED:
            spent = [(t.spent_at or t.expires, k) for k, t in self._tokens.items()
                     if t.spent_at is not None]
            oldest = min(spent or [(t.expires, k) for k, t in self._tokens.items()])
            del self._tokens[oldest[1]]


def decide(tokens: Tokens, data: bytes, now: float, served: set[str]) -> Refusal | Admission:
    """Check an enrolment frame; a token that authenticates it is spent whatever the outcome."""
    found = tokens.match(data)
    if found is None:
        return _refuse(None, "*", "the enrolment token is unknown to this witness (mistyped, "
                       "or the witness restarted since it was made); make a new one with "
                       "'tutela-witness token' on the witness host")
    token, info = found
    problem = _token_problem(info, now)
    info.spent_at = info.spent_at or now  # spent by the first attempt, even a refused one
    try:
        envelope = open_frame(_mac_key(token), data, NO_CLUSTER, BROADCAST)
    except FrameRejected as rejected:
        return _refuse(token, BROADCAST, f"malformed enrolment request ({rejected})")
    if problem is not None:
        return _refuse(token, envelope.sender, problem)
    try:
        request = _read_request(token, envelope)
    except ValueError as error:
        return _refuse(token, envelope.sender, f"malformed enrolment request: {error}")
    problem = _request_problem(request, info, served)
    if problem is not None:
        return _refuse(token, envelope.sender, problem)
    return Admission(token, request, info.cluster is not None)


def _token_problem(info: Token, now: float) -> str | None:
    if info.spent_at is not None:
        return ("the enrolment token was used already (a token enrols once); make a new "
                "one with 'tutela-witness token'")
    if now >= info.expires:
        return ("the enrolment token expired; make a new one with 'tutela-witness token' "
                "(--ttl SECONDS for longer)")
    return None


def _read_request(token: str, envelope: Envelope) -> EnrolRequest:
    payload = envelope.payload
    try:
        cluster, voter, lease = str(payload["cluster"]), str(payload["voter"]), payload["lease"]
        key = _box(token).decrypt(bytes.fromhex(payload["nonce"]),
                                  bytes.fromhex(payload["key"]), cluster.encode())
        timing = (float(lease["duration"]), float(lease["drift"]), float(lease["margin"]))
    except (KeyError, TypeError, ValueError, InvalidTag) as error:
        raise ValueError(repr(error)) from None
    problems = timing_problems(*timing)
    if problems:
        raise ValueError("lease timing: " + "; ".join(problems))
    return EnrolRequest(cluster, key, envelope.sender, voter, LeaseTiming(*timing))


def _request_problem(request: EnrolRequest, info: Token, served: set[str]) -> str | None:
    name = request.cluster
    if not re.fullmatch(NAME_PATTERN, name):
        return f"cluster name {name!r} is not a valid name (letters, digits, '_', '.', '-')"
    if not request.voter.startswith("witness@") or any(c.isspace() for c in request.voter):
        return f"voter id {request.voter!r} must be 'witness@HOST:PORT'"
    if len(request.key) < MIN_KEY_SIZE:
        return f"the cluster key must have at least {MIN_KEY_SIZE} bytes"
    if info.cluster is not None and info.cluster != name:
        return (f"this token was made for cluster {info.cluster!r}, not {name!r}; make one "
                f"for it with 'tutela-witness token --cluster {name}'")
    if info.cluster is None and name in served:
        return (f"cluster {name!r} is enrolled already; to replace its key, enrol with a "
                f"token made by 'tutela-witness token --cluster {name}'")
    return None


def seal_admission(admission: Admission, replaced: bool) -> bytes:
    request = admission.request
    payload = {"cluster": request.cluster, "voter": request.voter, "replaced": replaced}
    return Sealer(_mac_key(admission.token), NO_CLUSTER, WITNESS, 1).seal(
        request.node, ENROLLED, payload)


def seal_refusal(token: str | None, node: str, reason: str) -> bytes:
    key = REFUSAL_KEY if token is None else _mac_key(token)
    return Sealer(key, NO_CLUSTER, WITNESS, 1).seal(node, REFUSED, {"reason": reason})


def _refuse(token: str | None, node: str, reason: str) -> Refusal:
    return Refusal(reason, seal_refusal(token, node, reason))
