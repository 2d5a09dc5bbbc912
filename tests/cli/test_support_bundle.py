"""`tutela support-bundle` on this host against a real tutelad, and with it stopped: the
bundle's layout (docs/support.md), what it says it could not collect, and no secret in any
file of it."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import pytest
from test_cli import tutela

SECRETS = {"password": "db-Pa55word-17", "token": "tok-Zq9x81"}
NODE_FILES = {"config.json", "generations.txt", "resource-states.json", "lcd-meta.json",
              "doctor.json", "logs/tutelad.log", "system/uname.txt", "system/addresses.txt",
              "system/routes.txt", "system/mounts.txt", "system/block-devices.txt",
              "system/packages.txt", "system/tutela.txt", "system/processes.txt"}


def cluster_keys(state: Path) -> set[str]:
    with sqlite3.connect(state / "lcd.sqlite") as lcd:
        rows = lcd.execute("SELECT value FROM meta WHERE key LIKE 'cluster_key%'").fetchall()
    return {row[0] for row in rows}


def unpack(bundle: Path, into: Path) -> Path:
    """The bundle unpacked; its one top directory."""
    with tarfile.open(bundle) as tar:
        assert all(m.mode == 0o600 and m.isfile() for m in tar.getmembers())
        tar.extractall(into, filter="data")
    (top,) = into.iterdir()
    return top


def assert_no_secret(top: Path, secrets: set[str]) -> None:
    assert secrets
    for path in top.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret!r} in {path}"


@pytest.fixture
def bundle_node(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    tutela(state, "init", "--cluster", "sbtest", "--node", "n1")
    return state


def test_bundle_with_tutelad_running(bundle_node: Path, tmp_path: Path) -> None:
    state = bundle_node
    tutela(state, "start")
    try:
        tutela(state, "resource", "create", "process", "app", "-p",
               "command=sh -c 'echo app started; exec sleep 100' app --password "
               + SECRETS["password"], "-p",
               f"env={{APP_TOKEN: {SECRETS['token']}}}", "--restore")
        out = tmp_path / "b.tar.gz"
        result = json.loads(tutela(state, "support-bundle", "-o", str(out), "--json").stdout)
    finally:
        tutela(state, "stop", check=False)
    assert result["path"] == str(out) and result["bytes"] == out.stat().st_size
    assert result["nodes"] == ["n1"] and result["missing"] == []
    top = unpack(out, tmp_path / "x")
    assert top.name.startswith("tutela-support-n1-")
    node = top / "nodes" / "n1"
    present = {str(p.relative_to(node)) for p in node.rglob("*") if p.is_file()}
    assert NODE_FILES | {"status.json", "resources/app/output.log"} <= present
    manifest = json.loads((top / "manifest.json").read_text())
    assert set(manifest["files"]) == {f"nodes/n1/{name}" for name in present}
    assert manifest["nodes"] == ["n1"] and manifest["missing"] == []
    assert "Everything was collected." in (top / "README.txt").read_text()
    config = json.loads((node / "config.json").read_text())
    assert config["resources"][0]["params"]["env"] == {"APP_TOKEN": "[redacted]"}
    assert json.loads((node / "status.json").read_text())["node"] == "n1"
    assert json.loads((node / "lcd-meta.json").read_text())["cluster_key"] == "[redacted]"
    assert_no_secret(top, set(SECRETS.values()) | cluster_keys(state))


def test_bundle_with_tutelad_stopped_says_what_is_missing(bundle_node: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "stopped.tar.gz"
    text = tutela(bundle_node, "support-bundle", "--output", str(out)).stdout
    assert text.startswith(f"wrote {out} (")
    assert "not collected: n1: status.json: tutelad is not running" in text
    top = unpack(out, tmp_path / "x")
    readme = (top / "README.txt").read_text()
    assert "Not collected:" in readme and "status.json: tutelad is not running" in readme
    node = top / "nodes" / "n1"
    assert (node / "config.json").is_file() and (node / "system" / "uname.txt").is_file()
    assert not (node / "status.json").exists()
    assert_no_secret(top, cluster_keys(bundle_node))


def test_output_in_a_missing_directory_is_refused(bundle_node: Path, tmp_path: Path) -> None:
    result = tutela(bundle_node, "support-bundle", "-o", str(tmp_path / "no" / "b.tgz"),
                    check=False)
    assert result.returncode == 2
    assert "--output: the directory" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "no").exists()
