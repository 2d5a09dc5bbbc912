"""Test-suite wide set-up: makes tests/helpers.py importable from every test directory, and
adds the end of every lab node's tutelad.log to the report of a lab test that failed (the
lab, and with it the logs, is gone by the time anyone reads a CI failure)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tutela.lab.errors import LabError

LOG_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    lab = getattr(item, "funcargs", {}).get("lab")
    if not report.failed or lab is None or not hasattr(lab, "state_dir"):
        return
    for node in lab.nodes:
        try:
            lines = (lab.state_dir(node) / "tutelad.log").read_text().splitlines()
        except (OSError, LabError) as error:  # LabError: a teardown failure, lab gone
            lines = [f"(no log: {error})"]
        report.sections.append((f"{node} tutelad.log, last {LOG_LINES} lines",
                                "\n".join(lines[-LOG_LINES:])))
