"""One table of the message kinds between nodes: every handler tutelad registers is in it,
and every kind it says tutelad serves has a handler."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tutela.daemon.wiring import build
from tutela.engine.peer_report import parse
from tutela.lcd.store import Lcd
from tutela.lcm import kinds
from tutela.lcm.messenger import Identity, Messenger


def test_the_daemon_serves_exactly_the_kinds_the_table_says(tmp_path: Path) -> None:
    async def handled() -> frozenset[str]:
        lcd = Lcd.create(tmp_path, "demo", "node1")
        try:
            return build(lcd, tmp_path).cluster.messenger.handled()
        finally:
            lcd.close()

    assert asyncio.run(handled()) == kinds.SERVED_ON_NODE


def test_names_are_unique_and_lease_rounds_go_on_every_path() -> None:
    assert len(kinds.BY_NAME) == len(kinds.TABLE)
    assert {"lease.acquire", "lease.release", "config.promise"} == kinds.EVERY_PATH


def test_a_misspelt_kind_is_refused_before_anything_is_sent() -> None:
    messenger = Messenger(Identity("c", "a", b"k" * 32, 1), 0.2, 5, read_report=parse)

    async def nothing(_envelope: object) -> dict[str, object]:
        return {}

    with pytest.raises(ValueError, match=r"no message kind 'ownership\.giv'"):
        messenger.handle("ownership.giv", nothing)
    with pytest.raises(ValueError, match="not served by a handler"):
        messenger.handle(kinds.HEARTBEAT, nothing)
    with pytest.raises(ValueError, match=r"no message kind 'op\.restor'"):
        asyncio.run(messenger.request("b", "op.restor", {}))
