"""Cut a byte stream (TCP, serial line) into raw frames, skipping garbage to resynchronise.

Sans-IO: feed it the bytes as they arrive, in any chunks; it returns whole frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from tutela.lcm.frame import HEADER, HEADER_SIZE, MAGIC, MAX_FRAME, TAG_SIZE

MAX_PENDING: Final = 16
"""Most candidate frame starts kept while waiting for their bytes (bounds work on garbage)."""


class FrameSplitter:
    """Finds frames (header + length's bytes + tag) in a byte stream.

    A candidate is any MAGIC whose header announces a body of at most `max_frame` bytes; every
    byte outside an emitted frame is counted in `skipped_bytes`.

    Without `check`, the earliest candidate is emitted once its bytes are in, valid or not
    (open_frame then rejects it); a corrupted length can so swallow the next frame.

    With `check` (e.g. `Opener.check`) the splitter is speculative, as a serial line needs: a
    complete candidate that fails the check is skipped, and a later candidate that passes is
    emitted even while an earlier one still waits for bytes (a valid frame cannot hold
    another valid one: that would take a forged tag inside its ciphertext). So the frame
    after a corrupted one comes out as soon as it is complete.
    """

    def __init__(self, check: Callable[[bytes], bool] | None = None,
                 max_frame: int = MAX_FRAME) -> None:
        if not 0 <= max_frame <= MAX_FRAME:
            raise ValueError(f"max_frame must be between 0 and {MAX_FRAME}")
        self._check = check
        self._max_frame = max_frame
        self._buf = bytearray()
        self._scan = 0
        """Every MAGIC that starts before this offset has been looked at."""
        self._pending: list[int] = []
        """Offsets of candidates still waiting for bytes, ascending."""
        self.skipped_bytes = 0

    @property
    def capacity(self) -> int:
        """Most bytes ever held between calls: one largest frame."""
        return HEADER_SIZE + self._max_frame + TAG_SIZE

    @property
    def buffered(self) -> int:
        """Bytes held back, waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by `data`, in stream order."""
        if not self._buf and self._check is None:
            whole = self._whole_frames(data)
            if whole is not None:
                return whole
        self._buf += data
        frames: list[bytes] = []
        head = 0  # bytes before head have been emitted or skipped
        while (found := self._next_frame()) is not None:
            start, end = found
            self.skipped_bytes += start - head
            frames.append(bytes(self._buf[start:end]))
            head = end
            # Candidates inside the emitted frame were false starts.
            self._pending = [p for p in self._pending if p >= end]
            self._scan = max(self._scan, end)
        self._compact(head)
        return frames

    def _whole_frames(self, data: bytes) -> list[bytes] | None:
        """The frames of `data` if it is nothing but whole frames, back to back, else None.
        What the scan would find in it then (nothing skipped, nothing left): a TCP read
        usually holds whole frames, and a heartbeat is then cut without the scan's work."""
        frames, start = [], 0
        while start < len(data):
            if len(data) - start < HEADER_SIZE or not data.startswith(MAGIC, start):
                return None
            length: int = HEADER.unpack_from(data, start)[3]
            end = start + HEADER_SIZE + length + TAG_SIZE
            if length > self._max_frame or end > len(data):
                return None
            frames.append(data[start:end])
            start = end
        return frames

    def _next_frame(self) -> tuple[int, int] | None:
        """(start, end) of the next frame to emit, or None until more bytes arrive."""
        while True:
            for start in list(self._pending):
                end = start + HEADER_SIZE + self._length_at(start) + TAG_SIZE
                if end > len(self._buf):
                    if self._check is None:
                        return None  # not speculative: wait for the earliest candidate
                    continue
                if self._check is None or self._check(bytes(self._buf[start:end])):
                    return start, end
                self._pending.remove(start)
            # Look for candidates one at a time, so a chunk holding many frames does not
            # fill the pending list with the starts of frames not yet reached.
            if not self._discover_next():
                return None

    def _discover_next(self) -> bool:
        """Add the next candidate at or after self._scan; False if there is none yet."""
        buf = self._buf
        while (at := buf.find(MAGIC, self._scan)) >= 0:
            if len(buf) - at < HEADER_SIZE:
                self._scan = at  # look again when the header is complete
                return False
            self._scan = at + 1
            if self._length_at(at) <= self._max_frame:
                self._pending.append(at)
                if len(self._pending) > MAX_PENDING:
                    del self._pending[0]  # the longest waiting is the likeliest garbage
                return True
        # A last byte equal to MAGIC[0] may begin a MAGIC that the next chunk completes.
        self._scan = max(self._scan, len(buf) - 1 if buf.endswith(MAGIC[:1]) else len(buf))
        return False

    def _length_at(self, start: int) -> int:
        length: int = HEADER.unpack_from(self._buf, start)[3]
        return length

    def _compact(self, head: int) -> None:
        """Drop the bytes that no frame can start in any more, counting the garbage."""
        keep = min([*self._pending[:1], self._scan, len(self._buf)])
        keep = max(keep, head)
        self.skipped_bytes += keep - head
        del self._buf[:keep]
        self._scan -= keep
        self._pending = [p - keep for p in self._pending]
