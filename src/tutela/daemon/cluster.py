"""The daemon's cluster side: the messenger's paths from the configuration, the cluster view
built from heartbeats and failure events, configuration catch-up, and remote operations.

Everything a peer asks of this node arrives here as a messenger handler.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import ipaddress
import logging
import time
from typing import Any

from tutela.engine.node import NodeEngine, OperationError
from tutela.lcd.store import Lcd
from tutela.lcm.detector import Event
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import Identity, Messenger, PeerUnreachable, spawn
from tutela.lcm.paths import paths_for, peers_of
from tutela.model.config import ClusterConfig

log = logging.getLogger("tutela.cluster")
EVENTS_KEPT = 200


class Cluster:
    def __init__(self, lcd: Lcd, engine: NodeEngine) -> None:
        self.lcd = lcd
        self.engine = engine
        settings = engine.config.settings
        identity = Identity(engine.config.name, lcd.node, lcd.cluster_key,
                            lcd.next_incarnation())
        self.messenger = Messenger(identity, settings.heartbeat_interval,
                                   settings.heartbeat_misses, self._heartbeat, self._on_event,
                                   port=settings.port)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)
        self._catching_up = False
        self.messenger.on_heartbeat = lambda _peer, _payload: self._maybe_catch_up()
        self.messenger.handle("config.get", self._config_get)
        self.messenger.handle("node.status", self._node_status)

    async def start(self) -> None:
        config = self.engine.config
        await self.messenger.start(paths_for(config, self.lcd.node), self._own_addresses(config))

    async def stop(self) -> None:
        await self.messenger.stop()

    async def config_changed(self, config: ClusterConfig) -> None:
        await self.messenger.set_paths(paths_for(config, self.lcd.node),
                                       self._own_addresses(config))

    def _own_addresses(self, config: ClusterConfig) -> set[str]:
        return {str(ipaddress.IPv4Interface(a).ip) for n in config.nodes
                if n.name == self.lcd.node for a in n.addresses}

    # --- configuration changes ---------------------------------------------------------

    def require_quorum(self, force: bool = False) -> None:
        """Refuse a configuration change unless a majority of the nodes is reachable.

        So a partitioned minority can never change the configuration on its own.
        """
        config = self.engine.config
        total = len(config.nodes)
        alive = 1 + sum(self.messenger.detector.node_state(peer) == "ALIVE"
                        for peer in peers_of(config, self.lcd.node))
        if config.settings.quorum == "none" or alive * 2 > total:
            return
        if force:
            log.warning("configuration change WITHOUT quorum (%d of %d nodes reachable), "
                        "forced by the administrator", alive, total)
            return
        raise OperationError(
            f"no quorum: {alive} of {total} nodes reachable, {total // 2 + 1} needed; a "
            "configuration change needs a majority so that two partitions can never both "
            "change it. Bring the nodes back, or add --force if they are gone for good")

    async def replicate(self, config: ClusterConfig, generation: int) -> None:
        """Write a committed generation to every reachable node; the others catch up later."""
        payload = {"generation": generation, "config": config.model_dump(mode="json")}
        peers = [p for p in peers_of(config, self.lcd.node)
                 if self.messenger.detector.node_state(p) == "ALIVE"]
        results = await asyncio.gather(
            *(self.messenger.request(p, "config.push", payload) for p in peers),
            return_exceptions=True)
        for peer, result in zip(peers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("%s did not take generation %d (%s); it catches up when it is "
                            "back", peer, generation, result)

    # --- what travels with heartbeats --------------------------------------------------

    def _heartbeat(self) -> dict[str, Any]:
        return {"generation": self.lcd.generation(),
                "states": {tag: s.state.value for tag, s in self.engine.states.items()}}

    def _on_event(self, event: Event) -> None:
        when = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        what = f"path {event.path} to {event.node}" if event.path else f"node {event.node}"
        state = "ALIVE" if event.kind.endswith("up") else "DEAD"
        level = logging.WARNING if state == "DEAD" else logging.INFO
        log.log(level, "%s is %s", what, state)
        self.events.append({"at": when, "kind": event.kind, "node": event.node,
                            "path": event.path})
        if event.kind in ("node-up", "path-up"):
            self._maybe_catch_up()

    def _maybe_catch_up(self) -> None:
        """A node that was away pulls the newest configuration from the peer that has it."""
        mine = self.lcd.generation()
        ahead = [(payload.get("generation", 0), peer)
                 for peer, (_, payload) in self.messenger.heartbeats.items()
                 if int(payload.get("generation", 0)) > mine]
        if ahead and not self._catching_up:
            self._catching_up = True
            spawn(self._catch_up(max(ahead)[1]))

    async def _catch_up(self, peer: str) -> None:
        try:
            reply = await self.messenger.request(peer, "config.get", {})
            config = ClusterConfig.model_validate(reply["config"])
            generation = int(reply["generation"])
            if self.lcd.adopt(config, generation, origin=peer):
                self.engine.update_config(config)
                await self.config_changed(config)
                log.info("caught up to configuration generation %d from %s", generation, peer)
        except (PeerUnreachable, KeyError, ValueError) as error:
            log.warning("could not fetch the configuration from %s: %s", peer, error)
        finally:
            self._catching_up = False

    # --- handlers for peers --------------------------------------------------------------

    async def _config_get(self, _: Envelope) -> dict[str, Any]:
        return {"generation": self.lcd.generation(),
                "config": self.engine.config.model_dump(mode="json")}

    async def _node_status(self, _: Envelope) -> dict[str, Any]:
        return {"generation": self.lcd.generation(),
                "states": {tag: {"state": s.state.value, "reason": s.reason, "since": s.since}
                           for tag, s in self.engine.states.items()}}

    # --- the cluster view ------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """Nodes, their paths and what each last said, for `tutela status`."""
        now = time.monotonic()
        me = self.lcd.node
        detector = self.messenger.detector
        nodes = [{"name": me, "state": "ALIVE", "local": True,
                  "generation": self.lcd.generation(), "paths": [],
                  "max_heartbeat_lateness": round(self.messenger.max_heartbeat_lateness, 4)}]
        for peer in peers_of(self.engine.config, me):
            heard = self.messenger.heartbeats.get(peer)
            nodes.append({
                "name": peer, "state": detector.node_state(peer), "local": False,
                "generation": heard[1].get("generation") if heard else None,
                "heartbeat_age": round(now - heard[0], 3) if heard else None,
                "states": heard[1].get("states", {}) if heard else {},
                "paths": self._paths_view(peer, now),
            })
        return {"nodes": nodes, "dropped_frames": self.messenger.counters.snapshot(),
                "events": list(self.events)[-20:]}

    def _paths_view(self, peer: str, now: float) -> list[dict[str, Any]]:
        detector = self.messenger.detector
        rows = []
        for spec in paths_for(self.engine.config, self.lcd.node):
            if spec.peer != peer:
                continue
            last = detector.last_heard((peer, spec.name))
            stats = self.messenger.stats.get(spec.name)
            rows.append({"name": spec.name, "kind": spec.kind, "priority": spec.priority,
                         "state": detector.path_state((peer, spec.name)),
                         "last_heard_age": None if last is None else round(now - last, 3),
                         "sent": stats.sent if stats else 0,
                         "received": stats.received if stats else 0,
                         "max_heartbeat_gap": round(stats.max_heartbeat_gap, 4)
                         if stats else None})
        return rows
