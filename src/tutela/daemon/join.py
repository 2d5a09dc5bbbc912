"""Letting a node in: one-time, expiring join tokens and the server side of a join.

A token is used up by the first join that presents it, whether that join succeeds or not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tutela.lcm.frame import FrameRejected
from tutela.lcm.join import Grant, new_token, open_request, seal_grant, seal_refusal
from tutela.lcm.messenger import spawn
from tutela.model.config import Node

log = logging.getLogger("tutela.join")
REFUSALS_LOGGED_EVERY = 60.0
"""Seconds between two warnings about refused join requests: a flood must not flood the log."""
AdmitNode = Callable[[Node], Awaitable[Grant]]
"""Adds the node to the configuration (a committed change) and returns what it needs."""


@dataclass
class Tokens:
    """Outstanding tokens and when each expires (monotonic); kept only in memory."""

    expiry: dict[str, float]

    def issue(self, ttl: float) -> str:
        token = new_token()
        self.expiry[token] = time.monotonic() + ttl
        return token

    def valid(self) -> list[str]:
        now = time.monotonic()
        for token in [t for t, until in self.expiry.items() if until <= now]:
            del self.expiry[token]
        return list(self.expiry)

    def use(self, token: str) -> None:
        self.expiry.pop(token, None)


class JoinService:
    """Answers join requests: frames from strangers that no cluster key authenticates."""

    def __init__(self, tokens: Tokens, admit: AdmitNode, refused: Callable[[], None]) -> None:
        self._tokens = tokens
        self._admit = admit
        self._refused = refused
        self._warned_at = -REFUSALS_LOGGED_EVERY
        self._unlogged = 0

    def handle(self, frame: bytes, transport: asyncio.Transport) -> None:
        try:
            token, envelope = open_request(self._tokens.valid(), frame)
        except FrameRejected:
            self._refused()
            self._warn_refused(str(transport.get_extra_info("peername")[0]))
            _answer(transport, seal_refusal("*", "the join token is unknown, used or expired; "
                                            "create a new one with 'tutela node token' on a "
                                            "cluster node"))
            return
        self._tokens.use(token)
        spawn(self._join(token, envelope.sender, list(envelope.payload.get("addresses", [])),
                         envelope.payload.get("watchdog"), transport))

    def _warn_refused(self, address: str) -> None:
        now = time.monotonic()
        if now - self._warned_at < REFUSALS_LOGGED_EVERY:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last warning)" if self._unlogged else ""
        log.warning("join refused: unknown, used or expired token from %s%s", address, more)
        self._warned_at, self._unlogged = now, 0

    async def _join(self, token: str, name: str, addresses: list[str], watchdog: Any,
                    transport: asyncio.Transport) -> None:
        try:
            grant = await self._admit(Node(name=name, addresses=tuple(addresses),
                                           watchdog=watchdog))
        except Exception as error:  # noqa: BLE001 - the joining node is told why; we go on
            log.warning("join of %s refused: %s", name, error)
            _answer(transport, seal_refusal(name, str(error)))
            return
        log.info("node %s joined (generation %d)", name, grant.generation)
        _answer(transport, seal_grant(token, name, grant))


def _answer(transport: asyncio.Transport, frame: bytes) -> None:
    if not transport.is_closing():
        transport.write(frame)
        transport.close()
