"""tutelad's kit actions in a process of their own (tutela.kit_runner): real actions of the
generic kit (real scripts) run in the child, their results and KitErrors come back, a child
that dies fails what it ran and the next action starts another, and closing ends it."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tutela.engine.actions import ActionCall, ActionCrashed
from tutela.kit_runner import KitProcess
from tutela.kits.base import CheckResult, KitError
from tutela.lab import procs

WAIT = 10.0


def script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def generic(tmp_path: Path, method: str, restore: str, quick_check: str | None = None
            ) -> ActionCall:
    params = {"restore": restore, "remove": script(tmp_path / "remove.sh", "exit 0")}
    if quick_check is not None:
        params["quick_check"] = quick_check
    return ActionCall("generic", method, "app", params, str(tmp_path / "app"), WAIT)


def with_kits(tmp_path: Path, scenario: Callable[[KitProcess], Awaitable[None]]) -> None:
    async def main() -> None:
        kits = KitProcess(tmp_path / "tutelad.log", "INFO")
        kits.start()
        try:
            await scenario(kits)
        finally:
            kits.close()
        assert kits.pid is not None and not procs.alive(kits.pid)

    asyncio.run(main())


def test_an_action_runs_in_the_kit_process_and_its_result_comes_back(tmp_path: Path) -> None:
    started = tmp_path / "started-by"
    restore = script(tmp_path / "restore.sh", f"echo $PPID > {started}")
    healthy = script(tmp_path / "check.sh", "exit 0")

    async def scenario(kits: KitProcess) -> None:
        assert await kits.run(generic(tmp_path, "restore", restore)) is None
        # The script's parent is the process that ran the action: the kit process.
        assert int(started.read_text()) == kits.pid != os.getpid()
        result = await kits.run(generic(tmp_path, "quick_check", restore, healthy))
        assert result == CheckResult(True)

    with_kits(tmp_path, scenario)
    assert "running restore script" in (tmp_path / "tutelad.log").read_text()  # its log


def test_a_kit_error_comes_back_with_its_message(tmp_path: Path) -> None:
    failing = script(tmp_path / "restore.sh", "echo cannot bind >&2; exit 3")

    async def scenario(kits: KitProcess) -> None:
        with pytest.raises(KitError, match=r"restore script .* exited 3"):
            await kits.run(generic(tmp_path, "restore", failing))

    with_kits(tmp_path, scenario)


def test_a_dead_kit_process_fails_what_it_ran_and_the_next_action_starts_another(
        tmp_path: Path) -> None:
    running = tmp_path / "running"
    hangs = script(tmp_path / "restore.sh", f"touch {running}; exec sleep 60")
    quick = script(tmp_path / "quick.sh", "exit 0")

    async def scenario(kits: KitProcess) -> None:
        first = kits.pid
        assert first is not None
        action = asyncio.ensure_future(kits.run(generic(tmp_path, "restore", hangs)))
        async with asyncio.timeout(WAIT):
            while not running.exists():
                await asyncio.sleep(0.01)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(ActionCrashed, match=f"kit process {first} ended"):
            await asyncio.wait_for(action, WAIT)
        assert await kits.run(generic(tmp_path, "restore", quick)) is None
        assert kits.pid not in (None, first)

    with_kits(tmp_path, scenario)


def test_the_kit_process_outlives_signals_meant_for_tutelad(tmp_path: Path) -> None:
    """Ctrl-C or a TERM to tutelad's process group reaches the child too: a tutelad that
    stops in order still removes what is in service through it."""
    quick = script(tmp_path / "quick.sh", "exit 0")

    async def scenario(kits: KitProcess) -> None:
        assert await kits.run(generic(tmp_path, "restore", quick)) is None  # it is up
        assert kits.pid is not None
        for number in (signal.SIGINT, signal.SIGTERM):
            os.kill(kits.pid, number)
        assert await kits.run(generic(tmp_path, "restore", quick)) is None
        assert procs.alive(kits.pid)

    with_kits(tmp_path, scenario)


def test_programs_the_kits_start_take_the_signals_tutelads_child_is_spared(
        tmp_path: Path) -> None:
    """The child shrugs TERM off by a handler, not by ignoring it: an ignored signal stays
    ignored in every program it starts, and an application that ignores TERM is stopped
    only by KILL after its stop timeout."""
    seen = tmp_path / "signals"
    restore = script(tmp_path / "restore.sh", f"grep -E '^Sig(Ign|Cgt)' /proc/$$/status > {seen}")

    async def scenario(kits: KitProcess) -> None:
        assert await kits.run(generic(tmp_path, "restore", restore)) is None

    with_kits(tmp_path, scenario)
    ignored = int(seen.read_text().split()[1], 16)  # SigIgn's mask, bit N-1 for signal N
    assert not ignored & (1 << (signal.SIGTERM - 1)) and not ignored & (1 << (signal.SIGINT - 1))
