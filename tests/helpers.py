"""Shared test helpers: waiting on conditions with deadlines, never sleeping blind; lab names
no other run uses; golden files that are compared, never rewritten and then compared with
themselves."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tutela.lab.netns import NAME_RE

T = TypeVar("T")
UPDATE_GOLDEN = "TUTELA_UPDATE_GOLDEN"
LAB_PREFIX_MAX = 7
"""Room for "_", 8 random hex digits and one more character a test may append (16 in all)."""


def wait_until(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll `condition` until it returns a truthy value; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the condition may fail until it holds
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def unique_lab_name(prefix: str) -> str:
    """A lab name for `Lab.up` that no other test run uses at the same time: `prefix`, "_"
    and 8 random hex digits, e.g. unique_lab_name("wf") -> "wf_3f9a0c1d". Lab names are
    global (namespaces are named after them), so fixed names collide across runs."""
    if len(prefix) > LAB_PREFIX_MAX or not NAME_RE.match(prefix):
        raise ValueError(f"lab name prefix {prefix!r}: use at most {LAB_PREFIX_MAX} of "
                         "a-z, 0-9 and '_', starting with a letter or digit")
    return f"{prefix}_{secrets.token_hex(4)}"


def updating_golden() -> bool:
    """TUTELA_UPDATE_GOLDEN=1: rewrite golden files that differ (refused under CI)."""
    if os.environ.get(UPDATE_GOLDEN) != "1":
        return False
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{UPDATE_GOLDEN}=1 with CI set: golden files are not rewritten in CI; "
                    f"rewrite them locally, review the diff and commit it")
    return True


def check_goldens(pairs: list[tuple[Path, str]]) -> None:
    """Assert each golden file holds its actual text. Under TUTELA_UPDATE_GOLDEN=1 the ones
    that differ (or are missing) are rewritten and the test fails saying so: a rewritten
    golden proves nothing until a run without the variable compares against it."""
    update = updating_golden()
    differing = [(golden, actual) for golden, actual in pairs
                 if not golden.exists() or golden.read_text() != actual]
    if update and differing:
        for golden, actual in differing:
            golden.write_text(actual)
        pytest.fail(f"rewrote {len(differing)} golden file(s): "
                    f"{', '.join(str(g) for g, _ in differing)}; review the diff, then re-run "
                    f"without {UPDATE_GOLDEN} to compare")
    for golden, actual in differing:
        assert golden.exists(), f"no golden {golden}; run with {UPDATE_GOLDEN}=1, review it"
        assert actual == golden.read_text(), (f"{golden} differs (after an intended change: "
                                              f"{UPDATE_GOLDEN}=1, then review the diff)")
