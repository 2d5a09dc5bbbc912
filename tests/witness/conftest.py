"""Fixtures for the witness tests: tutela-witness processes on 127.0.0.1, always ended.

A missing console script fails the tests; nothing here is skipped or mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_support import WitnessProcess


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[WitnessProcess]:
    """A fresh witness of its own, for tests that restart it or need it empty."""
    process = WitnessProcess(tmp_path / "witness").start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="module")
def shared_witness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessProcess]:
    """One witness for a module's tests (each uses its own clusters): its start-up quiet
    period is waited out once, not per test."""
    process = WitnessProcess(tmp_path_factory.mktemp("shared") / "witness").start()
    try:
        yield process
    finally:
        process.kill()
