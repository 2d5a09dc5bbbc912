"""One served cluster at the witness: its voter, replay guard, drop counters and frame sealer.

Sans-IO: frames and the monotonic `now` in, envelopes and reply payloads out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tutela.arbiter.messages import AcquireRequest, Release
from tutela.arbiter.voter import Voter
from tutela.lcm.frame import Envelope, FrameRejected, Opener, Sealer
from tutela.lcm.messenger import HEARTBEAT, REPLY
from tutela.lcm.replay import DropCounters, ReplayGuard
from tutela.witness.registry import ClusterRecord, timing_json


@dataclass
class NodeSeen:
    last_heard: float
    """Monotonic time of the node's last authenticated frame."""
    address: str


class Served:
    """A cluster the witness serves: one vote, in the witness's own clock."""

    def __init__(self, record: ClusterRecord, incarnation: int, started_at: float,
                 seq: int = 0) -> None:
        self.record = record
        self.voter = Voter(record.voter, record.timing, started_at,
                           longest_before=record.longest_lease_before)
        self.guard = ReplayGuard()
        self.counters = counters("wrong-sender", "unknown-kind")
        self.incarnation = incarnation
        self.sealer = Sealer(record.key, record.name, record.voter, incarnation)
        self.sealer.seq = seq  # a re-enrolled cluster's nodes may remember our earlier seqs
        self.opener = Opener(record.ring.accepted, record.name, record.voter)
        self.nodes: dict[str, NodeSeen] = {}

    @property
    def name(self) -> str:
        return self.record.name

    def longest_grant(self, now: float) -> float:
        """The longest lease this voter may still have grants of: its own once its quiet
        period is over, else also what it was quiet for."""
        own = self.record.timing.duration
        return own if not self.voter.quiet(now) else max(own, self.record.longest_lease_before)

    def rekeyed(self, record: ClusterRecord) -> None:
        """Take the record's new key ring (a key rotation step): seal under its sending key
        (a new run whose seqs continue), accept its keys."""
        if record.key != self.record.key:
            seq = self.sealer.seq
            self.sealer = Sealer(record.key, record.name, record.voter, self.incarnation)
            self.sealer.seq = seq
        self.record = record
        self.opener.set_keys(record.ring.accepted)

    def open(self, data: bytes, node: str) -> Envelope:
        """Authenticate and decrypt a frame from `node` (the name its connection's handshake
        proved) and pass it through the replay window; raises FrameRejected with the reason."""
        envelope = self.opener.open(data)
        if envelope.sender != node:
            raise FrameRejected("wrong-sender", f"{envelope.sender} on {node}'s connection")
        self.guard.accept(envelope.sender, envelope.incarnation, envelope.seq)
        return envelope

    def heard(self, node: str, address: str, now: float) -> None:
        self.nodes[node] = NodeSeen(now, address)

    def answer(self, envelope: Envelope, now: float) -> dict[str, Any] | None:
        """The reply payload for a call (None when nothing is to be sent back)."""
        if envelope.kind in (HEARTBEAT, REPLY):
            return None  # a heartbeat only proves the node alive; we make no calls
        try:
            reply: dict[str, Any] = {"ok": True, "result": self._handle(envelope, now)}
        except ValueError as error:
            reply = {"ok": False, "error": str(error)}
        call = envelope.payload.get("call")
        return None if call is None else {**reply, "call": call}

    def _handle(self, envelope: Envelope, now: float) -> dict[str, Any]:
        if envelope.kind == AcquireRequest.TYPE:
            request = AcquireRequest.from_payload(envelope.payload)
            _check_sender(request.candidate, envelope.sender)
            return self.voter.on_acquire(request, now).to_payload()
        if envelope.kind == Release.TYPE:
            release = Release.from_payload(envelope.payload)
            _check_sender(release.holder, envelope.sender)
            self.voter.on_release(release, now)
            return {}
        self.counters.count("unknown-kind")
        raise ValueError(f"a witness does not serve {envelope.kind!r}; it answers "
                         f"{AcquireRequest.TYPE!r} and {Release.TYPE!r}")

    def status(self, now: float, connections: dict[str, int]) -> dict[str, Any]:
        """For `tutela-witness list`; `connections`: node -> open connections now."""
        record = self.record
        return {
            "voter": record.voter, "lease": timing_json(record.timing),
            "quiet": round(max(0.0, self.voter.quiet_until - now), 3),
            "enrolled_at": record.enrolled_at, "enrolled_by": record.enrolled_by,
            "nodes": {name: {"last_heard": round(now - seen.last_heard, 3),
                             "address": seen.address, "connections": connections.get(name, 0)}
                      for name, seen in sorted(self.nodes.items())},
            "grants": {name: {"holder": holder, "remaining": round(remaining, 3)}
                       for name, (holder, remaining) in self.voter.grants(now).items()},
            "dropped_frames": self.counters.snapshot(),
        }


def counters(*extra: str) -> DropCounters:
    """Drop counters that list the witness's own reasons too, at zero: a stable JSON shape."""
    drops = DropCounters()
    for reason in extra:
        drops.count(reason, 0)
    return drops


def _check_sender(claimed: str, sender: str) -> None:
    # The reply goes to the sender; a request on another node's behalf is a confused peer.
    if claimed != sender:
        raise ValueError(f"the request names {claimed!r} but comes from {sender!r}")
