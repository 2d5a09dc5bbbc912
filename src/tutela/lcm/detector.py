"""Heartbeat failure detection: a path is DEAD after `interval * misses` seconds of silence,
a node is DEAD when all its paths are. Sans-IO: the caller passes monotonic `now` in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PathId = tuple[str, str]
"""(peer node name, path name); the path name is opaque here."""
State = Literal["ALIVE", "DEAD"]
EventKind = Literal["path-up", "path-down", "node-up", "node-down"]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    node: str
    path: str | None
    """The path name for path events, None for node events."""
    at: float
    """When the state changed: for a heartbeat, its time; for a death, last heartbeat +
    interval * misses (the moment silence became death), not the time tick() ran."""


@dataclass
class _Path:
    last_heard: float | None = None
    alive: bool = False


class FailureDetector:
    """Per-path heartbeat timeouts and per-node liveness, from heartbeats and clock ticks.

    A new path is DEAD until its first heartbeat and adding it emits nothing, so a node is
    only ever reported ALIVE after it was heard. The events returned depend only on the
    heartbeat times, not on when tick() runs, as long as it runs by next_deadline().
    """

    def __init__(self, interval: float, misses: int) -> None:
        self._no_death_before = float("-inf")
        """No ALIVE path can be due before this: tick() scans the paths only from then on
        (every frame ticks; a scan per frame was a tenth of a 16-node daemon's CPU)."""
        self.set_timing(interval, misses)
        self._paths: dict[PathId, _Path] = {}
        self._by_node: dict[str, set[PathId]] = {}
        self._clock = float("-inf")
        """The latest `now` passed in; an earlier one counts as this."""

    def add_path(self, path: PathId, now: float) -> None:
        """Start watching `path` (DEAD until heard); adding a known path changes nothing."""
        self._observe(now)
        if path not in self._paths:
            self._paths[path] = _Path()
            self._by_node.setdefault(path[0], set()).add(path)

    def remove_path(self, path: PathId, now: float | None = None) -> list[Event]:
        """Stop watching `path`; a node-down event if it was the node's last ALIVE path.

        The event's time is `now`, or without it the latest time passed in.
        """
        events = [] if now is None else self.tick(now)
        state = self._paths.pop(path, None)
        if state is None:
            return events
        node = path[0]
        self._by_node[node].discard(path)
        if not self._by_node[node]:
            del self._by_node[node]
        if state.alive and not self._node_alive(node):
            events.append(Event("node-down", node, None, self._clock))
        return events

    def heard(self, path: PathId, now: float) -> list[Event]:
        """A heartbeat (any authenticated frame) arrived on `path` at `now`.

        Does what tick(now) does first, so overdue deaths come before the path-up (and the
        result may hold events of other paths). An unknown path is ignored.
        """
        events = self.tick(now)
        state = self._paths.get(path)
        if state is None:
            return events
        state.last_heard = self._clock
        if not state.alive:
            node_was_alive = self._node_alive(path[0])
            state.alive = True
            self._no_death_before = min(self._no_death_before, self._clock + self.timeout)
            events.append(Event("path-up", path[0], path[1], self._clock))
            if not node_was_alive:
                events.append(Event("node-up", path[0], None, self._clock))
        return events

    def tick(self, now: float) -> list[Event]:
        """Declare DEAD the paths silent for `timeout` by `now`, in the order they died."""
        self._observe(now)
        if self._clock < self._no_death_before:
            return []
        due = sorted((deadline, path) for path, state in self._paths.items()
                     if (deadline := self._deadline(state)) is not None
                     and deadline <= self._clock)
        self._no_death_before = min(
            (d for state in self._paths.values() if (d := self._deadline(state)) is not None
             and d > self._clock), default=float("inf"))
        events: list[Event] = []
        for deadline, (node, name) in due:
            self._paths[node, name].alive = False
            events.append(Event("path-down", node, name, deadline))
            if not self._node_alive(node):
                events.append(Event("node-down", node, None, deadline))
        return events

    def set_timing(self, interval: float, misses: int) -> None:
        """Change the heartbeat interval and misses; the new timeout counts from each
        path's last heartbeat, so a path may be due at once."""
        if interval <= 0 or misses < 1:
            raise ValueError("interval must be > 0 and misses >= 1")
        self.interval = interval
        self.misses = misses
        self.timeout = interval * misses
        self._no_death_before = float("-inf")  # deadlines moved: scan at the next tick

    def next_deadline(self) -> float | None:
        """When tick() must next run for a timely detection; None while no path is ALIVE."""
        # A linear scan: a cluster has tens of paths, not thousands.
        deadlines = [d for state in self._paths.values()
                     if (d := self._deadline(state)) is not None]
        return min(deadlines, default=None)

    def path_state(self, path: PathId) -> State:
        state = self._paths.get(path)
        return "ALIVE" if state is not None and state.alive else "DEAD"

    def node_state(self, node: str) -> State:
        """ALIVE if any of its paths is; a node without paths is DEAD."""
        return "ALIVE" if self._node_alive(node) else "DEAD"

    def paths_of(self, node: str) -> tuple[PathId, ...]:
        return tuple(sorted(self._by_node.get(node, ())))

    def last_heard(self, path: PathId) -> float | None:
        state = self._paths.get(path)
        return None if state is None else state.last_heard

    def alive_nodes(self) -> frozenset[str]:
        return frozenset(node for node in self._by_node if self._node_alive(node))

    def _observe(self, now: float) -> None:
        # Times never go back: a stale `now` (e.g. stamped before a queue) counts as the latest.
        self._clock = max(self._clock, now)

    def _deadline(self, state: _Path) -> float | None:
        """When an ALIVE path dies unless heard; the one expression used everywhere."""
        if not state.alive or state.last_heard is None:
            return None
        return state.last_heard + self.timeout

    def _node_alive(self, node: str) -> bool:
        return any(self._paths[p].alive for p in self._by_node.get(node, ()))
