"""The shared-disk voter's core: the sector layout and the rules, as data (docs/leases.md,
"A shared-disk voter"). The disk here is a bytearray the test reads and writes in place of
the O_DIRECT driver, which does nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tutela.arbiter.disk_voter import (
    Answer,
    DiskArea,
    DiskEffect,
    DiskVoter,
    ReadArea,
    SectorError,
    SlotRecord,
    WriteSlot,
    decode_area,
    decode_slot,
    encode_slot,
)
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming

AREA = DiskArea(cluster_id=bytes(range(16)), nodes=("n1", "n2"))
TIMING = LeaseTiming()
WINDOW = TIMING.duration * (1 + TIMING.drift)


# -- the layout --------------------------------------------------------------------------


def test_a_slot_round_trips_through_its_sector() -> None:
    record = SlotRecord(1, incarnation=7, sequence=42, duration=1.61, claims=("config", "db"))
    sector = encode_slot(AREA, record)
    assert len(sector) == 512
    assert sector[:8] == b"TUTELADV"
    assert decode_slot(AREA, sector, 1) == record


def test_a_slot_never_written_is_empty() -> None:
    assert decode_slot(AREA, bytes(512), 0) is None


@pytest.mark.parametrize(("change", "complaint"), [
    (lambda s: s[:100] + bytes((s[100] ^ 1,)) + s[101:], "CRC"),  # one bit flipped
    (lambda s: s[:256] + bytes(256), "CRC"),  # a torn write: the second half never landed
    (lambda s: b"X" * 512, "CRC"),
])
def test_a_torn_or_foreign_sector_is_refused(change: Callable[[bytes], bytes],
                                              complaint: str) -> None:
    sector = encode_slot(AREA, SlotRecord(0, 1, 1, 1.0, ("config",)))
    with pytest.raises(SectorError, match=complaint):
        decode_slot(AREA, change(sector), 0)


def test_another_clusters_sector_or_another_slots_is_refused() -> None:
    other = DiskArea(cluster_id=bytes(16), nodes=AREA.nodes)
    with pytest.raises(SectorError, match="not this cluster's slot 0"):
        decode_slot(AREA, encode_slot(other, SlotRecord(0, 1, 1, 1.0)), 0)
    with pytest.raises(SectorError, match="not this cluster's slot 1"):
        decode_slot(AREA, encode_slot(AREA, SlotRecord(0, 1, 1, 1.0)), 1)


def test_claims_that_do_not_fit_a_sector_are_an_error() -> None:
    with pytest.raises(ValueError, match="do not fit a 512-byte slot"):
        encode_slot(AREA, SlotRecord(0, 1, 1, 1.0, tuple(f"h{i:03}" * 10 for i in range(20))))
    assert decode_slot(DiskArea(AREA.cluster_id, AREA.nodes, 4096), encode_slot(
        DiskArea(AREA.cluster_id, AREA.nodes, 4096),
        SlotRecord(0, 1, 1, 1.0, tuple(f"h{i:03}" * 10 for i in range(20)))), 0) is not None


def test_a_bad_area_names_the_field() -> None:
    with pytest.raises(ValueError, match="cluster_id must be 16 bytes"):
        DiskArea(b"short", ("n1",))
    with pytest.raises(ValueError, match="sector_size must be one of"):
        DiskArea(bytes(16), ("n1",), 1000)
    with pytest.raises(ValueError, match="nodes must be distinct"):
        DiskArea(bytes(16), ("n1", "n1"))


def test_the_whole_area_decodes_slot_by_slot() -> None:
    data = encode_slot(AREA, SlotRecord(0, 1, 3, 1.0, ("a",))) + bytes(512)
    assert decode_area(AREA, data) == [SlotRecord(0, 1, 3, 1.0, ("a",)), None]
    with pytest.raises(SectorError, match="read 512 bytes of a 1024-byte area"):
        decode_area(AREA, data[:512])


# -- the rules ---------------------------------------------------------------------------


class Node:
    """One node's disk voter with a driver that does each I/O at once on `disk`; started
    with a first request that reads the area (before it, the voter claims nothing)."""

    def __init__(self, disk: bytearray, name: str, incarnation: int = 1,
                 started_at: float = 0.0) -> None:
        self.disk, self.name = disk, name
        self.voter = DiskVoter("disk", AREA, name, TIMING, incarnation=incarnation,
                               started_at=started_at, io_limit=0.0)
        self.round = 0
        self.replies: list[AcquireReply] = []
        self.ask((), started_at)

    def ask(self, names: tuple[str, ...], now: float) -> AcquireReply:
        self.round += 1
        req = AcquireRequest(self.round, 1, names, self.name, "disk", TIMING.duration)
        self.run(self.voter.on_acquire(req, now), now)
        return self.replies[-1]

    def release(self, names: tuple[str, ...], now: float) -> None:
        self.round += 1
        self.run(self.voter.on_release(Release(self.round, 1, names, self.name, "disk"), now),
                 now)

    def run(self, effects: list[DiskEffect], now: float) -> None:
        while effects:
            effect, *effects = effects
            if isinstance(effect, Answer):
                self.replies.append(effect.reply)
            elif isinstance(effect, WriteSlot):
                self.disk[effect.offset:effect.offset + len(effect.data)] = effect.data
                effects += self.voter.on_written(True, now)
            elif isinstance(effect, ReadArea):
                effects += self.voter.on_read(bytes(self.disk[:effect.length]), now)

    def claims(self) -> tuple[str, ...]:
        slot = AREA.slot_of(self.name)
        record = decode_slot(AREA, bytes(self.disk[slot * 512:(slot + 1) * 512]), slot)
        return () if record is None else record.claims


@pytest.fixture
def disk() -> bytearray:
    return bytearray(AREA.length)


def test_before_its_first_read_a_process_claims_nothing(disk: bytearray) -> None:
    """It cannot tell a live claim from a stale one yet: its claim could only disturb a
    holder (whose reads would see a contested name)."""
    voter = DiskVoter("disk", AREA, "n1", TIMING, incarnation=1, started_at=0.0, io_limit=0.0)
    (write,) = voter.on_acquire(AcquireRequest(1, 1, ("config",), "n1", "disk", 1.0), 0.0)
    assert isinstance(write, WriteSlot)
    assert decode_slot(AREA, write.data, 0) == SlotRecord(0, 1, 1, 1.0, ())
    (read,) = voter.on_written(True, 0.01)
    assert isinstance(read, ReadArea)
    (answer,) = voter.on_read(write.data + bytes(512), 0.02)
    assert isinstance(answer, Answer) and answer.reply.granted == ()


def test_an_uncontested_name_is_granted_at_once_and_stays_claimed(disk: bytearray) -> None:
    n1 = Node(disk, "n1")
    assert n1.ask(("config",), 0.0).granted == ("config",)
    assert n1.claims() == ("config",)


def test_a_live_claim_of_another_node_is_refused_and_not_contested(disk: bytearray) -> None:
    n1, n2 = Node(disk, "n1"), Node(disk, "n2")
    n1.ask(("config",), 0.0)
    reply = n2.ask(("config",), 0.1)
    assert reply.granted == () and reply.refused[0][:2] == ("config", "n1")
    assert n2.claims() == ()  # it withdrew: the holder's reads see no rival claim
    n1.ask(("config",), 0.25)  # the holder renews: its slot changes
    reply = n2.ask(("config",), 0.1 + WINDOW + 0.01)
    assert reply.granted == (), "the claim changed within the window: still live"
    assert n1.ask(("config",), 0.5).granted == ("config",)


def test_a_claim_unchanged_for_the_window_is_ignored(disk: bytearray) -> None:
    n1, n2 = Node(disk, "n1"), Node(disk, "n2")
    n1.ask(("config",), 0.0)  # then n1 stops (frozen, crashed): its slot stays as it is
    first = n2.ask(("config",), 0.1)
    assert first.refused[0][2] == pytest.approx(WINDOW)  # try again when it may be stale
    assert n2.ask(("config",), 0.1 + WINDOW - 0.001).granted == ()
    assert n2.ask(("config",), 0.1 + WINDOW).granted == ("config",)
    assert n2.claims() == ("config",)


def test_a_claim_counting_on_a_longer_lease_is_watched_longer(disk: bytearray) -> None:
    n1, n2 = Node(disk, "n1"), Node(disk, "n2")
    disk[0:512] = encode_slot(AREA, SlotRecord(0, 9, 1, 2.62, ("config",)))
    assert n2.ask(("config",), 0.0).granted == ()
    assert n2.ask(("config",), WINDOW + 0.01).granted == ()
    assert n2.ask(("config",), 2.62 * (1 + TIMING.drift)).granted == ("config",)
    del n1


def test_the_window_counts_from_the_read_that_first_saw_the_bytes(disk: bytearray) -> None:
    """The since-time is the completion of the first read that saw the bytes, and the window
    ends at the submission of the read that decides: a slow read never stretches it."""
    n1, n2 = Node(disk, "n1"), Node(disk, "n2")
    n1.ask(("config",), 0.0)
    n2.ask(("config",), 0.3)
    assert n2.voter.blocker("config", 0.3 + WINDOW - 1e-6) is not None
    assert n2.voter.blocker("config", 0.3 + WINDOW) is None


def test_a_granted_claim_stays_until_a_newer_release(disk: bytearray) -> None:
    n1, n2 = Node(disk, "n1"), Node(disk, "n2")
    n1.ask(("config",), 0.0)
    n2.ask(("config",), 0.1)  # n2 claims briefly; n1's next read may see it
    disk[512:1024] = encode_slot(AREA, SlotRecord(1, 5, 1, 1.0, ("config",)))
    assert n1.ask(("config",), 0.2).granted == ()  # contested now: no vote this round
    assert n1.claims() == ("config",), "a claim a lease may rely on is never withdrawn"
    stale = Release(0, 1, ("config",), "n1", "disk")  # older than every request
    n1.run(n1.voter.on_release(stale, 0.3), 0.3)
    assert n1.claims() == ("config",)
    n1.release(("config",), 0.4)
    assert n1.claims() == ()


def test_two_candidates_at_once_do_not_both_win(disk: bytearray) -> None:
    """Both write their claims before either reads: the first to read sees the other's live
    claim, refuses and withdraws its own; the second then sees none and wins."""
    n1, n2 = Node(disk, "n1"), Node(disk, "n2")
    req1 = AcquireRequest(1, 1, ("config",), "n1", "disk", 1.0)
    req2 = AcquireRequest(1, 1, ("config",), "n2", "disk", 1.0)
    w1, w2 = n1.voter.on_acquire(req1, 0.0), n2.voter.on_acquire(req2, 0.0)
    for effects in (w1, w2):
        (write,) = effects
        assert isinstance(write, WriteSlot)
        disk[write.offset:write.offset + 512] = write.data
    n1.run(n1.voter.on_written(True, 0.01), 0.01)
    n2.run(n2.voter.on_written(True, 0.01), 0.01)
    assert n1.replies[-1].granted == () and n2.replies[-1].granted == ("config",)
    assert n1.claims() == () and n2.claims() == ("config",)


@pytest.mark.parametrize("failure", ["write fails", "read fails", "late", "torn", "foreign",
                                     "own slot overwritten"])
def test_no_vote_when_the_disk_fails_or_lies(disk: bytearray, failure: str) -> None:
    n1 = Node(disk, "n1")
    (write,) = n1.voter.on_acquire(AcquireRequest(1, 1, ("config",), "n1", "disk", 1.0), 0.0)
    assert isinstance(write, WriteSlot)
    disk[0:512] = write.data
    late = TIMING.renew_every + 0.01
    if failure == "write fails":
        effects = n1.voter.on_written(False, 0.01)
    elif failure == "late":
        effects = n1.voter.on_written(True, late)
    else:
        (read,) = n1.voter.on_written(True, 0.01)
        assert isinstance(read, ReadArea)
        data = bytearray(disk)
        if failure == "torn":
            data[600:1024] = bytes(424) + b"x"
        elif failure == "foreign":
            data[512:1024] = encode_slot(DiskArea(bytes(16), AREA.nodes), SlotRecord(1, 1, 1, 1))
        elif failure == "own slot overwritten":
            data[0:512] = encode_slot(AREA, SlotRecord(0, 99, 1, 1.0))
        effects = n1.voter.on_read(None if failure == "read fails" else bytes(data), 0.02)
    answers = [e.reply for e in effects if isinstance(e, Answer)]
    assert answers and answers[0].granted == ()
    assert answers[0].refused == (("config", None, TIMING.renew_every),)
    assert not [e for e in effects if isinstance(e, WriteSlot | ReadArea)], \
        "after a failure the next write waits"
    assert n1.voter.next_deadline() == pytest.approx(
        (late if failure == "late" else 0.01 if "write" in failure else 0.02)
        + TIMING.renew_every / 2)


def test_a_restarted_process_waits_out_io_in_flight_before_it_writes() -> None:
    voter = DiskVoter("disk", AREA, "n1", TIMING, incarnation=2, started_at=10.0, io_limit=3.0)
    (answer,) = voter.on_acquire(AcquireRequest(1, 2, ("config",), "n1", "disk", 1.0), 11.0)
    assert isinstance(answer, Answer) and answer.reply.granted == ()
    assert answer.reply.refused[0][2] == pytest.approx(10.0 + 3.0 * 1.01 - 11.0)
    assert voter.tick(12.0) == []


def test_a_request_for_another_node_or_voter_is_a_programming_error(disk: bytearray) -> None:
    n1 = Node(disk, "n1")
    with pytest.raises(ValueError, match="disk voter of n1 got a request of n2"):
        n1.voter.on_acquire(AcquireRequest(1, 1, ("config",), "n2", "disk", 1.0), 0.0)
    with pytest.raises(RuntimeError, match="no read in flight"):
        n1.voter.on_read(bytes(AREA.length), 0.0)


def test_a_longer_lease_than_the_voters_own_is_refused(disk: bytearray) -> None:
    n1 = Node(disk, "n1")
    n1.round += 1
    req = AcquireRequest(1, 1, ("config",), "n1", "disk", 2.62)
    n1.run(n1.voter.on_acquire(req, 0.0), 0.0)
    assert n1.replies[-1].granted == () and n1.claims() == ()


# The vote as data: what the other slot holds, how long (own clock) this node has seen those
# bytes when its deciding read is submitted, and the vote on "config".
L_LONG = 2.62
VOTES = [
    ("the other slot was never written", None, 0.0, True),
    ("the other node claims another name", SlotRecord(1, 1, 1, 1.0, ("db",)), 0.0, True),
    ("the other node claims it, just seen", SlotRecord(1, 1, 1, 1.0, ("config",)), 0.0, False),
    ("seen unchanged a hair short of W", SlotRecord(1, 1, 1, 1.0, ("config",)),
     WINDOW - 1e-6, False),
    ("seen unchanged for W", SlotRecord(1, 1, 1, 1.0, ("config",)), WINDOW, True),
    ("its longer lease, seen for W", SlotRecord(1, 1, 1, L_LONG, ("config",)), WINDOW, False),
    ("its longer lease, seen for its window", SlotRecord(1, 1, 1, L_LONG, ("config",)),
     L_LONG * (1 + TIMING.drift), True),
]


@pytest.mark.parametrize(("case", "other", "seen_for", "granted"), VOTES,
                         ids=[case for case, *_ in VOTES])
def test_the_vote(disk: bytearray, case: str, other: SlotRecord | None, seen_for: float,
                  granted: bool) -> None:
    if other is not None:
        disk[512:1024] = encode_slot(AREA, other)
    n1 = Node(disk, "n1", started_at=0.0)  # its first read sees the other slot at 0
    if seen_for:
        n1.ask(("config",), seen_for / 2)  # a read in between sees the same bytes
    reply = n1.ask(("config",), seen_for)
    assert (reply.granted == ("config",)) is granted, case
    assert (n1.claims() == ("config",)) is granted, "a refused claim is taken off again"
