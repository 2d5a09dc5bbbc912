"""A process's cwd may be on a filesystem a child resource mounts at restore: it is not
required when the resource is created or extended, and named when it is missing at start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tutela.kits.base import ActionContext, KitError
from tutela.kits.process import PIDFILE, ProcessKit, ProcessParams

MakeCtx = Callable[..., ActionContext[Any]]


def test_a_cwd_not_there_yet_does_not_keep_the_resource_from_this_node(tmp_path: Path) -> None:
    params = ProcessParams(command="sleep 100", cwd=str(tmp_path / "mnt" / "data"))
    assert ProcessKit().check_here(params) == []


def test_a_cwd_still_missing_at_start_is_named(supervise: MakeCtx, tmp_path: Path) -> None:
    missing = tmp_path / "mnt" / "data"
    ctx = supervise({"command": "sleep 100", "cwd": str(missing)})
    with pytest.raises(KitError, match=rf"cwd {missing} is not a directory on this node; .* "
                                       "depend on that one"):
        ProcessKit().restore(ctx)
    assert not (ctx.state_dir / PIDFILE).exists()
