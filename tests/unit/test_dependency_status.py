"""`tutela status` shows each dependency of a hierarchy, where the hierarchy it needs is up
and whether it is met (engine/dependency_status.py; cli/output.py draws it)."""

from __future__ import annotations

from typing import Any

import click
import pytest

from tutela.cli.output import _dependency_lines
from tutela.engine.cluster_view import Snapshot
from tutela.engine.dependency_status import dependency_status
from tutela.engine.peer_report import PeerReport
from tutela.lcd.document import parse_config
from tutela.model.config import ClusterConfig

UP = "ISP"


def config(location: str, multi_node_min: int | None = None) -> ClusterConfig:
    """app needs db at `location`; both may run on n1, n2, n3 (db multi_node with
    min_instances `multi_node_min` if given)."""
    nodes = [{"node": n, "priority": i} for i, n in enumerate(("n1", "n2", "n3"), 1)]
    db: dict[str, Any] = {"root": "db", "equivalencies": nodes}
    if multi_node_min is not None:
        db |= {"multi_node": True, "min_instances": multi_node_min}
    return parse_config({
        "name": "c", "nodes": [{"name": n} for n in ("n1", "n2", "n3")],
        "resources": [{"tag": t, "kit": "process", "params": {"command": "sleep 9"}}
                      for t in ("app", "db")],
        "hierarchies": [db, {"root": "app", "equivalencies": nodes,
                             "dependencies": [{"hierarchy": "db", "location": location}]}]})


def view(**running: str) -> Snapshot:
    """n1 is this node; n2 and n3 alive peers; running: node -> 'app', 'db' or 'app db'."""
    reports = {peer: PeerReport(states={tag: UP for tag in running.get(peer, "").split()})
               for peer in ("n2", "n3")}
    return Snapshot(me="n1", alive=frozenset(reports), holds={}, failed={},
                    states={p: r.states for p, r in reports.items()}, ran={},
                    blocking=frozenset(),
                    in_service_here=frozenset(running.get("n1", "").split()),
                    failed_here=frozenset(), failovers={})


@pytest.mark.parametrize(("location", "running", "met", "met_on"), [
    ("same_node", {"n1": "app db"}, True, ["n1"]),
    ("same_node", {"n1": "app", "n2": "db"}, False, []),  # app runs where db is not up
    ("same_node", {"n2": "db"}, True, ["n2"]),  # app runs nowhere: it could run on n2
    ("same_node", {}, False, []),
    ("any_node", {"n3": "app", "n2": "db"}, True, ["n3"]),
    ("any_node", {"n3": "app"}, False, []),
    ("different_node", {"n1": "app", "n2": "db"}, True, ["n1"]),
    ("different_node", {"n2": "app db"}, False, []),
    ("different_node", {"n2": "db"}, True, ["n1", "n3"]),
])
def test_met_where_the_hierarchy_runs_or_could_run(location: str, running: dict[str, str],
                                                   met: bool, met_on: list[str]) -> None:
    [entry] = dependency_status(config(location), "app", view(**running))
    up = sorted(n for n, tags in running.items() if "db" in tags.split())
    assert entry == {"hierarchy": "db", "location": location, "up_on": up, "met": met,
                     "met_on": met_on, "text": f"needs db {_words(location)}"}


def _words(location: str) -> str:
    return {"same_node": "up on the same node", "any_node": "up on some node",
            "different_node": "up on another node"}[location]


def test_a_multi_node_hierarchy_below_min_instances_counts_as_down() -> None:
    [entry] = dependency_status(config("any_node", multi_node_min=2), "app",
                                view(n1="app db"))
    assert (entry["up_on"], entry["met"]) == ([], False)
    [entry] = dependency_status(config("any_node", multi_node_min=2), "app",
                                view(n1="app db", n3="db"))
    assert (entry["up_on"], entry["met"]) == (["n1", "n3"], True)


def test_a_hierarchy_without_dependencies_has_no_entries() -> None:
    assert dependency_status(config("same_node"), "db", view(n1="db")) == []


def test_the_lines_below_the_tree() -> None:
    entries = [*dependency_status(config("same_node"), "app", view(n1="app db")),
               *dependency_status(config("any_node"), "app", view(n1="app"))]
    assert [click.unstyle(line) for line in _dependency_lines(entries)] == [
        "  needs db up on the same node: met (db up on n1)",
        "  needs db up on some node: not met (db up nowhere)"]
