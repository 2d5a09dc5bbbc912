"""`tutela events` against a real tutelad on one node (docs/events.md): `--follow` prints
records as they are written and ends on Ctrl-C with exit 0; a bad `--since` is refused
naming both forms; with tutelad stopped this node's journal is shown, saying so."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_cli import BIN, node, tutela  # noqa: F401 - node: a fixture, used below
from test_status_watch import interrupt, read_until


def test_follow_prints_new_records_and_ends_on_ctrl_c(node: Path) -> None:  # noqa: F811
    tutela(node, "resource", "create", "process", "web", "-p", "command=sleep 100")
    process = subprocess.Popen(
        [str(BIN / "tutela"), "--state-dir", str(node), "events", "--follow", "--json",
         "--interval", "0.3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.fileno()
    try:
        seen = read_until(output, lambda out: b"config.applied" in out,
                          "the records written before --follow started")
        tutela(node, "restore", "web")
        seen += read_until(output, lambda out: b'"restore.finished"' in out,
                           "the restore's records, written after --follow started")
    finally:
        code = interrupt(process, output)
    assert code == 0
    records = [json.loads(line) for line in seen.decode().splitlines()]
    kinds = [r["kind"] for r in records if r["subject"] == "web"]
    assert kinds == ["restore.started", "restore.finished"]
    assert len({r["correlation"] for r in records if r["subject"] == "web"}) == 1
    assert len({json.dumps(r) for r in records}) == len(records)  # each once


def test_a_bad_since_is_refused_naming_both_forms(node: Path) -> None:  # noqa: F811
    refused = tutela(node, "events", "--since", "yesterday", check=False)
    assert refused.returncode == 2
    assert "--since" in refused.stderr and "90s" in refused.stderr and "ISO" in refused.stderr


def test_with_tutelad_stopped_this_nodes_journal_is_shown(node: Path) -> None:  # noqa: F811
    tutela(node, "resource", "create", "process", "web", "-p", "command=sleep 100")
    tutela(node, "stop")
    shown = tutela(node, "events")
    assert "tutelad is not running on this node" in shown.stderr
    assert " n1 INFO    config.applied cluster: " in shown.stdout
    answer = json.loads(tutela(node, "events", "--json").stdout)
    assert answer["local_only"] is True and answer["events"]
