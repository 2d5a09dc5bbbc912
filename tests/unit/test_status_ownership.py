"""`tutela status` (human form): a clustered hierarchy's failover hold and why it is stuck,
under its tree."""

from __future__ import annotations

from typing import Any

import pytest

from tutela.cli.output import print_status


def status(ownership: dict[str, Any] | None) -> dict[str, Any]:
    app = {"tag": "app", "kit": "process", "state": "OSU", "reason": "", "since": "",
           "depends_on": [], "params": {}, "elsewhere": {}}
    return {"cluster": "c", "node": "node2", "generation": 3, "daemon_pid": 1, "nodes": [
        {"name": "node2", "state": "ALIVE", "local": True, "paths": []}],
        "hierarchies": [{"root": "app", "state": "OSU", "resources": [app],
                         "ownership": ownership}]}


def test_a_stuck_hierarchy_says_who_sees_it_why_and_since_when(
        capsys: pytest.CaptureFixture[str]) -> None:
    print_status(status({"hold": {"failovers": 3, "window": 600.0, "left": 287.4,
                                  "until": "2026-12-07T01:00:00+00:00"},
                         "stuck": [{"node": "node2", "message": "node1's tutelad does not "
                                    "answer but its service still answers (...)",
                                    "since": "2026-12-07T00:31:02+00:00"}]}))
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        "  failover held: 3 failovers in 600s, 287s left (until 2026-12-07T01:00:00+00:00); "
        "'tutela restore app' ends the hold",
        "  not running: node2 sees: node1's tutelad does not answer but its service still "
        "answers (...) (since 2026-12-07T00:31:02+00:00)"]


def test_nothing_more_when_nothing_is_held_or_stuck(capsys: pytest.CaptureFixture[str]) -> None:
    print_status(status(None))
    assert capsys.readouterr().out.splitlines()[-1].startswith("app  OSU  process")
