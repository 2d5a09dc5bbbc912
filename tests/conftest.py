"""Test-suite wide set-up: makes tests/helpers.py importable from every test directory,
adds the end of every lab node's tutelad.log to the report of a lab test that failed (the
lab, and with it the logs, is gone by the time anyone reads a CI failure), and, when
pytest-xdist spreads the tests over processes, gives the simulation one fresh seed range
for all of them and runs it niced."""

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
SIM_NICENESS = 10
"""A niced process gets about a tenth of the CPU a process of niceness 0 beside it gets."""


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


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller, for each worker it starts (`make test` runs `-n 2`):
    the simulation's fresh seed range of this run, drawn once, here."""
    node.workerinput[FRESH_SEED] = _sim_plan().fresh_first


def pytest_configure(config: pytest.Config) -> None:
    """In an xdist worker, tests/sim/seeds.py takes the controller's fresh range: each worker
    imports it anew and would draw a range of its own, unlike the one printed. The variable
    that makes it replay a range is set only while it is imported, so that the tests of kits
    that hand TUTELA_* variables on see the environment as it was."""
    fresh = getattr(config, "workerinput", {}).get(FRESH_SEED)
    if fresh is None:
        return
    before = os.environ.get(FRESH_SEED)
    os.environ[FRESH_SEED] = str(fresh)
    try:
        _sim_plan()
    finally:
        if before is None:
            del os.environ[FRESH_SEED]
        else:
            os.environ[FRESH_SEED] = before


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """In an xdist worker, a simulation test (CPU-bound, on every core: simulate.py's
    run_parallel) runs niced, with the processes it starts, so that a test on the other
    worker that waits on a deadline (a witness grant of 2 s, a daemon's answer) gets the
    CPU it gets when alone. Root only: lowering the niceness again needs CAP_SYS_NICE."""
    niced = (hasattr(item.config, "workerinput") and os.geteuid() == 0
             and item.path.is_relative_to(SIM_DIR))
    before = os.getpriority(os.PRIO_PROCESS, 0)
    if niced:
        os.setpriority(os.PRIO_PROCESS, 0, SIM_NICENESS)
    try:
        yield
    finally:
        if niced:
            os.setpriority(os.PRIO_PROCESS, 0, before)


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
