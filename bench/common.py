"""Helpers shared by the failover benchmarks: bench/failover.py (tutela) and
bench/keepalived.py (keepalived doing the same VIP failover in a lab of the same shape).

Both measure with the same code, `tutela.lab.demo.measure_outage`: the lab's prober runs
in the client namespace, starts a fetch of http://198.51.100.100:8080/hello.txt every
10 ms (they overlap: one waiting for a lost answer holds up none after it) and reports the
longest gap between two good answers; the fault strikes only once the prober
says it is probing.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tutela.lab import Lab

# Scenario labels, the same for every system, so that the samples line up (bench/run_all.py
# plots them per scenario); how each system meets a scenario is said in its section's text.
KILL = "node kill (power off)"
FREEZE = "node freeze"
THAW = "thaw of the frozen node"
SWITCHOVER = "switchover"
RESOURCE_FAILURE = "resource failure (local recovery impossible)"
LINK_CUT = "link cut of the active node"
LINK_HEAL = "heal of the cut node (it rejoins)"

Samples = dict[str, list[float]]
"""Scenario label -> client-visible outages in seconds, in the order measured."""


def stop_on_sigterm() -> None:
    """A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the lab still comes down."""
    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)


def wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms until it holds; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval of the condition


def save_logs(lab: Lab, target: Path, extra: Sequence[Path] = ()) -> None:
    """Copy every node's logs (<root>/<node>/*.log, and <state dir>/*.log as state-*.log:
    tutelad's own log, all its lives) to `target`/<node>/, and the files in the directories
    `extra` to `target`/."""
    for node in lab.nodes:
        (target / node).mkdir(parents=True, exist_ok=True)
        for log in lab.node_dir(node).glob("*.log"):
            shutil.copy(log, target / node / log.name)
        for log in lab.state_dir(node).glob("*.log"):
            shutil.copy(log, target / node / f"state-{log.name}")
    for directory in extra:
        if directory.is_dir():
            shutil.copytree(directory, target / directory.name, dirs_exist_ok=True)


def command_line() -> str:
    """The command line this benchmark was started with, as typed (interpreter included)."""
    return shlex.join(sys.orig_argv)


def table(results: Mapping[str, Sequence[float]]) -> str:
    """A Markdown table: scenario, runs, min, median, max."""
    lines = ["| scenario | runs | min | median | max |", "|---|---|---|---|---|"]
    for name, gaps in results.items():
        if gaps:
            lines.append(f"| {name} | {len(gaps)} | {min(gaps):.2f} s | "
                         f"{statistics.median(gaps):.2f} s | {max(gaps):.2f} s |")
    return "\n".join(lines)


def write_samples(path: str | Path, data: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
    """Raw samples as JSON: {"<system>": {"<scenario label>": [seconds, ...]}}."""
    Path(path).write_text(json.dumps({system: {name: [round(g, 4) for g in gaps]
                                               for name, gaps in scenarios.items()}
                                      for system, scenarios in data.items()}, indent=2) + "\n")


def read_samples(path: str | Path) -> dict[str, Samples]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of systems")
    return {str(system): {str(name): [float(g) for g in gaps] for name, gaps in runs.items()}
            for system, runs in data.items()}
