"""This node's view of the cluster at one moment, built from its peers' last reports
(`engine.peer_report`) and its own resource states: the one answer to "who runs this
hierarchy" for the ownership decision, switchover, status and dependencies. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from tutela.engine.damping import History
from tutela.engine.peer_report import PeerReport
from tutela.model.states import ResourceState

IN_SERVICE = frozenset({ResourceState.ISP.value, ResourceState.ISU.value})
"""A resource's states, as heartbeats carry them, in which it is in service."""


class Stated(Protocol):
    """A resource's runtime record as far as the view needs it (engine.node.RuntimeState)."""

    @property
    def state(self) -> ResourceState: ...


def runs_there(report: PeerReport, root: str) -> bool:
    """Whether the node of `report` said it holds `root`'s lease or has it in service."""
    return root in report.holds or report.states.get(root) in IN_SERVICE


@dataclass(frozen=True)
class Snapshot:
    """This node's view of its peers at one decision tick, indexed once for every
    hierarchy's decision (sets instead of the heartbeats' lists)."""

    me: str
    """This node."""
    alive: frozenset[str]
    """Peers ALIVE now."""
    holds: Mapping[str, frozenset[str]]
    """Alive peer -> the roots whose leases it holds."""
    failed: Mapping[str, frozenset[str]]
    """Alive peer -> the roots that failed there."""
    states: Mapping[str, Mapping[str, str]]
    """Alive peer -> resource tag -> its state there."""
    ran: Mapping[str, Mapping[str, str]]
    """This node and every alive peer -> root -> when it last went into service there."""
    blocking: frozenset[str]
    """Nodes that hierarchies may not fail over away from (nodes[].failover: false)."""
    in_service_here: frozenset[str]
    """Resource tags in service on this node."""
    failed_here: frozenset[str]
    """Resource tags failed (OSF) on this node."""
    failovers: Mapping[str, Mapping[str, History]]
    """Alive peer -> root it holds -> its recent failovers (failover damping)."""

    @classmethod
    def of(cls, me: str, reports: Mapping[str, PeerReport], my_ran: Mapping[str, str],
           blocking: frozenset[str], my_states: Mapping[str, Stated]) -> Snapshot:
        """From the alive peers' last reports and this node's resource states."""
        return cls(me, frozenset(reports),
                   {p: r.holds for p, r in reports.items()},
                   {p: r.failed for p, r in reports.items()},
                   {p: r.states for p, r in reports.items()},
                   {me: my_ran} | {p: r.ran for p, r in reports.items()},
                   blocking,
                   frozenset(t for t, s in my_states.items() if s.state.in_service),
                   frozenset(t for t, s in my_states.items() if s.state == ResourceState.OSF),
                   {p: r.failovers for p, r in reports.items()})

    def owner(self, root: str, candidates: Iterable[str]) -> str | None:
        """The first (by name) alive peer of `candidates` that holds `root`'s lease or has
        it in service."""
        return next((p for p in sorted(candidates) if p in self.alive and (
            root in self.holds[p] or self.states[p].get(root) in IN_SERVICE)), None)

    def up_on(self, root: str) -> frozenset[str]:
        """The alive nodes, this one included, on which the resource `root` is in service
        (for dependencies: `engine.dependencies.up_on`)."""
        here = {self.me} if root in self.in_service_here else set()
        return frozenset(here | {p for p in self.alive if self.states[p].get(root) in IN_SERVICE})

    def runs(self, root: str) -> str | None:
        """The node that has `root` in service, as far as this node can see: this one
        first, else the first alive peer by name."""
        up = self.up_on(root)
        return self.me if self.me in up else min(up, default=None)
