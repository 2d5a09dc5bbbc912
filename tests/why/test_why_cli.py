"""`tutela why` against a real tutelad on one node (docs/why.md): an administrator's
restore explained, TAG given as any resource of the hierarchy or left out, a TAG that is no
resource refused (exit 2, nothing read), the --json form, and with tutelad stopped this
node's own journal, saying so."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


def tutela(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args],
                            check=False, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"tutela {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Path]:
    """A running node whose hierarchy web -> web-data an administrator restored."""
    state = tmp_path / "state"
    tutela(state, "init", "--cluster", "whytest", "--node", "n1")
    tutela(state, "start")
    try:
        tutela(state, "resource", "create", "process", "web-data", "-p", "command=sleep 100")
        tutela(state, "resource", "create", "process", "web", "-p", "command=sleep 100",
               "--depends-on", "web-data")
        tutela(state, "restore", "web")
        yield state
    finally:
        tutela(state, "stop", check=False)


def why_json(state: Path, *args: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(tutela(state, "why", "--json", *args).stdout)
    return answer


def test_a_restore_is_explained_for_any_resource_of_its_hierarchy(node: Path) -> None:
    shown = tutela(node, "why", "web-data")
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("web was restored on n1 (asked: tutela restore); in service "
                               "at "), lines
    assert lines[1].startswith("The restore on n1 took "), lines
    assert tutela(node, "why").stdout == shown.stdout  # the last move of any hierarchy
    answer = why_json(node, "web")
    assert answer["notes"] == [] and answer["local_only"] is False
    explained = answer["explanation"]
    assert (explained["hierarchy"], explained["outcome"], explained["node"]) == (
        "web", "restore", "n1")
    assert [r["kind"] for r in explained["records"]] == ["restore.started", "restore.finished"]
    assert explained["timings"]["restore"] >= 0 and explained["sentences"] == lines


def test_a_tag_that_is_no_resource_is_refused(node: Path) -> None:
    refused = tutela(node, "why", "ghost", check=False)
    assert refused.returncode == 2
    assert "'ghost'" in refused.stderr and "tutela status" in refused.stderr
    assert refused.stdout == ""


def test_with_tutelad_stopped_this_nodes_journal_is_explained(node: Path) -> None:
    tutela(node, "stop")
    shown = tutela(node, "why", "web")
    assert "tutelad is not running on this node" in shown.stderr
    assert shown.stdout.startswith("web was restored on n1")
    assert why_json(node, "web")["local_only"] is True
