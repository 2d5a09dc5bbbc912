"""A shared-disk voter: one vote of the arbiter, cast by the candidates themselves from a small
area on a shared disk (Serviceguard's lock LUN, Pacemaker's SBD). Nothing runs at the disk.

Each node owns one sector (its slot) and is the only one that writes it; a slot names the lease
names its node claims and changes on every write (incarnation, sequence number). A node counts
the disk's vote for a name when, after writing its claim, it reads the area and every other
claim on that name is one it has seen unchanged for an observation period of its own clock.
docs/leases.md, "A shared-disk voter", gives the rules and the proof.

Sans-IO: the driver does the O_DIRECT I/O the effects ask for (one at a time) and hands the
results back with its monotonic `now`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from tutela.arbiter.messages import AcquireReply, AcquireRequest, Refusal, Release
from tutela.arbiter.timing import LeaseTiming

MAGIC = b"TUTELADV"
VERSION = 1
CLUSTER_ID_SIZE = 16
_HEADER = struct.Struct(">8sH16sHQQdH")
"""magic, version, cluster id, slot, incarnation, sequence, lease duration (s), claim count."""
_CRC = struct.Struct(">I")
MAX_NAME_BYTES = 255
SECTOR_SIZES = (512, 4096)


class SectorError(ValueError):
    """A sector that is torn, foreign (another cluster, another format) or in the wrong slot."""


@dataclass(frozen=True)
class DiskArea:
    """Where the slots are: slot i, the sector at i x sector_size, belongs to nodes[i]."""

    cluster_id: bytes
    nodes: tuple[str, ...]
    sector_size: int = 512

    def __post_init__(self) -> None:
        if len(self.cluster_id) != CLUSTER_ID_SIZE:
            raise ValueError(f"cluster_id must be {CLUSTER_ID_SIZE} bytes, "
                             f"got {len(self.cluster_id)}")
        if not self.nodes or len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"nodes must be distinct and not empty, got {self.nodes!r}")
        if self.sector_size not in SECTOR_SIZES:
            raise ValueError(f"sector_size must be one of {SECTOR_SIZES}, "
                             f"got {self.sector_size}")

    @property
    def length(self) -> int:
        return len(self.nodes) * self.sector_size

    def slot_of(self, node: str) -> int:
        if node not in self.nodes:
            raise ValueError(f"node {node!r} has no slot on the disk (slots: {self.nodes})")
        return self.nodes.index(node)


@dataclass(frozen=True)
class SlotRecord:
    """What one node last wrote to its slot."""

    slot: int
    incarnation: int
    sequence: int
    """Raised by every write: no two writes of one process leave the same bytes."""
    duration: float
    """The lease L its writer counts on: a reader watches its claims for L(1 + rho) at least."""
    claims: tuple[str, ...] = ()


def slot_bytes(names: list[str] | tuple[str, ...]) -> int:
    """The bytes a slot claiming every one of `names` takes (it must fit one sector)."""
    return _HEADER.size + sum(1 + len(name.encode()) for name in names) + _CRC.size


def encode_slot(area: DiskArea, record: SlotRecord) -> bytes:
    """The sector for `record`: header, claimed names, zeros, CRC-32 of all before it."""
    body = bytearray(_HEADER.pack(MAGIC, VERSION, area.cluster_id, record.slot,
                                  record.incarnation, record.sequence, record.duration,
                                  len(record.claims)))
    for name in record.claims:
        raw = name.encode()
        if not 0 < len(raw) <= MAX_NAME_BYTES:
            raise ValueError(f"lease name {name!r} must be 1 to {MAX_NAME_BYTES} bytes")
        body += bytes((len(raw),)) + raw
    room = area.sector_size - _CRC.size
    if len(body) > room:
        raise ValueError(f"claims {record.claims!r} do not fit a {area.sector_size}-byte slot")
    body += bytes(room - len(body))
    return bytes(body) + _CRC.pack(zlib.crc32(body))


def decode_slot(area: DiskArea, data: bytes, slot: int) -> SlotRecord | None:
    """The record in slot `slot`'s sector; None for a slot never written (all zeros).

    Raises SectorError for anything else that is not a whole sector this cluster wrote
    there: a torn write, another cluster's or program's data, another slot's record.
    """
    if len(data) != area.sector_size:
        raise SectorError(f"slot {slot}: {len(data)} bytes, not a {area.sector_size}-byte sector")
    if not any(data):
        return None
    body, (crc,) = data[:-_CRC.size], _CRC.unpack(data[-_CRC.size:])
    if zlib.crc32(body) != crc:
        raise SectorError(f"slot {slot}: CRC mismatch (a torn or foreign sector)")
    magic, version, cluster, written_slot, incarnation, sequence, duration, count = (
        _HEADER.unpack_from(body))
    if magic != MAGIC or version != VERSION:
        raise SectorError(f"slot {slot}: not a tutela disk-voter sector (version {version})")
    if cluster != area.cluster_id or written_slot != slot:
        raise SectorError(f"slot {slot}: written by cluster {cluster.hex()} for slot "
                          f"{written_slot}, not this cluster's slot {slot}")
    claims, at = [], _HEADER.size
    for _ in range(count):
        size = body[at]
        claims.append(body[at + 1:at + 1 + size].decode())
        at += 1 + size
    return SlotRecord(written_slot, incarnation, sequence, duration, tuple(claims))


def decode_area(area: DiskArea, data: bytes) -> list[SlotRecord | None]:
    """Every slot of a read of the whole area, validated (SectorError on any bad one)."""
    if len(data) != area.length:
        raise SectorError(f"read {len(data)} bytes of a {area.length}-byte area")
    size = area.sector_size
    return [decode_slot(area, data[i * size:(i + 1) * size], i) for i in range(len(area.nodes))]


# -- effects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteSlot:
    """Write `data` (one whole sector) at byte `offset` of the area, O_DIRECT; then call
    `on_written`."""

    offset: int
    data: bytes


@dataclass(frozen=True)
class ReadArea:
    """Read `length` bytes from byte `offset` (the whole area), O_DIRECT; then `on_read`."""

    offset: int
    length: int


@dataclass(frozen=True)
class Answer:
    """The disk's vote on a request: hand it to the node's holder as a voter's reply."""

    reply: AcquireReply


