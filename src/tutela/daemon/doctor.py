"""`tutela doctor` in tutelad: gathers this node's facts with what only the daemon knows
(its comm paths' states, its watchdog's fate, its environment) and, with --cluster, asks
every peer for theirs over the comm paths (`doctor.facts`, handled on every node).

It answers with the whole Situation; the CLI runs the checks (tutela.doctor.checks).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from tutela.doctor.facts import ClockSample, NodeFacts, Situation, clock_sample
from tutela.doctor.probes import DaemonView, gather
from tutela.lcm import kinds
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import PeerUnreachable
from tutela.lcm.paths import paths_for, peers_of

if TYPE_CHECKING:
    from tutela.daemon.service import Service

FACTS = kinds.DOCTOR_FACTS
FACTS_WAIT = 20.0
"""Seconds a peer has to gather its facts: its probes are bounded (connections 2 s, name
lookups 5 s, blkid and dumpe2fs 10 s per disk) and mostly run at once."""


def register(service: Service) -> None:
    """The control operation `doctor` and the peers' `doctor.facts`."""
    doctor = Doctor(service)
    service.handlers["doctor"] = doctor.answer
    service.cluster.messenger.handle(FACTS, doctor.facts_for_peer)


class Doctor:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        config = self.service.engine.config
        here = self.service.lcd.node
        asked = bool(request.get("cluster"))
        peers = peers_of(config, here) if asked else []
        mine, theirs = await asyncio.gather(self._gather(),
                                            asyncio.gather(*map(self._ask, peers)))
        facts: dict[str, NodeFacts] = {here: mine}
        unanswered: dict[str, str] = {}
        clocks: dict[str, ClockSample] = {}
        for peer, answer in zip(peers, theirs, strict=True):
            if isinstance(answer, str):
                unanswered[peer] = answer
            else:
                facts[peer], clocks[peer] = answer
        situation = Situation(config=config, here=here, nodes=facts, cluster=asked,
                              unanswered=unanswered, clocks=clocks)
        return situation.model_dump(mode="json")

    async def facts_for_peer(self, _: Envelope) -> dict[str, Any]:
        return (await self._gather()).model_dump(mode="json")

    async def _gather(self) -> NodeFacts:
        cluster = self.service.cluster
        detector = cluster.messenger.detector
        config = self.service.engine.config
        view = DaemonView(
            paths={spec.name: detector.path_state((spec.peer, spec.name))
                   for spec in paths_for(config, self.service.lcd.node)},
            watchdog_device=cluster.ownership.watchdog.path,
            watchdog_problem=cluster.ownership.watchdog.problem)
        return await asyncio.to_thread(gather, config, self.service.lcd.node,
                                       self.service.lcd.state_dir, view)

    async def _ask(self, peer: str) -> tuple[NodeFacts, ClockSample] | str:
        """A peer's facts and its clock against ours, or why it gave none."""
        state = self.service.cluster.messenger.detector.node_state(peer)
        if state != "ALIVE":
            return f"{peer} is {state} here: no comm path to it is ALIVE"
        asked_at, started = time.time(), time.monotonic()
        try:
            answer = await self.service.cluster.messenger.request(peer, FACTS, {},
                                                                  timeout=FACTS_WAIT)
        except PeerUnreachable as error:
            return str(error)
        try:
            facts = NodeFacts.model_validate(answer)
        except ValueError as error:  # pydantic's ValidationError
            return (f"{peer} sent facts this node cannot read ({error.__class__.__name__}): "
                    "run the same tutela version on every node")
        return facts, clock_sample(asked_at, time.monotonic() - started, facts.clock)
