"""A recording kit: a test double for the engine's ordering and recovery logic, named as such.

It records every call and keeps "running" in memory instead of touching the host.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams


class RecordingParams(KitParams):
    fail_restore: bool = False
    fail_pre_check: bool = False
    fail_recover: bool = False
    wait_for: str = ""
    """Restore blocks until the resource with this tag has started restoring (parallelism)."""


@dataclass
class World:
    """What the recording kit did, and what it pretends is running."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    started: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, tag: str, action: str) -> None:
        with self.lock:
            self.calls.append((action, tag))
            self.started.setdefault(f"{action}:{tag}", threading.Event()).set()

    def actions(self, action: str) -> list[str]:
        return [t for a, t in self.calls if a == action]


class RecordingKit(Kit[RecordingParams]):
    """Test double: records calls and keeps 'running' in memory instead of touching the host."""

    name = "recording"
    description = "test double"
    Params = RecordingParams

    def __init__(self, world: World) -> None:
        self.world = world

    def pre_restore_check(self, ctx: ActionContext[RecordingParams]) -> None:
        self.world.record(ctx.tag, "pre_check")
        if ctx.params.fail_pre_check:
            raise KitError("address already answers")

    def restore(self, ctx: ActionContext[RecordingParams]) -> None:
        self.world.record(ctx.tag, "restore")
        if ctx.params.wait_for:
            event = self.world.started.setdefault(f"restore:{ctx.params.wait_for}",
                                                  threading.Event())
            if not event.wait(timeout=5):
                raise KitError(f"{ctx.params.wait_for} never started: not parallel")
        if ctx.params.fail_restore:
            raise KitError("cannot start")
        self.world.running.add(ctx.tag)

    def remove(self, ctx: ActionContext[RecordingParams]) -> None:
        self.world.record(ctx.tag, "remove")
        self.world.running.discard(ctx.tag)

    def quick_check(self, ctx: ActionContext[RecordingParams]) -> CheckResult:
        self.world.record(ctx.tag, "quick_check")
        healthy = ctx.tag in self.world.running
        return CheckResult(healthy, "" if healthy else "not running")

    def recover(self, ctx: ActionContext[RecordingParams]) -> None:
        self.world.record(ctx.tag, "recover")
        if ctx.params.fail_recover:
            raise KitError("recovery impossible")
        self.world.running.add(ctx.tag)
