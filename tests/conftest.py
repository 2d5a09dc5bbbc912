"""Test-suite wide set-up: makes tests/helpers.py importable from every test directory,
adds the end of every lab node's tutelad.log to the report of a lab test that failed (the
lab, and with it the logs, is gone by the time anyone reads a CI failure), and gives the
simulation one fresh seed range per run when pytest-xdist spreads it over processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tutela.lab.errors import LabError

if TYPE_CHECKING:
    from seeds import SeedPlan

LOG_LINES = 60
SIM_DIR = Path(__file__).parent / "sim"
FRESH_SEED = "TUTELA_SIM_FRESH_SEED"


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


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker (`make test` runs `-n 2`) imports tests/sim/seeds.py anew and
    would draw a fresh seed range of its own, unlike the one printed: the controller draws
    it and hands it on through TUTELA_SIM_FRESH_SEED, which replays a range."""
    if _xdist_controller(config):
        os.environ[FRESH_SEED] = str(_sim_plan().fresh_first)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """Under xdist the simulation's own conftest (which prints the range) runs only in the
    workers, whose output nobody sees: the controller prints it for a run with sim tests."""
    sim_conftest = str(SIM_DIR / "conftest.py")
    ran_sim = any(getattr(report, "nodeid", "").startswith("tests/sim/")
                  for reports in terminalreporter.stats.values() for report in reports)
    if (_xdist_controller(config) and ran_sim
            and not config.pluginmanager.has_plugin(sim_conftest)):
        terminalreporter.write_line(_sim_plan().describe())


def _xdist_controller(config: pytest.Config) -> bool:
    """This process hands the tests out to xdist workers (`-n N`, N > 0)."""
    return config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput")


def _sim_plan() -> SeedPlan:
    """tests/sim/seeds.py's plan of this run (the module the simulation's tests import)."""
    if str(SIM_DIR) not in sys.path:
        sys.path.insert(0, str(SIM_DIR))
    from seeds import PLAN
    return PLAN
