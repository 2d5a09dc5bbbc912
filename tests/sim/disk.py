"""The shared disk of the simulation's `disk` family: sectors with a history in true time, and
I/O that is delayed, fails, tears, and is cut off per node, within the guarantees
docs/leases.md ("A shared-disk voter") states: a write lands (or not) at one instant between
its submission and its completion, a read sector by sector at instants in that interval, and
no I/O is in flight longer than `io_limit`.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from tutela.arbiter.disk_voter import DiskArea, ReadArea, WriteSlot

IO_LIMIT = 1.5
"""x L: the longest any I/O stays in flight (the device's command timeout)."""


@dataclass(frozen=True)
class Submitted:
    """An I/O in flight: `apply_at` (a write's landing, None: it never lands), `done_at`."""

    node: str
    op: WriteSlot | ReadArea
    submitted_at: float
    done_at: float
    ok: bool
    apply_at: float | None = None
    data: bytes = b""
    """What a write puts on the disk when it lands (torn: part old, part new)."""


class SimDisk:
    """The shared area: per sector, the bytes it held from each true instant on."""

    def __init__(self, rng: random.Random, area: DiskArea, lease: float) -> None:
        self.rng, self.area, self.L = rng, area, lease
        self.io_limit = IO_LIMIT * lease
        self.times: list[list[float]] = [[0.0] for _ in area.nodes]
        self.sectors: list[list[bytes]] = [[bytes(area.sector_size)] for _ in area.nodes]
        self.slow = 0.0
        """Share of I/O that takes up to io_limit (a path failing over, a busy array)."""
        self.fail = 0.0
        """Share of I/O that fails (a write that fails lands or not; a torn one in part)."""
        self.torn = 0.0
        self.cut: set[str] = set()
        """Nodes that lost their path to the disk: their I/O fails, late."""

    def submit(self, now: float, node: str, op: WriteSlot | ReadArea) -> Submitted:
        """When `op` completes and how; a write's landing is scheduled by the caller."""
        if node in self.cut:
            return Submitted(node, op, now, now + self.rng.uniform(0, self.io_limit), False)
        slow = self.rng.random() < self.slow
        done = now + self.rng.uniform(0, self.io_limit if slow else 0.005 * self.L)
        ok = self.rng.random() >= self.fail
        if isinstance(op, ReadArea):
            return Submitted(node, op, now, done, ok)
        lands = ok or self.rng.random() < 0.5
        data = op.data
        if not ok and self.rng.random() < self.torn:  # violates atomic sectors: no vote
            data = op.data[:self.area.sector_size // 2] + self.current(op.offset)[
                self.area.sector_size // 2:]
        return Submitted(node, op, now, done, ok,
                         self.rng.uniform(now, done) if lands else None, data)

    def land(self, write: Submitted, now: float) -> None:
        assert isinstance(write.op, WriteSlot)
        slot = write.op.offset // self.area.sector_size
        self.times[slot].append(now)
        self.sectors[slot].append(write.data)

    def current(self, offset: int) -> bytes:
        return self.sectors[offset // self.area.sector_size][-1]

    def read(self, io: Submitted) -> bytes | None:
        """The area as `io` read it: each sector as it was at an instant of its own between
        submission and completion (a read of several sectors is not atomic)."""
        if not io.ok:
            return None
        parts = []
        for times, sectors in zip(self.times, self.sectors, strict=True):
            at = self.rng.uniform(io.submitted_at, io.done_at)
            parts.append(sectors[bisect.bisect_right(times, at) - 1])
        return b"".join(parts)

    def chaos(self) -> str:
        """Change how the disk behaves; says what changed."""
        kind = self.rng.choice(("heal", "slow", "failing", "cut", "cut", "torn"))
        if kind == "heal":
            self.slow, self.fail, self.torn, self.cut = 0.0, 0.0, 0.0, set()
        elif kind == "slow":
            self.slow = self.rng.choice((0.05, 0.2, 0.5))
        elif kind == "failing":
            self.fail = self.rng.choice((0.05, 0.3, 1.0))
        elif kind == "torn":
            self.fail, self.torn = max(self.fail, 0.1), 0.5
        else:
            self.cut ^= {self.rng.choice(self.area.nodes)}
        return (f"disk {kind}: slow={self.slow} fail={self.fail} torn={self.torn} "
                f"cut={sorted(self.cut)}")
