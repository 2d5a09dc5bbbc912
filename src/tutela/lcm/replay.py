"""Replay protection for authenticated frames (per-sender incarnation and seq window), and
the per-reason counters of dropped frames.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

from tutela.lcm.frame import REASONS, FrameRejected

WINDOW: Final = 1024


@dataclass
class _Sender:
    incarnation: int
    highest: int
    seen: int
    """Bit i set: seq (highest - i) was accepted."""


class ReplayGuard:
    """Accepts each (sender, incarnation, seq) once; feed it only frames open_frame accepted.

    A frame is accepted if it comes from the sender's newest incarnation and its seq is new
    and no more than `window - 1` below the highest seq seen, so frames that overtake each
    other on different paths are each accepted once.
    """

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self._senders: dict[str, _Sender] = {}

    def accept(self, sender: str, incarnation: int, seq: int) -> bool:
        """Record the frame, or raise FrameRejected("replay" | "stale-incarnation").

        Returns True when this frame is the first from a new incarnation of `sender` (also
        its first frame ever): the peer (re)started, and its volatile state is gone.
        """
        state = self._senders.get(sender)
        if state is None or incarnation > state.incarnation:
            self._senders[sender] = _Sender(incarnation, seq, 1)
            return True
        if incarnation < state.incarnation:
            raise FrameRejected("stale-incarnation",
                                f"{sender} incarnation {incarnation} < {state.incarnation}")
        self._accept_seq(state, sender, seq)
        return False

    def _accept_seq(self, state: _Sender, sender: str, seq: int) -> None:
        if seq > state.highest:
            # Slide the window forward; bits that fall off its end are forgotten.
            shift = seq - state.highest
            state.seen = ((state.seen << min(shift, self.window)) | 1) & self._mask
            state.highest = seq
            return
        age = state.highest - seq
        if age >= self.window:
            raise FrameRejected("replay", f"{sender} seq {seq} is older than the window")
        if state.seen >> age & 1:
            raise FrameRejected("replay", f"{sender} seq {seq} is a duplicate")
        state.seen |= 1 << age

    @property
    def _mask(self) -> int:
        return (1 << self.window) - 1

    def seen(self, sender: str, incarnation: int, seq: int) -> bool:
        """Whether exactly this frame was accepted already (`accept` would call it a
        duplicate); asks only, records nothing. A copy of a frame sent on every path can
        then be dropped before it is decrypted: its first copy was authenticated."""
        state = self._senders.get(sender)
        if state is None or incarnation != state.incarnation or seq > state.highest:
            return False
        age = state.highest - seq
        return age < self.window and bool(state.seen >> age & 1)

    def forget(self, sender: str) -> None:
        """Drop what is known of `sender` (the node left the cluster)."""
        self._senders.pop(sender, None)

    def known(self, sender: str) -> tuple[int, int] | None:
        """(incarnation, highest seq) accepted from `sender`, or None."""
        state = self._senders.get(sender)
        return None if state is None else (state.incarnation, state.highest)


class DropCounters:
    """How many received frames were dropped, per reason (the FrameRejected vocabulary)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, reason: str, n: int = 1) -> None:
        """Add `n` drops for `reason`; reasons outside REASONS (a transport's own) are kept too."""
        self._counts[reason] += n

    def snapshot(self) -> dict[str, int]:
        """Every reason in REASONS (zero if none), then any other reason counted."""
        counts: dict[str, int] = {reason: self._counts[reason] for reason in REASONS}
        counts.update(self._counts)
        return counts
