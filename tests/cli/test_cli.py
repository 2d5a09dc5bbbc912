"""The CLI against a real tutelad on this host (no resources brought in service here).

Bad input must exit non-zero, name the field and the fix, and leave the generation alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

BIN = Path(sys.executable).parent


def tutela(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args], check=False,
                            capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"tutela {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    tutela(state, "init", "--cluster", "clitest", "--node", "n1")
    tutela(state, "start")
    try:
        yield state
    finally:
        tutela(state, "stop", check=False)


def generation(state: Path) -> int:
    return int(json.loads(tutela(state, "status", "--json").stdout)["generation"])


@pytest.mark.parametrize(("args", "field", "fix"), [
    (["filesystem", "fs", "-p", "device=/dev/loop7", "-p", "fstype=ext4"],
     "params.mountpoint", "--param mountpoint="),
    (["ip", "vip", "-p", "address=198.51.100.300/24"], "params.address", "tutela kit show ip"),
    (["nosuchkit", "share"], "kit", "use one of: "),  # the kits, a list that grows
    (["process", "bad tag", "-p", "command=true"], "tag", ""),
    (["process", "p", "-p", "command=true", "--depends-on", "ghost"], "depends_on",
     "create that resource first"),
    (["process", "p", "-p", "command=true", "-p", "colour=red"], "params.colour",
     "remove it"),
    (["generic", "g", "-p", "restore=/nonexistent/start", "-p", "remove=/bin/true"],
     "resources[g].params.restore", "prepare this node"),
])
def test_bad_create_names_field_and_fix_and_changes_nothing(
        node: Path, args: list[str], field: str, fix: str) -> None:
    before = generation(node)
    result = tutela(node, "resource", "create", *args, check=False)
    assert result.returncode == 2, result.stderr
    assert field in result.stderr
    assert fix in result.stderr
    assert "nothing was changed" in result.stderr
    assert generation(node) == before


def test_dependency_cycle_is_refused(node: Path) -> None:
    tutela(node, "resource", "create", "process", "a", "-p", "command=sleep 100")
    tutela(node, "resource", "create", "process", "b", "-p", "command=sleep 100",
           "--depends-on", "a")
    before = generation(node)
    result = tutela(node, "dependency", "add", "a", "b", check=False)
    assert result.returncode == 2
    assert "dependency cycle a -> b -> a" in result.stderr
    assert generation(node) == before


def test_export_apply_round_trip_and_dry_run(node: Path, tmp_path: Path) -> None:
    tutela(node, "resource", "create", "process", "web", "-p", "command=sleep 100")
    exported = tmp_path / "cluster.yaml"
    tutela(node, "export", "-o", str(exported))
    assert "no changes" in tutela(node, "apply", "-f", str(exported)).stdout
    edited = exported.read_text().replace("command: sleep 100", "command: sleep 200")
    exported.write_text(edited)
    before = generation(node)
    dry = tutela(node, "apply", "-f", str(exported), "--dry-run")
    assert "~ resources[web].params.command: 'sleep 100' -> 'sleep 200'" in dry.stdout
    assert generation(node) == before
    applied = json.loads(tutela(node, "apply", "-f", str(exported), "--json").stdout)
    assert applied["generation"] == before + 1
    assert tutela(node, "export").stdout == edited


def test_bad_document_is_refused_whole(node: Path, tmp_path: Path) -> None:
    document = tmp_path / "bad.yaml"
    document.write_text("name: clitest\nnodes: [{name: n1}]\nresources:\n"
                        "  - {tag: ok, kit: process, params: {command: sleep 1}}\n"
                        "  - {tag: broken, kit: filesystem, params: {device: /dev/x}}\n")
    before = generation(node)
    result = tutela(node, "apply", "-f", str(document), check=False)
    assert result.returncode == 2
    assert "resources[broken].params.mountpoint" in result.stderr
    assert generation(node) == before
    roots = [h["root"] for h in json.loads(tutela(node, "status", "--json").stdout)["hierarchies"]]
    assert roots == []


def test_not_running_says_how_to_start(tmp_path: Path) -> None:
    result = tutela(tmp_path / "nothing", "status", check=False)
    assert result.returncode == 3
    assert "tutela start" in result.stderr


def _command_paths(group: click.Group, ctx: click.Context,
                   prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group below `group`, the lazy ones (lab, migrate, doctor, config)
    included, as argv prefixes."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _command_paths(command, ctx, (*prefix, name))


def test_every_command_has_help(tmp_path: Path) -> None:
    from tutela.cli.main import cli

    commands = list(_command_paths(cli, click.Context(cli)))
    assert ("config", "set") in commands and ("doctor",) in commands  # the lazy ones too
    for command in [(), *commands]:
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, command
        assert result.output.count("\n") > 3, command  # a description, not just usage


def test_kit_show_lists_parameters(tmp_path: Path) -> None:
    shown = json.loads(tutela(tmp_path, "kit", "show", "filesystem", "--json").stdout)
    names = {p["name"]: p for p in shown["params"]}
    assert names["mountpoint"]["required"] is True
    assert names["mountpoint"]["description"]