DiskEffect = WriteSlot | ReadArea | Answer


@dataclass
class _Seen:
    """Another slot's bytes and the completion (own clock) of the first read that saw them."""

    data: bytes
    since: float
    record: SlotRecord | None


@dataclass
class _Io:
    kind: str  # "write" or "read"
    submitted_at: float
    batch: list[AcquireRequest]
    claimed: frozenset[str] = frozenset()
    """The names the batch's write claimed: only those can be granted to the batch."""


@dataclass
class _Claim:
    round: int
    """The newest round of the holder process that claimed it (a release must be newer)."""
    granted: bool = False
    """A grant relied on it: it stays on the disk until the holder releases it."""


@dataclass
class DiskVoterState:
    claims: dict[str, _Claim] = field(default_factory=dict)
    seen: dict[int, _Seen] = field(default_factory=dict)
    sequence: int = 0
    last_written: bytes | None = None
    written_claims: frozenset[str] | None = None
    """What the slot claims as far as this process knows; None: unknown (a write failed)."""
    has_read: bool = False
    """A read succeeded in this process: until then it claims nothing (it cannot tell a
    live claim from a stale one)."""


class DiskVoter:
    """The disk's vote, as the node `node` (one holder process) casts it for itself.

    `io_limit`: the longest any I/O may stay in flight (the device's command timeout); a
    restarted process writes nothing before that much has passed, so no write of its previous
    life can land after its own. `io_timeout`: an I/O that takes longer counts as failed.
    """

    def __init__(self, voter_id: str, area: DiskArea, node: str, timing: LeaseTiming, *,
                 incarnation: int, started_at: float, io_limit: float,
                 io_timeout: float | None = None) -> None:
        if io_limit < 0:
            raise ValueError(f"io_limit must be >= 0 seconds, got {io_limit}")
        self.voter_id, self.area, self.node, self.timing = voter_id, area, node, timing
        self.slot = area.slot_of(node)
        self.incarnation = incarnation
        self.ready_at = started_at + io_limit * (1 + timing.drift)
        """No I/O before this: the previous life's writes have landed or never will."""
        self._not_before = self.ready_at
        self.io_timeout = timing.renew_every if io_timeout is None else io_timeout
        self.state = DiskVoterState()
        self._pending: list[AcquireRequest] = []
        self._io: _Io | None = None

    # -- the holder's messages --------------------------------------------------------

    def on_acquire(self, req: AcquireRequest, now: float) -> list[DiskEffect]:
        """Queue the request for the next write-then-read; refuse at once while starting."""
        if req.voter != self.voter_id or req.candidate != self.node:
            raise ValueError(f"disk voter of {self.node} got a request of {req.candidate} "
                             f"for voter {req.voter}")
        if now < self.ready_at:
            return [self._answer(req, [], [(n, None, self.ready_at - now) for n in req.names])]
        self._pending.append(req)
        return self._next_io(now)

    def on_release(self, msg: Release, now: float) -> list[DiskEffect]:
        """Take the names off the slot, unless a newer round claimed them since."""
        for name in msg.names:
            claim = self.state.claims.get(name)
            if claim is not None and claim.round < msg.round:
                del self.state.claims[name]
        return self._next_io(now)

    def tick(self, now: float) -> list[DiskEffect]:
        return self._next_io(now)

    def next_deadline(self) -> float | None:
        """When tick has something to do: the end of a wait (start-up, or after a failed
        I/O) while work waits."""
        return self._not_before if self._io is None and self._dirty() else None

    # -- the driver's results ---------------------------------------------------------

    def on_written(self, ok: bool, now: float) -> list[DiskEffect]:
        io = self._finish("write")
        if ok and now - io.submitted_at <= self.io_timeout:
            self.state.written_claims = io.claimed
            if io.batch:
                self._io = _Io("read", now, io.batch, io.claimed)
                return [ReadArea(0, self.area.length)]
            return self._next_io(now)
        self.state.written_claims = None  # it may or may not have landed
        return self._failed(io, now)

    def _failed(self, io: _Io, now: float) -> list[DiskEffect]:
        """A failed, late or unreadable I/O: no vote for its batch; the next write (a slot
        to bring up to date) waits a little, so a broken disk is not hammered."""
        self._not_before = now + self.timing.renew_every / 2
        return [*self._refuse_all(io), *self._next_io(now)]

    def on_read(self, data: bytes | None, now: float) -> list[DiskEffect]:
        io = self._finish("read")
        if data is None or now - io.submitted_at > self.io_timeout:
            return self._failed(io, now)
        try:
            records = decode_area(self.area, data)
        except SectorError:
            return self._failed(io, now)
        if data[self._offset():self._offset() + self.area.sector_size] != self.state.last_written:
            # Someone else writes this node's slot (two nodes configured with one slot).
            return self._failed(io, now)
        self._observe(data, records, now)
        self.state.has_read = True
        return [*self._decide(io), *self._next_io(now)]

    # -- the rules --------------------------------------------------------------------

    def window(self, record: SlotRecord | None) -> float:
        """How long (own clock) another claim must be seen unchanged before it is ignored:
        long enough for every lease its writer could count on to have ended."""
        duration = max(self.timing.duration, record.duration if record else 0.0)
        return duration * (1 + self.timing.drift)

    def blocker(self, name: str, at: float) -> tuple[int, float] | None:
        """Another slot whose claim on `name` is live as of a read submitted at `at`:
        (slot, how much longer it must stay unchanged), else None."""
        for slot, seen in sorted(self.state.seen.items()):
            if seen.record is not None and name in seen.record.claims:
                left = seen.since + self.window(seen.record) - at
                if left > 0:
                    return slot, left
        return None

    def _decide(self, io: _Io) -> list[DiskEffect]:
        """Grant each name the batch's write claimed and no live claim of another slot
        contests, judged at the read's submission; withdraw the other claims of the batch
        that no grant relies on (so a refused candidate does not disturb the holder)."""
        answers: list[DiskEffect] = []
        for req in io.batch:
            granted, refused = [], []
            for name in dict.fromkeys(req.names):
                refusal = self._refusal(name, io)
                if refusal is None:
                    granted.append(name)
                    self.state.claims[name].granted = True
                else:
                    refused.append(refusal)
            answers.append(self._answer(req, granted, refused))
        self._drop_ungranted(io)
        return answers

    def _refusal(self, name: str, io: _Io) -> Refusal | None:
        block = self.blocker(name, io.submitted_at)
        if name in io.claimed and name in self.state.claims and block is None:
            return None
        if block is None:  # not claimed: a longer lease asked for, or released meanwhile
            return (name, None, self.timing.renew_every)
        return (name, self.area.nodes[block[0]], block[1])

    def _observe(self, data: bytes, records: list[SlotRecord | None], now: float) -> None:
        """Remember each other slot's bytes and since when (the first read that saw them)."""
        size = self.area.sector_size
        for slot, record in enumerate(records):
            if slot == self.slot:
                continue
            sector = data[slot * size:(slot + 1) * size]
            seen = self.state.seen.get(slot)
            if seen is None or seen.data != sector:
                self.state.seen[slot] = _Seen(sector, now, record)

    def _refuse_all(self, io: _Io) -> list[DiskEffect]:
        answers: list[DiskEffect] = [
            self._answer(req, [], [(n, None, self.timing.renew_every) for n in req.names])
            for req in io.batch]
        self._drop_ungranted(io)
        return answers

    def _drop_ungranted(self, io: _Io) -> None:
        for req in io.batch:
            for name in req.names:
                claim = self.state.claims.get(name)
                if claim is not None and not claim.granted:
                    del self.state.claims[name]

    # -- I/O --------------------------------------------------------------------------

    def _next_io(self, now: float) -> list[DiskEffect]:
        """Start the next write when idle: a batch of requests (their claims, then a read),
        or the slot brought up to date (releases, withdrawn claims)."""
        if self._io is not None or now < self._not_before or not self._dirty():
            return []
        batch, self._pending = self._pending, []
        for req in batch:
            for name in req.names:
                if self._may_claim(name, req, now):
                    claim = self.state.claims.setdefault(name, _Claim(req.round))
                    claim.round = max(claim.round, req.round)
        claimed = frozenset(self.state.claims)
        self.state.sequence += 1
        data = encode_slot(self.area, SlotRecord(
            self.slot, self.incarnation, self.state.sequence, self.timing.duration,
            tuple(sorted(claimed))))
        self.state.last_written = data
        self._io = _Io("write", now, batch, claimed)
        return [WriteSlot(self._offset(), data)]

    def _may_claim(self, name: str, req: AcquireRequest, now: float) -> bool:
        """Claim only what may be won: a live claim of another node (as last read) is left
        alone, so a candidate does not make the holder's reads see a contested name; before
        its first read a process claims nothing."""
        if req.duration > self.timing.duration + 1e-9:
            return False  # it counts on a longer lease than the window here covers
        if name in self.state.claims:
            return True
        return self.state.has_read and self.blocker(name, now) is None

    def _dirty(self) -> bool:
        return bool(self._pending) or self.state.written_claims != frozenset(self.state.claims)

    def _finish(self, kind: str) -> _Io:
        io = self._io
        if io is None or io.kind != kind:
            raise RuntimeError(f"disk voter got a {kind} result with no {kind} in flight")
        self._io = None
        return io

    def _offset(self) -> int:
        return self.slot * self.area.sector_size

    def _answer(self, req: AcquireRequest, granted: list[str],
                refused: list[Refusal]) -> Answer:
        return Answer(AcquireReply(round=req.round, incarnation=req.incarnation,
                                   voter=self.voter_id, candidate=req.candidate,
                                   granted=tuple(granted), refused=tuple(refused)))
