"""Shows the simulation's fresh seed range of this run, whatever the outcome: a failure
found in it can be replayed (tests/sim/seeds.py)."""

from __future__ import annotations

import pytest
from seeds import PLAN


def pytest_report_header() -> str:
    return PLAN.describe()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(PLAN.describe())
