"""daemon/fencing.py carries out the fencing the ownership core decides: the fence agent
command run for real (a shell), its failure as the stuck reason fence_failed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import cast

import pytest

from tutela.arbiter.timing import LeaseTiming
from tutela.daemon import fencing as fencing_module
from tutela.daemon.fencing import FenceFailed, Fencing
from tutela.engine.node import NodeEngine
from tutela.engine.stuck import Blocked


def fencing() -> Fencing:
    # The engine is only asked for at self-fencing, which these tests do not reach.
    no_engine = cast(NodeEngine, None)
    return Fencing(no_engine, LeaseTiming(), list, lambda: False)


def test_a_fence_command_that_exits_0_fences(tmp_path: Path) -> None:
    marker = tmp_path / "fenced"
    asyncio.run(fencing().fence_peer("app", "node1", f"echo node1 > {marker}"))
    assert marker.read_text() == "node1\n"


def test_a_failed_fence_command_says_why_as_a_stuck_reason() -> None:
    with pytest.raises(FenceFailed) as failed:
        asyncio.run(fencing().fence_peer("app", "node1", "echo no switch; exit 3"))
    assert failed.value.blocked == Blocked("fence_failed", "node1", "exit 3: no switch")
    assert "not taking over" in str(failed.value)


def test_a_fence_command_that_hangs_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fencing_module, "FENCE_TIMEOUT", 0.2)
    with pytest.raises(FenceFailed) as failed:
        asyncio.run(fencing().fence_peer("app", "node1", "exec sleep 30"))
    assert failed.value.blocked.reason == "fence_failed"
    assert "did not finish in 0.2s" in failed.value.blocked.detail


def test_a_fence_command_that_leaves_a_process_behind_fences_when_it_exits() -> None:
    """The background `sleep` holds the output open; the fence is over when the command
    exits (it used to wait for the output to close, up to FENCE_TIMEOUT, then fail)."""
    fence = fencing()
    started = time.monotonic()
    asyncio.run(fence.fence_peer("app", "node1", "sleep 30 & echo $! > /dev/null; echo done"))
    assert time.monotonic() - started < fencing_module.FENCE_TIMEOUT / 2


def test_a_failed_fence_command_that_leaves_a_process_behind_says_why() -> None:
    with pytest.raises(FenceFailed) as failed:
        asyncio.run(fencing().fence_peer("app", "node1", "sleep 30 & echo no switch; exit 4"))
    assert failed.value.blocked == Blocked("fence_failed", "node1", "exit 4: no switch")
