"""Runs multi-node hierarchies where `engine.multinode.decide` says: every heartbeat
interval, for each multi-node hierarchy, this node restores or removes its own instance.

No lease and no watchdog: an instance is this node's alone, recovered locally by the
engine like any resource here. What the others need to know travels with the heartbeats:
each resource's state (who runs an instance) and the roots whose instance failed here
beyond local recovery (`failed`, as for clustered hierarchies), which stay down here until
an administrator restores them (`tutela restore ROOT` clears the mark on every node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from tutela import clock
from tutela.engine.dependencies import placement, up_on
from tutela.engine.multinode import InstanceVerdict, InstanceView, decide
from tutela.engine.node import NodeEngine, OperationError, RestoreRefused
from tutela.engine.peer_report import PeerReport
from tutela.journal.events import Emitter, no_events, recorded
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import Messenger, spawn
from tutela.lcm.ticks import next_tick
from tutela.model.config import HierarchySettings
from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

log = logging.getLogger("tutela.multinode")
IN_SERVICE = frozenset({ResourceState.ISP.value, ResourceState.ISU.value})
RUNNING = IN_SERVICE | {ResourceState.UNKNOWN.value}
"""A root's states in which its node has an instance: in service, or being recovered
locally (the engine's recovery sets UNKNOWN): it keeps its place meanwhile."""
PRESENT = RUNNING | {ResourceState.OSF.value}
"""A resource's states in which something of it may be up here, to remove."""


class MultiNode:
    def __init__(self, node: str, engine: NodeEngine, messenger: Messenger[PeerReport]) -> None:
        self.node = node
        self.engine = engine
        self.messenger = messenger
        self.journal: Emitter = no_events
        self.failed: set[str] = set()
        """Roots whose instance failed here beyond local recovery: not restored here until
        an administrator restores them again."""
        self._unremovable: set[str] = set()
        """Roots whose remove failed here: not tried again every tick (logged once)."""
        self._excused: dict[str, frozenset[str]] = {}
        """Root -> its resources that were failed (OSF) here when an administrator restored
        it: the restore is to bring them back, not a new failure."""
        self._busy: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._settled_at = 0.0
        messenger.handle("multinode.forget", self._forget_request)

    def start(self) -> None:
        settings = self.engine.config.settings
        # As the ownership loop: hear the peers already up before counting instances, or a
        # node starting would take a place of max_instances that a peer holds.
        self._settled_at = clock.now() + settings.heartbeat_interval * (
            settings.heartbeat_misses + 1)
        self._task = spawn(self._loop(), name="multinode")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def forget_failure(self, root: str) -> None:
        """An administrator restored or removed it: this node runs an instance again if
        it should, and a failed remove is tried again."""
        self.failed.discard(root)
        self._unremovable.discard(root)
        hierarchy = next((h for h in self.engine.hierarchies if h.root == root), None)
        if hierarchy is not None:
            self._excused[root] = self._failed_tags(hierarchy)

    async def _forget_request(self, envelope: Envelope) -> dict[str, Any]:
        self.forget_failure(str(envelope.payload["root"]))
        return {}

    def managed(self) -> list[Hierarchy]:
        """The multi-node hierarchies with equivalencies (one without runs here only, by
        hand, as any hierarchy that was never extended)."""
        config = self.engine.config
        return [h for h in self.engine.hierarchies
                if (s := config.hierarchy_settings(h.root)).multi_node and s.equivalencies]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if clock.now() >= self._settled_at:
                self.tick()
            interval = self.engine.config.settings.heartbeat_interval
            await asyncio.sleep(max(0.0, next_tick(interval) - loop.time()))

    def tick(self) -> None:
        """Decide for every multi-node hierarchy not being acted on, and act."""
        managed = self.managed()
        # A root no longer multi-node (or gone) is no failed instance: its mark would tell
        # the ownership loop, which reads the same heartbeat field, that it failed here.
        self.failed &= {h.root for h in managed}
        if not managed:
            return  # most clusters: no view of every hierarchy's states to build each tick
        reports = self.messenger.alive_reports()
        up = self._up(reports)
        for hierarchy in managed:
            root = hierarchy.root
            if root in self._busy:
                continue
            self._note_failure(hierarchy)
            verdict = decide(self.view(hierarchy, reports, up))
            if verdict.decision == "remove" and root in self._unremovable:
                continue
            if verdict.decision != "none":
                self._busy.add(root)
                spawn(self._act(verdict, root), name=f"multinode-{root}")

    def _note_failure(self, hierarchy: Hierarchy) -> None:
        """A resource of it failed here beyond local recovery (OSF): the instance here is
        failed, as for a clustered hierarchy."""
        root = hierarchy.root
        failed_now = self._failed_tags(hierarchy)
        excused = self._excused.pop(root, frozenset()) & failed_now
        if excused:
            self._excused[root] = excused
        failed = sorted(failed_now - excused)
        if failed and root not in self.failed:
            log.error("%s: the instance here failed (%s); taking it out of service here, "
                      "it stays down here until 'tutela restore %s'", hierarchy.root,
                      ", ".join(failed), hierarchy.root)
            self.failed.add(hierarchy.root)

    def _failed_tags(self, hierarchy: Hierarchy) -> frozenset[str]:
        states = self.engine.states
        return frozenset(t for t in hierarchy.members
                         if t in states and states[t].state == ResourceState.OSF)

    def view(self, hierarchy: Hierarchy, reports: Mapping[str, PeerReport],
             up: Mapping[str, frozenset[str]]) -> InstanceView:
        root = hierarchy.root
        settings = self.engine.config.hierarchy_settings(root)
        states = self.engine.states
        running = {p for p, r in reports.items() if r.states.get(root) in RUNNING}
        if root in states and states[root].state.value in RUNNING:
            running.add(self.node)
        failed = {p for p, r in reports.items() if root in r.failed}
        if root in self.failed:
            failed.add(self.node)
        alive = frozenset([self.node, *reports])
        allowed = placement(settings, alive, up).allowed if settings.dependencies else None
        return InstanceView(
            me=self.node, settings=settings, alive=alive, running_on=frozenset(running),
            failed_on=frozenset(failed), allowed=allowed,
            parts_here=any(states[t].state.value in PRESENT
                           for t in hierarchy.members if t in states))

    async def _act(self, verdict: InstanceVerdict, root: str) -> None:
        try:
            if verdict.decision == "restore":
                await self._restore(root)
            else:
                await self._remove(root)
        finally:
            self._busy.discard(root)

    async def _restore(self, root: str) -> None:
        log.info("%s: starting its instance here", root)
        try:
            with recorded(self.journal, "restore", root, "a multi-node instance belongs "
                          "in service here"):
                await self.engine.restore(root)
        except RestoreRefused as error:
            log.warning("%s: %s; trying again", root, error)  # not this node's failure
        except OperationError as error:
            log.error("%s: the instance here did not start: %s; it stays down here until "
                      "'tutela restore %s'", root, error, root)
            self.failed.add(root)

    async def _remove(self, root: str) -> None:
        log.info("%s: taking its instance here out of service", root)
        try:
            with recorded(self.journal, "remove", root, "a multi-node instance no longer "
                          "belongs in service here"):
                await self.engine.remove(root)
        except OperationError as error:
            log.error("%s: could not take the instance here out of service: %s; not tried "
                      "again until 'tutela restore %s' or 'tutela remove %s'", root, error,
                      root, root)
            self._unremovable.add(root)

    def _up(self, reports: Mapping[str, PeerReport]) -> dict[str, frozenset[str]]:
        """Root -> the nodes on which it counts as up, for dependencies."""
        config, states = self.engine.config, self.engine.states
        found = {}
        for hierarchy in self.engine.hierarchies:
            root = hierarchy.root
            there = {p for p, r in reports.items() if r.states.get(root) in IN_SERVICE}
            if root in states and states[root].state.in_service:
                there.add(self.node)
            found[root] = up_on(config.hierarchy_settings(root), frozenset(there))
        return found

    def report(self) -> dict[str, dict[str, Any]]:
        """For `tutela status`: root -> its instances (each node of its equivalencies and
        the state of the root there), how many are in service against min and max."""
        reports = self.messenger.alive_reports()
        up = self._up(reports)
        return {h.root: self._instances(h, reports, up) for h in self.managed()}

    def _instances(self, hierarchy: Hierarchy, reports: Mapping[str, PeerReport],
                   up: Mapping[str, frozenset[str]]) -> dict[str, Any]:
        root = hierarchy.root
        settings = self.engine.config.hierarchy_settings(root)
        view = self.view(hierarchy, reports, up)
        verdict = decide(view)
        nodes = {}
        for entry in sorted(settings.equivalencies, key=lambda e: e.priority):
            node = entry.node
            alive = node in view.alive
            state = self._root_state(node, root, reports) if alive else "DEAD"
            nodes[node] = {"state": state, "alive": alive, "failed": node in view.failed_on,
                           "wanted": node in verdict.wanted}
        in_service = sum(n["state"] in IN_SERVICE for n in nodes.values())
        return {"target": settings.target, "in_service": in_service,
                "min_instances": _minimum(settings),
                "max_instances": settings.max_instances,
                "below_min": settings.target == "in_service"
                and in_service < _minimum(settings), "nodes": nodes}

    def _root_state(self, node: str, root: str, reports: Mapping[str, PeerReport]) -> str:
        if node == self.node:
            return self.engine.states[root].state.value
        return reports[node].states.get(root, ResourceState.UNKNOWN.value)


def _minimum(settings: HierarchySettings) -> int:
    return settings.min_instances or 1

