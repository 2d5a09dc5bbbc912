"""The daemon's side of a cluster key rotation (`tutela cluster rotate-key`).

Every node takes rotation steps from a peer (or from its own administrator) and keeps its
key ring in the LCD before it uses it; the node the command runs on drives the rotation:
each phase goes to every node and witness, and the next starts only when all acknowledged.
The steps themselves are lcm/keyring.py; docs/cluster.md says how and when to rotate.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from tutela.engine.node import OperationError
from tutela.lcd.store import KEY_BYTES, Lcd
from tutela.lcm.frame import Envelope
from tutela.lcm.keyring import PHASES, REKEY, KeyRing, RotationError, key_id, resume_key
from tutela.lcm.paths import peers_of, witness_paths

if TYPE_CHECKING:
    from tutela.daemon.cluster import Cluster

log = logging.getLogger("tutela.keys")
STEP_WAIT = 10.0
"""Seconds a member has for one step (a renew makes its connections anew)."""


class Keys:
    def __init__(self, lcd: Lcd, cluster: Cluster) -> None:
        self.lcd = lcd
        self.cluster = cluster
        cluster.messenger.set_ring(lcd.key_ring())
        cluster.messenger.handle(REKEY, self._on_rekey)
        self._lock = asyncio.Lock()
        """One step at a time here: a step and its LCD write are one change."""

    @property
    def ring(self) -> KeyRing:
        return self.cluster.messenger.ring

    async def _on_rekey(self, envelope: Envelope) -> dict[str, Any]:
        return await self.step(envelope.payload)

    async def step(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One rotation step here: kept in the LCD, then used. The ring's view afterwards."""
        phase = str(payload.get("phase"))
        async with self._lock:
            if phase == "state":
                return self.ring.view()
            if phase == "renew":
                left = await self.cluster.messenger.renew()
                if left:
                    raise RotationError(f"paths {', '.join(left)} still run on connections "
                                        "made under the old key (their peer did not answer)")
                return self.ring.view()
            new = bytes.fromhex(str(payload["key"])) if phase == "stage" else None
            ring = self.ring.step(phase, str(payload.get("id")), new)
            if ring != self.ring:
                self.lcd.save_key_ring(ring)
                self.cluster.messenger.set_ring(ring)
                log.info("key rotation: %s done here (key %s)", phase, payload.get("id"))
            return ring.view()

    # --- driving a rotation from this node ----------------------------------------------

    def members(self) -> tuple[list[str], list[str]]:
        """(nodes other than this one, witnesses' voter ids) of the configuration."""
        config = self.cluster.engine.config
        return (peers_of(config, self.lcd.node),
                sorted({spec.peer for spec in witness_paths(config)}))

    async def rotate(self) -> dict[str, Any]:
        """Rotate to a new random key, or finish a rotation cut short; refuses before any
        step when a node or witness is not ALIVE."""
        nodes, witnesses = self.members()
        self.check_reachable()
        views = await self._ask_all(nodes + witnesses, {"phase": "state"}, "state")
        try:
            resumed = resume_key(self.ring, views)
        except RotationError as error:
            raise OperationError(f"cannot rotate the cluster key: {error}") from None
        new = resumed or secrets.token_bytes(KEY_BYTES)
        new_id = key_id(new)
        log.info("key rotation to key %s %s", new_id, "resumed" if resumed else "started")
        phases = []
        for phase in PHASES:
            payload = {"phase": phase, "id": new_id,
                       **({"key": new.hex()} if phase == "stage" else {})}
            members = nodes if phase == "renew" else nodes + witnesses  # witnesses never dial
            try:
                await self.step(payload)
            except RotationError as error:
                raise OperationError(_halted(phase, self.lcd.node, str(error))) from None
            await self._ask_all(members, payload, phase)
            log.info("key rotation: phase %s acknowledged by every node and witness", phase)
            phases.append({"phase": phase, "acknowledged": [self.lcd.node, *members]})
        return {"key_id": new_id, "resumed": resumed is not None, "phases": phases,
                "summary": f"cluster key rotated to key {new_id} on "
                           f"{1 + len(nodes)} nodes and {len(witnesses)} witnesses"}

    def check_settled(self, what: str) -> None:
        """OperationError while a rotation is cut short here: a node or witness given one
        key now could miss the other that some members send with."""
        if self.ring.rotation:
            raise OperationError(f"{what} while a cluster key rotation is under way "
                                 f"({self.ring.rotation} here): finish it with 'tutela "
                                 "cluster rotate-key' first")

    def check_reachable(self) -> None:
        """OperationError naming every node and witness that is not ALIVE, and what to do."""
        nodes, witnesses = self.members()
        detector = self.cluster.messenger.detector
        away = [f"{'witness' if m in witnesses else 'node'} {m}"
                for m in nodes + witnesses if detector.node_state(m) != "ALIVE"]
        if away:
            raise OperationError(
                f"{', '.join(away)} not ALIVE: a key rotation needs every node and witness, "
                "or the one away could not talk to the cluster afterwards. Bring it back, or "
                "remove it ('tutela node remove NAME', 'tutela witness remove ADDRESS') and "
                "join or add it again after the rotation; then run 'tutela cluster "
                "rotate-key' again (a rotation cut short resumes where it stopped)")

    async def _ask_all(self, members: list[str], payload: dict[str, Any], phase: str
                       ) -> dict[str, dict[str, Any]]:
        """Every member's answer to one step; OperationError naming those that failed."""
        messenger = self.cluster.messenger
        results = await asyncio.gather(
            *(messenger.request(m, REKEY, payload, timeout=STEP_WAIT) for m in members),
            return_exceptions=True)
        failed = [f"{m}: {r}" for m, r in zip(members, results, strict=True)
                  if isinstance(r, BaseException)]
        if failed:
            raise OperationError(_halted(phase, None, "; ".join(failed)))
        return {m: r for m, r in zip(members, results, strict=True)
                if not isinstance(r, BaseException)}


def _halted(phase: str, where: str | None, why: str) -> str:
    return (f"key rotation halted in phase {phase}{f' on {where}' if where else ''}: {why}. "
            "Every member still accepts the keys it sends with, so nothing stops working; "
            "run 'tutela cluster rotate-key' again once every node and witness is ALIVE: "
            "it resumes where it stopped")
