"""Progress of a long request (a restore, an apply) for a person at a terminal.

tutelad answers a request once it is done and streams nothing meanwhile; so while the
request runs in a thread, this polls `status` and draws a count from it: for a restore, the
resources concerned in service (anywhere in the cluster); for an apply, the nodes that hold
the new generation. With rich, drawn over itself and gone at the end; only when stdout is a
terminal and without --json: a script sees the answer alone.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tutela.cli import output
from tutela.cli.client import DaemonError, call

T = TypeVar("T")
POLL = 0.5
"""Seconds between two looks at tutelad's status while the request runs."""
IN_SERVICE = ("ISP", "ISU")


def shown(as_json: bool) -> bool:
    """Whether progress is drawn: stdout is a terminal, and not --json."""
    return not as_json and sys.stdout.isatty()


Measure = Callable[[dict[str, Any]], tuple[int, int]]
"""From a status answer: (done, all)."""


def while_running(state_dir: Path, label: str, request: Callable[[], T], measure: Measure,
                  unit: str) -> T:
    """`request()`'s answer (or its error); meanwhile a bar of `measure(status)`."""
    # a terminal only: 45 ms to import
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["answer"] = request()
        except Exception as error:  # noqa: BLE001 - raised again in the main thread
            outcome["error"] = error

    worker = threading.Thread(target=run, name="request", daemon=True)
    worker.start()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(),
                  console=output.console(), transient=True) as progress:
        task = progress.add_task(label, total=None)
        while worker.is_alive():
            counted = _measured(state_dir, measure)
            if counted is not None:
                progress.update(task, completed=counted[0], total=counted[1])
            worker.join(POLL)
    if "error" in outcome:
        raise outcome["error"]
    answer: T = outcome["answer"]
    return answer


def _measured(state_dir: Path, measure: Measure) -> tuple[int, int] | None:
    """`measure` of tutelad's status now; None while tutelad does not answer."""
    try:
        status = call(state_dir, "status", timeout=POLL * 4)
    except (DaemonError, OSError):
        return None
    return measure(status)


def _runs(resource: dict[str, Any]) -> bool:
    """In service here, or on another node as its last fresh report says."""
    return resource["state"] in IN_SERVICE or any(
        there["state"] in IN_SERVICE and not there["stale"]
        for there in resource.get("elsewhere", {}).values())


def restored(tag: str) -> Measure:
    """A restore of `tag`: of it and everything it depends on, how many are in service."""
    def measure(status: dict[str, Any]) -> tuple[int, int]:
        resources = {r["tag"]: r for h in status["hierarchies"] for r in h["resources"]}
        found: set[str] = set()
        todo = [tag]
        while todo:
            current = todo.pop()
            if current in resources and current not in found:
                found.add(current)
                todo += resources[current]["depends_on"]
        return sum(_runs(resources[t]) for t in found), len(found)
    return measure


def applied(before: int | None) -> Measure:
    """An apply made on generation `before`: how many nodes hold a newer one (it commits
    here first, then goes to the others)."""
    def measure(status: dict[str, Any]) -> tuple[int, int]:
        nodes = status["nodes"]
        return sum(before is not None and (n.get("generation") or 0) > before
                   for n in nodes), len(nodes)
    return measure
