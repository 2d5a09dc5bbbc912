"""Carrying a configuration version between nodes, and when a node that is behind tries.

A version that fits one piece travels inline, as it always did. A larger one is offered
(its size, SHA-256 and piece size); the receiver asks for the pieces one at a time,
retries a lost one, and adopts nothing until every piece is there and the hash matches.
Pieces are a fraction of a frame, whatever the frame size (tutela.lcm.frame.MAX_FRAME).

Sans-IO: the daemon (tutela.daemon.cluster) sends the requests and passes in the time.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from tutela.lcm.frame import MAX_FRAME
from tutela.model.config import ClusterConfig

Version = tuple[int, int]
"""(generation, epoch), as the wire and the LCD carry it; versions order by `order`."""


def order(version: Version) -> tuple[int, int]:
    """Versions order by epoch first, then generation: a later configuration lease
    holder's write is newer than an earlier holder's whatever their generations
    (tutela.lcd.replication; docs/cluster.md, "Replication as a pure core", finding 2)."""
    return version[1], version[0]


def newer(version: Version, than: Version) -> bool:
    return order(version) > order(than)

PIECE_BYTES: Final = MAX_FRAME // 4
"""Configuration bytes per piece: base64 makes a third of a frame of it, leaving room for
the envelope and for a slightly smaller frame."""
PIECE_TRIES: Final = 3
"""Requests for one piece before a fetch gives up (each waits for the request timeout)."""
MAX_TRANSFER: Final = 64 * MAX_FRAME
"""The largest offer a receiver takes: far above any configuration (tutela.lcd.size)."""
RETRY_FIRST: Final = 1.0
RETRY_MAX: Final = 30.0
"""Seconds before the next try after a failed catch-up: doubling from the first to the
most, so a node that cannot fetch a version neither gives up nor floods its peer."""


class TransferError(Exception):
    """A version could not be carried over: the message says what was wrong."""


@dataclass(frozen=True)
class Offer:
    """A version sent in pieces: what the receiver needs to ask for them and check them."""

    version: Version
    size: int
    sha256: str
    piece_bytes: int

    @property
    def pieces(self) -> int:
        return -(-self.size // self.piece_bytes)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256, "piece_bytes": self.piece_bytes}

    @classmethod
    def from_json(cls, version: Version, data: Any) -> Offer:
        try:
            offer = cls(version, int(data["size"]), str(data["sha256"]),
                        int(data["piece_bytes"]))
        except (KeyError, TypeError, ValueError) as error:
            raise TransferError(f"malformed offer {data!r}: {error!r}") from None
        if not (0 < offer.size <= MAX_TRANSFER and 0 < offer.piece_bytes <= MAX_FRAME
                and len(offer.sha256) == 64):
            raise TransferError(f"offer out of range: {data!r}")
        return offer

    def ask(self, index: int) -> dict[str, Any]:
        """The request for piece `index` (config.get)."""
        return {"generation": self.version[0], "epoch": self.version[1],
                "sha256": self.sha256, "index": index}


@dataclass(frozen=True)
class Outgoing:
    """A version as this node sends it: the header (inline, or an offer) and the pieces."""

    version: Version
    blob: bytes
    """The configuration as stored: compact JSON, UTF-8."""
    piece_bytes: int = PIECE_BYTES

    @functools.cached_property
    def offer(self) -> Offer:
        return Offer(self.version, len(self.blob), hashlib.sha256(self.blob).hexdigest(),
                     self.piece_bytes)

    def header(self) -> dict[str, Any]:
        """What config.push carries and config.get answers first."""
        head: dict[str, Any] = {"generation": self.version[0], "epoch": self.version[1]}
        if len(self.blob) <= self.piece_bytes:
            head["config"] = json.loads(self.blob)
        else:
            head["offer"] = self.offer.to_json()
        return head

    def piece(self, request: dict[str, Any]) -> dict[str, Any]:
        """The answer to a request for one piece of the version this node has now."""
        offer = self.offer
        wanted = (int(request["generation"]), int(request["epoch"]))
        if (wanted, request.get("sha256")) != (offer.version, offer.sha256):
            raise TransferError(f"generation {wanted[0]} (epoch {wanted[1]}) is no longer "
                                f"current here: {offer.version[0]} (epoch "
                                f"{offer.version[1]}) is; fetch that")
        index = int(request["index"])
        if not 0 <= index < offer.pieces:
            raise TransferError(f"no piece {index}: there are {offer.pieces}")
        part = self.blob[index * self.piece_bytes:(index + 1) * self.piece_bytes]
        return {"index": index, "data": base64.b64encode(part).decode()}


def header_version(payload: dict[str, Any]) -> Version:
    """The version a header names (TransferError if it names none)."""
    try:
        return int(payload["generation"]), int(payload["epoch"])
    except (KeyError, TypeError, ValueError) as error:
        raise TransferError(f"malformed header: {error!r}") from None


def read_header(payload: dict[str, Any]) -> tuple[Version, ClusterConfig | Offer]:
    """The version a header names, and its configuration (inline) or its offer."""
    version = header_version(payload)
    if "offer" in payload:
        return version, Offer.from_json(version, payload["offer"])
    if "config" not in payload:
        raise TransferError("the header has neither a configuration nor an offer")
    return version, ClusterConfig.model_validate(payload["config"])


class Reassembly:
    """The pieces of one offered version, in any order; each lost one is asked for again
    until its tries run out; the result only once every piece is there and the hash
    matches."""

    def __init__(self, offer: Offer, tries: int = PIECE_TRIES) -> None:
        self.offer = offer
        self._tries = tries
        self._parts: dict[int, bytes] = {}
        self._failures: dict[int, int] = {}

    def next_missing(self) -> int | None:
        return next((i for i in range(self.offer.pieces) if i not in self._parts), None)

    def add(self, index: int, answer: dict[str, Any]) -> None:
        """Keep a piece; TransferError when it is not the piece asked for."""
        if answer.get("index") != index:
            raise TransferError(f"asked for piece {index}, got {answer.get('index')!r}")
        try:
            part = base64.b64decode(str(answer["data"]), validate=True)
        except (KeyError, binascii.Error) as error:
            raise TransferError(f"piece {index} is not base64: {error!r}") from None
        start = index * self.offer.piece_bytes
        expected = min(self.offer.piece_bytes, self.offer.size - start)
        if len(part) != expected:
            raise TransferError(f"piece {index} has {len(part)} bytes, not {expected}")
        self._parts[index] = part

    def failed(self, index: int, error: str) -> None:
        """A request for piece `index` got no answer: TransferError once it had its tries."""
        self._failures[index] = self._failures.get(index, 0) + 1
        if self._failures[index] >= self._tries:
            raise TransferError(f"piece {index + 1} of {self.offer.pieces} did not arrive "
                                f"in {self._tries} tries: {error}")

    def result(self) -> bytes:
        missing = self.next_missing()
        if missing is not None:
            raise TransferError(f"piece {missing + 1} of {self.offer.pieces} is missing")
        blob = b"".join(self._parts[i] for i in range(self.offer.pieces))
        if hashlib.sha256(blob).hexdigest() != self.offer.sha256:
            raise TransferError("the pieces do not add up to the offered version "
                                "(SHA-256 differs); nothing was adopted")
        return blob


def decode(blob: bytes) -> ClusterConfig:
    return ClusterConfig.model_validate_json(blob)


@dataclass(frozen=True)
class FetchFailure:
    """Why this node has not got the newest version, for `tutela status`."""

    wanted: Version
    peer: str
    error: str
    fix: str
    since: float
    """Wall-clock time of the first failure since this node was last up to date."""
    attempts: int
    retry_at: float
    """Monotonic time of the next try."""


class CatchUp:
    """A node that is behind fetches the newest version a peer announces, one fetch at a
    time; after a failure it waits, doubling the wait, and says why in `view`.

    Sans-IO: `now` is monotonic, `wall` wall-clock seconds; the caller does the fetch.
    """

    def __init__(self) -> None:
        self.busy = False
        self.failure: FetchFailure | None = None

    def next_fetch(self, mine: Version, announced: dict[str, Version],
                   now: float) -> tuple[str, Version] | None:
        """The peer to fetch from and the version to fetch now, or None. `announced`:
        each peer's version from its last heartbeat."""
        newest = max(announced.values(), key=order, default=mine)
        if not newer(newest, mine):
            self.failure = None  # up to date, however it got there
            return None
        if self.busy:
            return None
        failure = self.failure
        if failure is not None and failure.wanted == newest and now < failure.retry_at:
            return None
        holders = sorted(peer for peer, version in announced.items() if version == newest)
        if failure is not None and failure.peer in holders:  # the next one that has it
            holders = holders[holders.index(failure.peer) + 1:] + holders
        self.busy = True
        return holders[0], newest

    def succeeded(self) -> None:
        self.busy, self.failure = False, None

    def failed(self, peer: str, wanted: Version, error: str, fix: str, now: float,
               wall: float) -> None:
        self.busy = False
        before = self.failure
        attempts = before.attempts + 1 if before else 1
        wait = min(RETRY_MAX, RETRY_FIRST * 2 ** (attempts - 1))
        self.failure = FetchFailure(wanted, peer, error, fix,
                                    before.since if before else wall, attempts, now + wait)

    def hurry(self) -> None:
        """Try again at once: something changed that may make the fetch work (a path came
        back)."""
        if self.failure is not None:
            self.failure = dataclasses.replace(self.failure, retry_at=0.0)

    def view(self, now: float) -> dict[str, Any] | None:
        failure = self.failure
        if failure is None:
            return None
        since = datetime.datetime.fromtimestamp(failure.since, datetime.UTC)
        return {"generation": failure.wanted[0], "epoch": failure.wanted[1],
                "from": failure.peer, "error": failure.error, "fix": failure.fix,
                "since": since.isoformat(timespec="milliseconds"),
                "attempts": failure.attempts,
                "next_try_in": round(max(0.0, failure.retry_at - now), 1)}

    def warning(self) -> str | None:
        failure = self.failure
        if failure is None:
            return None
        since = datetime.datetime.fromtimestamp(failure.since, datetime.UTC)
        return (f"cannot fetch configuration generation {failure.wanted[0]} from "
                f"{failure.peer} (since {since.isoformat(timespec='seconds')}, "
                f"{failure.attempts} tries): {failure.error}; {failure.fix}")
