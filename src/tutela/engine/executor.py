"""Runs a plan: each step starts as soon as the steps it waits for are done.

Independent branches run in parallel; after the first failure no new step starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from tutela.engine.planner import Plan, Step


class ActionFailed(Exception):
    """A kit action failed or timed out; the message says which and why."""


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_started


async def execute(plan: Plan, run_step: Callable[[Step], Coroutine[Any, Any, None]]) -> Outcome:
    outcome = Outcome()
    pending = {step.tag: step for step in plan.steps}
    running: dict[asyncio.Task[None], Step] = {}
    while pending or running:
        if not outcome.failed:
            for step in [s for s in pending.values() if s.after <= set(outcome.done)]:
                del pending[step.tag]
                running[asyncio.create_task(run_step(step))] = step
        if not running:
            break
        finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            step = running.pop(task)
            error = task.exception()
            if error is None:
                outcome.done.append(step.tag)
            else:
                outcome.failed[step.tag] = str(error) or type(error).__name__
    outcome.not_started = sorted(pending)
    return outcome
