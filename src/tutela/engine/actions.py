"""Where the engine's kit actions run: a call named by data (`ActionCall`), carried out by a
runner. In-process threads (`ThreadRunner`) serve tests and tools; tutelad runs them in a
process of its own (`tutela.kit_runner.KitProcess`), so that kit work never holds the
interpreter lock its time-critical event loop needs (docs/architecture.md, "Threads").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tutela.engine.workers import started_pool
from tutela.kits.base import ActionContext, Kit
from tutela.kits.registry import KITS, get_kit

KIT_WORKERS = 32
"""Threads for kit actions: one restore of many hierarchies at once runs this many."""
METHODS = frozenset({"pre_restore_check", "restore", "remove", "force_remove", "quick_check",
                     "recover"})
"""The kit methods the engine calls, each with an ActionContext."""


class ActionCrashed(Exception):
    """A kit action raised something other than KitError (a bug in the kit), or the process
    that ran it died; the message says what."""


@dataclass(frozen=True)
class ActionCall:
    """One kit action: all a process of its own needs to carry it out (plain data)."""

    kit: str
    method: str
    """One of METHODS."""
    tag: str
    params: dict[str, Any]
    """The resource's parameters as configured (parsed where the action runs)."""
    state_dir: str
    """The resource's own directory (pid files, markers)."""
    timeout: float


def context_for(call: ActionCall) -> tuple[Kit[Any], ActionContext[Any]]:
    """The kit and the context `call` runs with; makes the resource's directory."""
    kit = get_kit(call.kit)
    directory = Path(call.state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return kit, ActionContext(
        tag=call.tag, resource_id=f"{call.kit}.{call.tag}",
        params=kit.parse_params(call.params), state_dir=directory, timeout=call.timeout,
        log=logging.getLogger(f"tutela.resource.{call.tag}"))


def perform(call: ActionCall) -> Any:
    """Carry `call` out in the calling thread: its result, or what the kit raised."""
    if call.method not in METHODS:
        raise ValueError(f"{call.method!r} is not a kit action")
    kit, context = context_for(call)
    return getattr(kit, call.method)(context)


def prepare(kits: Iterable[str]) -> None:
    """Each built-in kit of `kits` makes ready what its first action would wait for."""
    for name in set(kits) & KITS.keys():
        KITS[name].prepare()


class ActionRunner(Protocol):
    async def run(self, call: ActionCall) -> Any:
        """The action's result; KitError, ActionCrashed or what the kit raised."""
        ...

    def prepare(self, kits: Iterable[str]) -> None:
        """Have the kits `prepare` in the background (not on a first takeover's path)."""
        ...

    def close(self) -> None: ...


class ThreadRunner:
    """Kit actions in a pool of this process's threads."""

    def __init__(self) -> None:
        self._pool = started_pool(KIT_WORKERS, "kit")

    async def run(self, call: ActionCall) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, perform, call)

    def prepare(self, kits: Iterable[str]) -> None:
        self._pool.submit(prepare, list(kits))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
