"""FrameSplitter: reassembly from any chunking, resynchronisation after garbage and damage."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutela.lcm.frame import MAX_FRAME, TAG_SIZE, Opener, Sealer
from tutela.lcm.stream import MAX_PENDING, FrameSplitter

KEY = bytes(range(32))


def make_frames(n: int, size: int = 10) -> list[bytes]:
    sealer = Sealer(KEY, "demo", "alpha", 1)
    return [sealer.seal("beta", "STATUS", {"i": i, "pad": "TU" * size}) for i in range(n)]


FRAMES = make_frames(3)
STREAM = b"".join(FRAMES)


def checked() -> FrameSplitter:
    return FrameSplitter(check=Opener(KEY, "demo", "beta").check)


def run(splitter: FrameSplitter, chunks: Iterable[bytes]) -> list[bytes]:
    """Feed every chunk; after each, every byte fed is emitted, skipped or buffered."""
    out: list[bytes] = []
    fed = 0
    for chunk in chunks:
        out += splitter.feed(chunk)
        fed += len(chunk)
        assert splitter.buffered < splitter.capacity
        assert sum(map(len, out)) + splitter.skipped_bytes + splitter.buffered == fed
    return out


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --- reassembly -------------------------------------------------------------------------

@pytest.mark.parametrize("make", [FrameSplitter, checked])
def test_split_at_every_byte_boundary(make: type[FrameSplitter]) -> None:
    for point in range(len(STREAM) + 1):
        assert run(make(), cut(STREAM, [point])) == FRAMES, point


@pytest.mark.parametrize("make", [FrameSplitter, checked])
def test_one_byte_at_a_time(make: type[FrameSplitter]) -> None:
    splitter = make()
    assert run(splitter, (bytes([b]) for b in STREAM)) == FRAMES
    assert splitter.skipped_bytes == 0
    assert splitter.buffered == 0


@given(st.lists(st.integers(0, len(STREAM)), max_size=20), st.booleans())
def test_any_chunking(points: list[int], with_check: bool) -> None:
    splitter = checked() if with_check else FrameSplitter()
    assert run(splitter, cut(STREAM, points)) == FRAMES
    assert splitter.skipped_bytes == 0


def test_many_frames_in_one_chunk() -> None:
    frames = make_frames(200, size=0)
    for splitter in (FrameSplitter(), checked()):
        assert run(splitter, [b"".join(frames)]) == frames


def test_largest_frame_passes() -> None:
    body = b"x" * MAX_FRAME
    frame = b"TU\x02\x00" + struct.pack(">I", len(body)) + body + bytes(TAG_SIZE)
    splitter = FrameSplitter()
    assert run(splitter, cut(frame, range(0, len(frame), 65536))) == [frame]


# --- resynchronisation ------------------------------------------------------------------

@given(st.binary(max_size=200).filter(lambda g: b"TU" not in g))
def test_garbage_prefix_without_magic_is_skipped(garbage: bytes) -> None:
    splitter = FrameSplitter()
    assert run(splitter, [garbage, STREAM]) == FRAMES
    assert splitter.skipped_bytes == len(garbage)


@settings(deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([b"T", b"TU", b"TU\x02\x00\x00\x00",
                                                          b"TU\x02\x00\x00\x00\x01\x00"]),
                max_size=12),
       st.lists(st.integers(0, 2000), max_size=10))
def test_checked_splitter_recovers_after_any_garbage(parts: list[bytes],
                                                     points: list[int]) -> None:
    # Garbage made of random bytes and of magics with plausible lengths.
    garbage = b"".join(parts)
    data = garbage + STREAM
    assert run(checked(), cut(data, [p for p in points if p <= len(data)])) == FRAMES


def test_many_fake_headers_cannot_hold_back_a_frame() -> None:
    fake = b"TU\x02\x00" + struct.pack(">I", MAX_FRAME)  # would wait for 1 MiB each
    splitter = checked()
    assert run(splitter, [fake * (MAX_PENDING * 3), STREAM]) == FRAMES
    assert splitter.skipped_bytes == len(fake) * MAX_PENDING * 3


def test_absurd_length_is_skipped_at_once() -> None:
    bad = b"TU\x02\x00" + struct.pack(">I", MAX_FRAME + 1)
    splitter = FrameSplitter()
    assert run(splitter, [bad + STREAM]) == FRAMES
    assert splitter.skipped_bytes == len(bad)


def test_smaller_max_frame_for_slow_lines() -> None:
    big = Sealer(KEY, "demo", "alpha", 1).seal("beta", "big", {"x": "y" * 500})
    splitter = FrameSplitter(max_frame=256)
    assert run(splitter, [big, FRAMES[0]]) == [FRAMES[0]]
    with pytest.raises(ValueError):
        FrameSplitter(max_frame=MAX_FRAME + 1)


def test_body_damage_without_check_keeps_the_frame_boundaries() -> None:
    damaged = bytearray(STREAM)
    damaged[len(FRAMES[0]) + 20] ^= 0x40  # inside the second frame's body
    out = run(FrameSplitter(), [bytes(damaged)])
    assert out[0] == FRAMES[0] and out[2] == FRAMES[2]
    assert not Opener(KEY, "demo", "beta").check(out[1])  # opening it counts a bad-mac


def test_lost_bytes_without_check_still_recover_later_frames() -> None:
    frames = make_frames(4)
    damaged = frames[0][:30] + frames[0][31:] + b"".join(frames[1:])  # one byte lost
    out = run(FrameSplitter(), [damaged])
    assert frames[2] in out and frames[3] in out


def _damage(frame: bytes, kind: str, at: int, byte: int) -> bytes:
    at %= len(frame)
    if kind == "flip":
        return frame[:at] + bytes([frame[at] ^ (byte or 1)]) + frame[at + 1:]
    if kind == "lose":
        return frame[:at] + frame[at + byte % 8 + 1:]
    return frame[:at] + bytes([byte]) * (byte % 8 + 1) + frame[at:]  # "insert"


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 4), st.sampled_from(["flip", "lose", "insert"]), st.integers(0, 10_000),
       st.integers(0, 255), st.lists(st.integers(0, 3000), max_size=8))
def test_checked_splitter_delivers_every_intact_frame(victim: int, kind: str, at: int,
                                                      byte: int, points: list[int]) -> None:
    frames = make_frames(5)
    sent = list(frames)
    sent[victim] = _damage(frames[victim], kind, at, byte)
    data = b"".join(sent)
    intact = [f for f, s in zip(frames, sent, strict=True) if f in s]  # bytes before it are noise
    assert run(checked(), cut(data, [p for p in points if p <= len(data)])) == intact


@given(st.binary(min_size=1, max_size=4096), st.integers(1, 512))
def test_buffering_stays_bounded_on_noise(noise: bytes, chunk: int) -> None:
    splitter = FrameSplitter(max_frame=64)
    run(splitter, cut(noise, range(0, len(noise), chunk)))
    assert splitter.buffered < splitter.capacity


def test_buffering_bounded_by_largest_frame() -> None:
    header = b"TU\x02\x00" + struct.pack(">I", 1000)
    out = run(FrameSplitter(max_frame=1000), [header, b"\x00" * 500, b"\x00" * 600])
    assert len(out) == 1  # complete: emitted, unchecked
    splitter = checked()
    run(splitter, [header, b"\x00" * 500, b"\x00" * 100_000])  # complete, fails the check
    assert splitter.buffered == 0


def test_whole_frames_in_a_chunk_are_cut_without_the_scan(
        monkeypatch: pytest.MonkeyPatch) -> None:
    splitter = FrameSplitter()
    monkeypatch.setattr(splitter, "_discover_next", lambda: pytest.fail("scanned"))
    assert run(splitter, [FRAMES[0], FRAMES[1] + FRAMES[2], b""]) == FRAMES


@given(st.lists(st.sampled_from([*FRAMES, FRAMES[0][:9], FRAMES[1][9:], b"TU", b"x" * 9,
                                 b"TU\x02\x00\xff\xff\xff\xff"]), max_size=8))
def test_any_chunks_give_what_the_same_bytes_one_at_a_time_give(chunks: list[bytes]) -> None:
    fast, slow = FrameSplitter(), FrameSplitter()
    assert run(fast, chunks) == run(slow, (bytes([b]) for b in b"".join(chunks)))
    assert (fast.skipped_bytes, fast.buffered) == (slow.skipped_bytes, slow.buffered)
