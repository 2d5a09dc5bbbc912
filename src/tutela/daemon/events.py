"""`tutela events` in tutelad: the control operation `events` (every reachable peer's
records) and the peers' `events.read` (this node's records). This node's own records the
CLI reads from its file itself, so they show with tutelad stopped too (docs/events.md).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import TYPE_CHECKING, Any

from tutela.journal.events import Event, select
from tutela.journal.file import read_journal
from tutela.lcm import kinds
from tutela.lcm.messenger import PeerUnreachable
from tutela.lcm.paths import peers_of

if TYPE_CHECKING:
    from tutela.daemon.service import Service
    from tutela.lcm.frame import Envelope

READ = kinds.EVENTS_READ
PEER_WAIT = 10.0
"""Seconds a peer has to read and send its records."""
PEER_BUDGET = 700 << 10
"""Bytes of records in one reply (a frame holds 1 MiB): the newest records that fit."""


def register(service: Service) -> None:
    events = Events(service)
    service.handlers["events"] = events.answer
    service.cluster.messenger.handle(READ, events.read_for_peer)


def query_of(args: dict[str, Any]) -> dict[str, Any]:
    """The filters a request carries, checked: {hierarchy, since (ISO), limit}."""
    limit = args.get("limit")
    return {"hierarchy": None if args.get("hierarchy") is None else str(args["hierarchy"]),
            "since": None if args.get("since") is None else str(args["since"]),
            "limit": None if limit is None else int(limit)}


def records(events: list[Event], query: dict[str, Any]) -> list[dict[str, Any]]:
    """The records that match `query`, newest kept when they exceed PEER_BUDGET."""
    since = None if query["since"] is None else datetime.datetime.fromisoformat(query["since"])
    chosen = select(events, query["hierarchy"], since, query["limit"])
    kept: list[dict[str, Any]] = []
    size = 0
    for event in reversed(chosen):
        size += len(json.dumps(event.to_json()))
        if size > PEER_BUDGET:
            break
        kept.append(event.to_json())
    return kept[::-1]


class Events:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def answer(self, args: dict[str, Any]) -> dict[str, Any]:
        """{records: {peer: [record...]}, unanswered: {peer: why}}."""
        query = query_of(args)
        peers = peers_of(self.service.engine.config, self.service.lcd.node)
        answers = await asyncio.gather(*(self._ask(peer, query) for peer in peers))
        return {"records": {p: a for p, a in zip(peers, answers, strict=True)
                            if not isinstance(a, str)},
                "unanswered": {p: a for p, a in zip(peers, answers, strict=True)
                               if isinstance(a, str)}}

    async def _ask(self, peer: str, query: dict[str, Any]) -> list[dict[str, Any]] | str:
        messenger = self.service.cluster.messenger
        state = messenger.detector.node_state(peer)
        if state != "ALIVE":
            return f"{peer} is {state} here: no comm path to it is ALIVE"
        try:
            answer = await messenger.request(peer, READ, query, timeout=PEER_WAIT)
        except PeerUnreachable as error:
            return str(error)
        return list(answer["records"])

    async def read_for_peer(self, envelope: Envelope) -> dict[str, Any]:
        """This node's records that match the asker's filters, read in a thread."""
        query = query_of(envelope.payload)
        read = await asyncio.to_thread(read_journal, self.service.lcd.state_dir)
        return {"records": records(read.events, query)}
