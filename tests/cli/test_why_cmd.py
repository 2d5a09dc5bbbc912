"""`tutela why` against a real tutelad on one node (docs/why.md): an administrator's
restore explained, TAG given as any resource of the hierarchy or left out, a TAG that is no
resource refused (exit 2, nothing read), the --json form, and with tutelad stopped this
node's own journal, saying so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import node, tutela  # noqa: F401 - node: a fixture, used below


@pytest.fixture
def restored(node: Path) -> Iterator[Path]:  # noqa: F811
    """The node, whose hierarchy web -> web-data an administrator restored."""
    tutela(node, "resource", "create", "process", "web-data", "-p", "command=sleep 100")
    tutela(node, "resource", "create", "process", "web", "-p", "command=sleep 100",
           "--depends-on", "web-data")
    tutela(node, "restore", "web")
    yield node


def why_json(state: Path, *args: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(tutela(state, "why", "--json", *args).stdout)
    return answer


def test_a_restore_is_explained_for_any_resource_of_its_hierarchy(restored: Path) -> None:
    shown = tutela(restored, "why", "web-data")
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("web was restored on n1 (asked: tutela restore); in service "
                               "at "), lines
    assert lines[1].startswith("The restore on n1 took "), lines
    assert tutela(restored, "why").stdout == shown.stdout  # the last move of any hierarchy
    answer = why_json(restored, "web")
    assert answer["notes"] == [] and answer["local_only"] is False
    explained = answer["explanation"]
    assert (explained["hierarchy"], explained["outcome"], explained["node"]) == (
        "web", "restore", "n1")
    assert [r["kind"] for r in explained["records"]] == ["restore.started", "restore.finished"]
    assert explained["timings"]["restore"] >= 0 and explained["sentences"] == lines


def test_a_tag_that_is_no_resource_is_refused(restored: Path) -> None:
    refused = tutela(restored, "why", "ghost", check=False)
    assert refused.returncode == 2
    assert "'ghost'" in refused.stderr and "tutela status" in refused.stderr
    assert refused.stdout == ""


def test_with_tutelad_stopped_this_nodes_journal_is_explained(restored: Path) -> None:
    tutela(restored, "stop")
    shown = tutela(restored, "why", "web")
    assert "tutelad is not running on this node" in shown.stderr
    assert shown.stdout.startswith("web was restored on n1")
    assert why_json(restored, "web")["local_only"] is True
