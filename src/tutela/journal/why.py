"""`tutela why`: the last move (or failed move) of a hierarchy, told in a few plain
sentences with its cause chain and timings, from the merged journals of the nodes
(docs/why.md). Pure: records in, an Explanation out.

The move is the last `restore.finished`, `restore.failed` or `takeover.blocked` of the
hierarchy. Its story is what the records since the hierarchy was last in service elsewhere
say: the outage of the old owner as the new one saw it (its comm paths going DEAD, then
the node, tied by the outage's correlation id), the local recovery and the failed resource
on the old owner, the old owner's remove (a switchover, a give-up), earlier refusals, the
lease won and with whose votes, fencing, and the restore with its duration.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tutela.journal.events import Event, merged

ANCHORS = ("restore.finished", "restore.failed", "takeover.blocked")
"""The records that end a move: in service, a failed restore, a takeover refused."""
HIERARCHY_KINDS = frozenset({
    "lease.won", "lease.lost", "lease.released", "restore.started", "restore.finished",
    "restore.failed", "remove.started", "remove.finished", "remove.failed", "quorum.lost",
    "takeover.blocked", "fence.self"})
RESOURCE_KINDS = frozenset({"recovery.local", "resource.osf"})
SELF_FENCING: Mapping[str, str] = {
    "lease.lost": "lost {root}'s lease",
    "fence.self": "took {root} out of service itself (self-fence)",
    "quorum.lost": "ran the quorum-loss action for {root}",
}
"""What the old owner's records of losing its lease say, by kind."""
REASONS: Mapping[str, str] = {
    "no_quorum": "no quorum (no majority of the voters granted the lease)",
    "fence_failed": "fencing the old owner failed",
    "address_answers": "its address still answers elsewhere",
    "watchdog_unavailable": "this node cannot arm its watchdog",
    "failover_blocked": "failover is blocked for the node that ran it (nodes[].failover: "
                        "false)",
    "failover_off": "failover is off for the hierarchy (hierarchies[].failover: false)",
    "no_eligible_node": "no node may run it",
    "damped": "held after repeated failovers (failover_damping)",
    "maintenance": "the node that ran it is in a maintenance stop",
    "dependency": "a hierarchy it depends on is not up",
    "lease_wait": "waiting for the old owner's lease to expire",
    "unleased": "the node that ran it without its lease vanished: waiting for it to take "
                "it out of service",
}
"""`takeover.blocked` details.reason (tutela.engine.stuck.Reason) in words."""


