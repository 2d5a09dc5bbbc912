"""`--json` on every command, errors included: one {"error": {...}} object on stdout with
the exit code the command has without --json (docs/cli.md, "Exit codes"); against a real
tutelad of one node on this host (no resources in service but a failing one's attempt).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from tutela.cli.main import cli
from tutela.cli.output import ExitCode
from tutela.compat import lifekeeper, serviceguard

BIN = Path(sys.executable).parent
COMPAT_WITH_JSON = {"cmviewcl", "lcdstatus"}
"""The LifeKeeper and Serviceguard commands with --json (tutela's addition to the status
displays); the others keep their originals' options, nothing more (docs/compat.md)."""


def run(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


def leaf_commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()
                  ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from leaf_commands(command, ctx, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_takes_json_and_help() -> None:
    """A new command without --json or --help fails here."""
    commands = list(leaf_commands(cli, click.Context(cli)))
    assert len(commands) > 40 and (("lab", "power-off") in dict(commands))
    for path, command in commands:
        assert any("--json" in p.opts for p in command.params), f"tutela {' '.join(path)}"
        shown = CliRunner().invoke(cli, [*path, "--help"])
        assert shown.exit_code == 0 and "--json" in shown.output, path


def test_compat_commands_take_help_and_json_where_tutela_added_it() -> None:
    commands = [c for module in (lifekeeper, serviceguard) for c in vars(module).values()
                if isinstance(c, click.Command)]
    assert len(commands) == 13
    for command in commands:
        shown = CliRunner().invoke(command, ["--help"])
        assert shown.exit_code == 0 and "Usage:" in shown.output, command.name
    assert {c.name for c in commands if any("--json" in p.opts for p in c.params)} == \
        COMPAT_WITH_JSON


def error_of(result: subprocess.CompletedProcess[str], exit_code: int) -> dict[str, Any]:
    """The error object on stdout, checked against the exit code and an empty stderr."""
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    error: dict[str, Any] = json.loads(result.stdout)["error"]
    assert error["exit_code"] == exit_code and error["message"], error
    return error


def test_not_running(tmp_path: Path) -> None:
    plain = run(tmp_path, "status")
    error = error_of(run(tmp_path, "status", "--json"), ExitCode.NOT_RUNNING)
    assert plain.returncode == ExitCode.NOT_RUNNING and plain.stdout == ""
    assert error["code"] == "not-running" and "tutela start" in error["fix"]
    assert error_of(run(tmp_path, "restore", "web", "--json"), 3)["code"] == "not-running"


def test_usage_error(tmp_path: Path) -> None:
    error = error_of(run(tmp_path, "status", "--colour", "--json"), ExitCode.REFUSED)
    assert error == {**error, "code": "usage", "field": "--colour",
                     "fix": "see 'tutela status --help'"}
    assert run(tmp_path, "status", "--colour").returncode == ExitCode.REFUSED
    watch = error_of(run(tmp_path, "status", "--watch", "--json"), ExitCode.REFUSED)
    assert "tutela status --json" in watch["message"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("json") / "state"
    assert run(state, "init", "--cluster", "jsonerr", "--node", "n1").returncode == 0
    started = json.loads(run(state, "start", "--json").stdout)
    assert started["started"] == "directly" and started["peers_heard"] == 0
    try:
        yield state
    finally:
        assert json.loads(run(state, "stop", "--json").stdout)["stopped"] is True


def test_bad_input_names_the_field_and_fix(node: Path) -> None:
    argv = ["resource", "create", "ip", "vip", "-p", "address=198.51.100.300/24"]
    assert run(node, *argv).returncode == ExitCode.REFUSED
    error = error_of(run(node, *argv, "--json"), ExitCode.REFUSED)
    assert error["code"] == "refused" and error["field"] == "resources[vip].params.address"
    assert "tutela kit show ip" in error["fix"] and len(error["problems"]) == 1


def test_initialised_node_refuses_init(node: Path) -> None:
    error = error_of(run(node, "init", "--cluster", "x", "--json"), ExitCode.REFUSED)
    assert "already exists" in error["message"]


def test_voter_change_refused_with_exit_2(node: Path) -> None:
    """Two voters at once: refused as not allowed, as the exit code table says (it was
    exit 1 before)."""
    document = yaml.safe_load(run(node, "export").stdout)
    document["nodes"] += [{**document["nodes"][0], "name": name} for name in ("n2", "n3")]
    before = json.loads(run(node, "status", "--json").stdout)["generation"]
    for options in (("--dry-run",), ()):
        argv = ["apply", "-f", "-", *options]
        assert run(node, *argv, stdin=yaml.safe_dump(document)).returncode == 2
        error = error_of(run(node, *argv, "--json", stdin=yaml.safe_dump(document)), 2)
        assert error["field"] == "nodes, witnesses" and "adds n2, adds n3" in error["message"]
    assert json.loads(run(node, "status", "--json").stdout)["generation"] == before


def test_failed_operation(node: Path) -> None:
    created = run(node, "resource", "create", "generic", "bad", "-p", "restore=/bin/false",
                  "-p", "remove=/bin/true", "--json")
    assert json.loads(created.stdout)["summary"] == "created resource bad"
    assert run(node, "restore", "bad").returncode == ExitCode.FAILED
    error = error_of(run(node, "restore", "bad", "--json"), ExitCode.FAILED)
    assert error["code"] == "failed" and "/bin/false exited 1" in error["message"]
    assert json.loads(run(node, "resource", "delete", "bad", "--json").stdout)["generation"]


def test_commands_that_had_no_json(node: Path) -> None:
    exported = json.loads(run(node, "export", "--json").stdout)
    assert exported["yaml"].startswith("format: tutela/1")
    logged = json.loads(run(node, "log", "-n", "3", "--json").stdout)
    assert len(logged["lines"]) == 3 and logged["path"].endswith(".log")
    follow = error_of(run(node, "log", "-f", "--json"), ExitCode.REFUSED)
    assert follow["code"] == "usage"
