"""Progress of `tutela restore` and `tutela apply` under a real pseudo-terminal (the pty
module), against a real tutelad of one node on this host: a hierarchy of four generic
resources whose restore scripts take a second each (the scripts are the resources' work,
not a wait of the test). On the terminal a bar counts them into service; into a pipe, or
with --json, only the answer comes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import terminal
from terminal import ANSI

BIN = Path(sys.executable).parent
TAGS = ["top", "mid", "low", "base"]
"""top depends on mid, mid on low, low on base: restored base first, one at a time."""


def tutela(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def on_terminal(state: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    return terminal.on_terminal([str(BIN / "tutela"), "--state-dir", str(state), *args],
                                stdin=stdin)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("progress")
    state = directory / "state"
    script = directory / "slow-restore"
    script.write_text("#!/bin/sh\nsleep 1\n")
    script.chmod(0o755)
    assert tutela(state, "init", "--cluster", "progress", "--node", "n1").returncode == 0
    assert tutela(state, "start").returncode == 0
    try:
        for tag, child in reversed(list(zip(TAGS, [*TAGS[1:], None], strict=True))):
            created = tutela(state, "resource", "create", "generic", tag, "-p",
                             f"restore={script}", "-p", "remove=/bin/true",
                             *(["--depends-on", child] if child else []))
            assert created.returncode == 0, created.stderr
        yield state
    finally:
        tutela(state, "stop")


def test_restore_shows_progress_on_a_terminal(node: Path) -> None:
    status, text = on_terminal(node, "restore", "top")
    assert status == 0, text
    plain = ANSI.sub("", text)
    assert "restoring top" in plain and "/4 in service" in plain, text
    assert re.search(r"[0-3]/4 in service", plain), text  # seen while it ran
    assert "in service on n1: base low mid top" in plain
    assert tutela(node, "remove", "top").returncode == 0


def test_no_progress_into_a_pipe_or_with_json(node: Path) -> None:
    piped = tutela(node, "restore", "top")
    assert piped.returncode == 0
    assert piped.stdout == "in service on n1: base low mid top\n" and piped.stderr == ""
    assert tutela(node, "remove", "top").returncode == 0
    status, text = on_terminal(node, "restore", "top", "--json")
    assert status == 0 and "in service" not in text.replace('"restored"', "")
    assert json.loads(text)["restored"] == ["base", "low", "mid", "top"]


def test_apply_shows_progress_on_a_terminal(node: Path) -> None:
    """The nodes that hold the new generation (here the one node): drawn at least once,
    then gone, and the answer."""
    assert tutela(node, "remove", "top").returncode == 0  # its parameters may change then
    document = yaml.safe_load(tutela(node, "export").stdout)
    document["resources"][0]["params"]["remove"] = "/usr/bin/true"
    status, text = on_terminal(node, "apply", "-f", "-", stdin=yaml.safe_dump(document)
                               + "\x04")
    plain = ANSI.sub("", text)
    assert status == 0, text
    assert "applying <stdin>" in plain and "nodes at the new generation" in plain, text
    assert "applied 1 change(s)" in plain