@dataclass(frozen=True)
class Explanation:
    hierarchy: str
    outcome: str
    """failover, switchover, restore (an administrator's), failed (the restore) or refused."""
    node: str
    """Where it ended: in service, failed, or refused."""
    previous: str | None
    """The node where it last ran before, if the records say."""
    at: str
    sentences: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds: detection, lease, fence, remove, recovery, restore, total."""
    records: list[Event] = field(default_factory=list)
    """The records the sentences are made of, by time."""

    def to_json(self) -> dict[str, Any]:
        return {"hierarchy": self.hierarchy, "outcome": self.outcome, "node": self.node,
                "previous": self.previous, "at": self.at, "sentences": self.sentences,
                "timings": self.timings, "records": [r.to_json() for r in self.records]}


def hierarchy_of(event: Event, members: Mapping[str, str]) -> str | None:
    """The hierarchy (root) a record is about; `members`: resource tag -> its root (a
    resource record names only its resource)."""
    if event.kind in HIERARCHY_KINDS or event.kind in RESOURCE_KINDS:
        return members.get(event.subject, event.subject)
    found = event.details.get("hierarchy")
    return str(found) if found is not None else None


def explain(events: Iterable[Event], hierarchy: str | None = None,
            members: Mapping[str, str] | None = None) -> Explanation | None:
    """The last move of `hierarchy` (of any hierarchy when None); None if none is
    recorded."""
    members = members or {}
    ordered = merged([events])
    ends = [i for i, e in enumerate(ordered) if e.kind in ANCHORS
            and (hierarchy is None or hierarchy_of(e, members) == hierarchy)]
    if not ends:
        return None
    anchor = ordered[ends[-1]]
    root = hierarchy_of(anchor, members) or anchor.subject
    return _Story(ordered[:ends[-1] + 1], root, anchor, members).tell()


# --- the story ------------------------------------------------------------------------------

def _seconds(start: str, end: str) -> float:
    begun, ended = datetime.datetime.fromisoformat(start), datetime.datetime.fromisoformat(end)
    return round((ended - begun).total_seconds(), 3)


def _clock(at: str) -> str:
    """HH:MM:SS.mmm of a record's time (UTC)."""
    return at[11:23]


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _names(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def _after(text: str, marker: str) -> str:
    """What follows `marker` in a cause ("node node1 is DEAD: no heartbeat for 3s")."""
    return text.split(marker, 1)[1] if marker in text else text


class _Story:
    """The records of one move, picked from everything before its anchor."""

    def __init__(self, before: list[Event], root: str, anchor: Event,
                 members: Mapping[str, str]) -> None:
        self.root, self.anchor, self.here = root, anchor, anchor.node
        mine = [e for e in before if hierarchy_of(e, members) == root]
        self.restore_started = self._restore_started(mine)
        upto = self.restore_started.at if self.restore_started else anchor.at
        in_service = [e for e in mine if e.kind == "restore.finished" and e.at < upto
                      and e is not anchor]
        self.last_in_service = in_service[-1] if in_service else None
        since = self.last_in_service.at if self.last_in_service else ""
        self.window = [e for e in mine if e.at > since]
        self.lease = self._last(self.window, "lease.won", self.here)
        self.previous = self.last_in_service.node if self.last_in_service else None
        self.everything = [e for e in before if e.at > since]
        self.used: list[Event] = []
        self.told: list[tuple[str, str]] = []
        """(the time of its first record, sentence) of each cause and step."""
        self.timings: dict[str, float] = {}
        self.first_sign: str | None = None
        self.trigger: Event | None = None
        """The node.down that left the hierarchy running nowhere (the last one here)."""

    def _restore_started(self, mine: list[Event]) -> Event | None:
        if not self.anchor.kind.startswith("restore."):
            return None
        return next((e for e in reversed(mine) if e.kind == "restore.started"
                     and e.node == self.here and e.at <= self.anchor.at
                     and e.correlation == self.anchor.correlation), None)

    @staticmethod
    def _last(events: list[Event], kind: str, node: str) -> Event | None:
        return next((e for e in reversed(events) if e.kind == kind and e.node == node), None)

    def _use(self, *events: Event | None) -> None:
        for event in events:
            if event is not None and event not in self.used:
                self.used.append(event)

    def _sign(self, at: str) -> None:
        """The earliest sign of trouble (or of the administrator's request)."""
        if self.first_sign is None or at < self.first_sign:
            self.first_sign = at

    def tell(self) -> Explanation:
        outcome = self._outcome()
        self._outages()
        self._resource_failures()
        self._old_owner_remove()
        self._self_fencing()
        self._earlier_refusals()
        self._lease()
        self._fencing()
        self._end()
        headline = self._headline(outcome)  # after the steps: it names what they found
        steps = [text for _, text in sorted(self.told, key=lambda told: told[0])]
        self._use(self.anchor)
        records = sorted(self.used, key=lambda e: (e.at, e.node))
        return Explanation(self.root, outcome, self.here, self.previous, self.anchor.at,
                           [headline, *steps, *self._total()], self.timings, records)

    def _say(self, at: str, sentence: str) -> None:
        self.told.append((at, sentence))

    # --- what happened, in one word and one sentence ----------------------------------

    def _old_remove(self) -> Event | None:
        return next((e for e in reversed(self.window) if e.kind == "remove.started"
                     and e.node != self.here), None)

    def _outcome(self) -> str:
        if self.anchor.kind == "takeover.blocked":
            return "refused"
        if self.anchor.kind == "restore.failed":
            return "failed"
        removed = self._old_remove()
        if removed is not None and removed.cause.startswith("switchover"):
            return "switchover"
        if self.lease is not None and self.lease.cause.startswith("no alive node"):
            return "failover"
        if removed is not None and removed.cause.startswith("giving it up"):
            return "failover"
        return "restore"

    def _headline(self, outcome: str) -> str:
        root, here, when = self.root, self.here, self.anchor.at[:23].replace("T", " ")
        moved = f"from {self.previous} to {here}" if self.previous not in (None, here) \
            else f"to {here}"
        if outcome == "refused":
            reason = str(self.anchor.details.get("reason", ""))
            return (f"{root} was not taken over by {here} at {when} UTC: "
                    f"{REASONS.get(reason, reason or 'refused')}. {here} said: "
                    f"{self.anchor.cause}.")
        if outcome == "failed":
            return f"{root} could not be restored on {here} ({when} UTC): {self.anchor.cause}."
        if outcome == "switchover":
            return f"{root} was switched over {moved}; in service there at {when} UTC."
        if outcome == "failover":
            return f"{root} failed over {moved}{self._because()}; in service there at " \
                   f"{when} UTC."
        asked = self.restore_started.cause if self.restore_started else "restored"
        return f"{root} was restored on {here} ({asked}); in service at {when} UTC."

    def _because(self) -> str:
        """Why a failover happened, in a few words: a resource failed, a node died."""
        failed = next((e.subject for e in self.window if e.kind == "resource.osf"), None)
        if failed is not None:
            return f" after {failed} failed on {self.previous or 'its node'}"
        dead = [e.subject for e in self.used if e.kind == "node.down"]
        if self.previous in dead:
            return f" because {self.previous} stopped answering"
        return f" because {_names(dead)} stopped answering" if dead else ""

    # --- the causes ---------------------------------------------------------------------

    def _dead_peers(self) -> list[str]:
        if self.lease is not None:
            return [str(p) for p in self.lease.details.get("dead", [])]
        down: dict[str, bool] = {}
        for event in self.everything:
            if event.node == self.here and event.kind in ("node.down", "node.up"):
                down[event.subject] = event.kind == "node.down"
        return [peer for peer, dead in down.items() if dead]

    def _outages(self) -> None:
        """How `here` stopped hearing the peers it saw DEAD: paths, then the node. Without
        the last owner's records (its node unreachable) the story has no start: then only
        the peer declared DEAD last, the one whose loss left the hierarchy running nowhere
        (a peer DEAD for hours before did not)."""
        downs = [d for d in map(self._node_down, self._dead_peers()) if d is not None]
        if not downs:
            return
        trigger = self.trigger = max(downs, key=lambda e: e.at)
        for node_down in downs:
            if node_down is trigger or self.last_in_service is not None:
                self._outage(node_down, node_down is trigger)

    def _node_down(self, peer: str) -> Event | None:
        return next((e for e in reversed(self.everything) if e.kind == "node.down"
                     and e.subject == peer and e.node == self.here), None)

    def _outage(self, node_down: Event, trigger: bool) -> None:
        peer = node_down.subject
        paths = [e for e in self.everything if e.kind == "path.down"
                 and e.node == self.here and e.details.get("peer") == peer
                 and e.at <= node_down.at and (e.correlation == node_down.correlation
                                               or not node_down.correlation)]
        first = paths[0].at if paths else node_down.at
        self._use(*paths, node_down)
        self._sign(first)
        self._say(first, self._outage_sentence(peer, paths, node_down))
        if paths and trigger:
            self.timings["detection"] = _seconds(paths[0].at, node_down.at)

    def _outage_sentence(self, peer: str, paths: list[Event], node_down: Event) -> str:
        silence = _after(node_down.cause, "DEAD: ")
        lines = "; ".join(f"path {p.subject} DEAD at {_clock(p.at)}" for p in paths)
        went = f" ({lines})" if lines else ""
        text = f"{self.here} stopped hearing {peer}{went}"
        if len(paths) > 1 and _seconds(paths[0].at, paths[-1].at) >= 1:
            text += (f"; it still heard {peer} on its last path for "
                     f"{_span(_seconds(paths[0].at, paths[-1].at))}")
        return f"{text}; {peer} was declared DEAD at {_clock(node_down.at)} ({silence})."

    def _resource_failures(self) -> None:
        """Local recovery and OSF on the old owner (or on any node before the move)."""
        failing = [e for e in self.window if e.kind in RESOURCE_KINDS]
        for tag in dict.fromkeys(e.subject for e in failing):
            records = [e for e in failing if e.subject == tag]
            self._use(*records)
            self._sign(records[0].at)
            self._say(records[0].at, self._failure_sentence(tag, records))

    def _failure_sentence(self, tag: str, records: list[Event]) -> str:
        node = records[0].node
        tries = [e for e in records if e.kind == "recovery.local"]
        failed = next((e for e in records if e.kind == "resource.osf"), None)
        if tries:
            first = tries[0]
            text = (f"On {node} the quick check of {tag} failed at {_clock(first.at)} "
                    f"({_after(first.cause, 'quick check failed: ')}); local recovery was "
                    f"tried {len(tries)} time(s)")
            if len(tries) > 1:
                text += f" up to {_clock(tries[-1].at)}"
        else:
            text = f"On {node} {tag} failed"
        if failed is None:
            return text + "."
        if tries:
            self.timings["recovery"] = _seconds(tries[0].at, failed.at)
        return text + f"; {tag} went out of service, failed, at {_clock(failed.at)}: " \
                      f"{failed.cause}."

    def _old_owner_remove(self) -> None:
        started = self._old_remove()
        if started is None:
            return
        ended = next((e for e in self.window if e.node == started.node and e.at >= started.at
                      and e.kind in ("remove.finished", "remove.failed")), None)
        released = next((e for e in self.window if e.kind == "lease.released"
                         and e.node == started.node and e.at >= started.at), None)
        self._use(started, ended, released)
        self._sign(started.at)
        text = f"{started.node} took {self.root} out of service at {_clock(started.at)} " \
               f"({started.cause})"
        if ended is not None:
            took = _seconds(started.at, ended.at)
            self.timings["remove"] = took
            verb = "took" if ended.kind == "remove.finished" else "failed after"
            text += f"; the remove {verb} {_span(took)}"
            if ended.kind == "remove.failed":
                text += f": {ended.cause}"
        if released is not None:
            text += f", and it gave the lease back at {_clock(released.at)}"
        self._say(started.at, text + ".")

    def _self_fencing(self) -> None:
        """The old owner losing its lease: the self-fence, the quorum-loss action."""
        for event in self.window:
            if event.node == self.here or event.kind not in SELF_FENCING:
                continue
            self._use(event)
            self._sign(event.at)
            what = SELF_FENCING[event.kind].format(root=self.root)
            self._say(event.at, f"{event.node} {what} at {_clock(event.at)}: {event.cause}.")

    def _earlier_refusals(self) -> None:
        """Refused takeovers and failed restores before the anchor, each once."""
        for event in self.window:
            if event is self.anchor or event.kind not in ("takeover.blocked", "restore.failed"):
                continue
            self._use(event)
            if event.kind == "restore.failed":
                self._say(event.at, f"{event.node}'s restore failed at "
                          f"{_clock(event.at)}: {event.cause}.")
            else:
                reason = str(event.details.get("reason", ""))
                self._say(event.at, f"{event.node} was refused at "
                          f"{_clock(event.at)}: {REASONS.get(reason, reason)}.")

    def _lease(self) -> None:
        lease = self.lease
        if lease is None:
            return
        self._use(lease)
        text = f"{self.here} won {self.root}'s lease at {_clock(lease.at)}"
        node_down = self.trigger
        if node_down is not None:
            self.timings["lease"] = _seconds(node_down.at, lease.at)
            text += f", {_span(self.timings['lease'])} after {node_down.subject} was " \
                    "declared DEAD"
        comma = "," if node_down is not None else ""
        if lease.cause.startswith("no alive node"):
            text += f"{comma} because no alive node ran it"
        else:
            text += f", {lease.cause}"
            self._sign(lease.at)
        self._say(lease.at, text + self._votes(lease) + ".")

    @staticmethod
    def _votes(lease: Event) -> str:
        """Whose votes: a majority of the voters, none of them one DEAD here."""
        voters = [str(v) for v in lease.details.get("voters", [])]
        dead = [str(p) for p in lease.details.get("dead", [])]
        if not voters:
            return ""
        text = f": a majority of the voters {_names(voters)} granted it"
        granting = [v for v in voters if v not in dead]
        if granting != voters:
            text += f" ({_names(v for v in voters if v in dead)} being DEAD, from among " \
                    f"{_names(granting)})"
        return text

    def _fencing(self) -> None:
        for event in self.window:
            if event.kind == "fence.peer":
                self._use(event)
                self._say(event.at, f"{event.node} fenced {event.subject} at "
                          f"{_clock(event.at)} with {_after(event.cause, ': ')}.")
            elif event.kind == "fence.failed":
                self._use(event)
                told = "" if event.cause == self.anchor.cause else f": {event.cause}"
                self._say(event.at, f"{event.node} tried to fence {event.subject} and "
                          f"failed at {_clock(event.at)}{told}.")

    def _end(self) -> None:
        started = self.restore_started
        if started is None:
            return
        self._use(started)
        took = _seconds(started.at, self.anchor.at)
        self.timings["restore"] = took
        if self.anchor.kind == "restore.finished":
            self._say(started.at, f"The restore on {self.here} took {_span(took)} "
                                  f"({_clock(started.at)} to {_clock(self.anchor.at)}).")
        else:
            self._say(started.at, f"The restore on {self.here} began at {_clock(started.at)} "
                                  f"and failed {_span(took)} later.")

    def _total(self) -> list[str]:
        if self.first_sign is None:
            return []
        total = _seconds(self.first_sign, self.anchor.at)
        self.timings["total"] = total
        end = {"restore.finished": "in service", "restore.failed": "the failed restore",
               "takeover.blocked": "the refusal"}[self.anchor.kind]
        return [f"From the first sign at {_clock(self.first_sign)} to {end} on "
                f"{self.here}: {_span(total)}."]
