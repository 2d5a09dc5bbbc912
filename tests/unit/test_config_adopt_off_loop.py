"""A configuration version replicated from a peer is adopted in a worker thread: its
validation and power-safe commit took hundreds of milliseconds with every node adopting a
large configuration at once, all of it on the event loop that answers heartbeats and lease
rounds (docs/benchmarks.md, "Scale"). What that needs: the LCD usable from two threads, and
what a node sends of its configuration taken from its LCD, never the engine's older one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from tutela.daemon.wiring import build
from tutela.lcd.store import Lcd
from tutela.lcd.transfer import read_header
from tutela.model.config import ClusterConfig, Node
from tutela.model.states import ResourceState

WAIT = 5.0
"""Seconds the stand-in adopt waits for the event loop to show it runs meanwhile."""


def node_lcd(tmp_path: Path) -> Lcd:
    """A one-node cluster whose node has no address: its messenger listens nowhere."""
    return Lcd.create(tmp_path, "c", "n1")


def with_peer(config: ClusterConfig, name: str = "n2") -> ClusterConfig:
    return config.model_copy(update={"nodes": (*config.nodes, Node(name=name))})


def test_a_replicated_version_is_adopted_while_the_event_loop_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lcd = node_lcd(tmp_path)
    adopting, loop_ran = threading.Event(), threading.Event()
    adopt = lcd.adopt

    def adopt_once_the_loop_ran(*args: Any, **kwargs: Any) -> bool:
        adopting.set()
        assert loop_ran.wait(WAIT), "the event loop stood still while the version was adopted"
        return adopt(*args, **kwargs)

    monkeypatch.setattr(lcd, "adopt", adopt_once_the_loop_ran)
    new = with_peer(lcd.load())

    async def main() -> None:
        daemon = build(lcd, tmp_path)
        storing = asyncio.ensure_future(daemon.cluster.store(new, 2, 1, origin="n2"))
        assert await asyncio.to_thread(adopting.wait, WAIT), "no adopt"
        loop_ran.set()  # from the loop, while the adopt waits
        assert await storing
        assert daemon.engine.config == new and lcd.version() == (2, 1)

    asyncio.run(main())


def test_a_node_sends_the_version_its_lcd_holds_before_its_engine_has_it(
        tmp_path: Path) -> None:
    """A version is in the LCD (adopted in the worker thread) a moment before the engine
    is told; a peer asking meanwhile gets that version's configuration, not the engine's
    older one under the newer number."""
    lcd = node_lcd(tmp_path)
    new = with_peer(lcd.load())

    async def main() -> None:
        daemon = build(lcd, tmp_path)
        assert lcd.adopt(new, 2, 1, origin="n2")  # the engine is not told yet
        version, sent = read_header(daemon.cluster._current().header())
        assert version == (2, 1) and sent == new != daemon.engine.config

    asyncio.run(main())


def test_the_lcd_takes_an_adopt_in_one_thread_beside_state_writes_in_another(
        tmp_path: Path) -> None:
    lcd = node_lcd(tmp_path)
    config = lcd.load()
    failures: list[BaseException] = []

    def adopt_versions() -> None:
        try:
            for generation in range(2, 42):
                assert lcd.adopt(with_peer(config, f"n{generation}"), generation, 1,
                                 origin="n2")
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    adopter = threading.Thread(target=adopt_versions)
    adopter.start()
    for index in range(400):
        lcd.save_state(f"r{index % 20}", ResourceState.ISP, "started")
        assert lcd.load_states()
    adopter.join()
    assert failures == []
    assert lcd.version() == (41, 1) and lcd.load().nodes[-1].name == "n41"
