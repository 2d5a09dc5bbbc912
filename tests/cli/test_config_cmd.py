"""`tutela config get` and `tutela config set` against a real tutelad on this host.

A set is one change, checked like an apply; a refused one or a dry run leaves the
generation alone, and every refusal names the field and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import generation, node, tutela  # noqa: F401 - node: a fixture, used below


@pytest.fixture
def state(node: Path) -> Path:  # noqa: F811 - test_cli's one-node tutelad, named for here
    return node


SETTINGS = """port: 7365
heartbeat_interval: 0.2
heartbeat_misses: 5
lease_duration: auto
quorum: majority
quorum_loss_action: fastkill
fencing: watchdog
fence_command: null
failover_damping:
  failovers: 3
  window: 600.0
  hold: 300.0
"""


def test_get_prints_settings_and_values_as_set_takes_them(state: Path) -> None:
    # startswith: the settings that sections added later (the arbiter, the API) follow
    assert tutela(state, "config", "get").stdout.startswith(SETTINGS)
    assert tutela(state, "config", "get", "settings").stdout.startswith(SETTINGS)
    assert tutela(state, "config", "get", "settings.lease_duration").stdout == "auto\n"
    damping = tutela(state, "config", "get", "settings.failover_damping", "--json").stdout
    assert json.loads(damping) == {"failovers": 3, "window": 600.0, "hold": 300.0}
    assert tutela(state, "config", "get", "nodes.n1.failover", "--json").stdout == "true\n"
    before = generation(state)
    shown = tutela(state, "config", "get", "settings.heartbeat_interval").stdout.strip()
    again = tutela(state, "config", "set", "settings.heartbeat_interval", shown)
    assert again.stdout == f"no change: settings.heartbeat_interval is 0.2 already " \
                           f"(generation {before})\n"
    assert generation(state) == before


def test_set_dry_run_shows_the_diff_and_changes_nothing(state: Path) -> None:
    before = generation(state)
    dry = tutela(state, "config", "set", "settings.lease_duration", "2.5", "--dry-run")
    assert dry.stdout == ("~ settings.lease_duration: 'auto' -> 2.5\n"
                          f"dry run: nothing was changed (generation {before})\n")
    assert generation(state) == before
    assert tutela(state, "config", "get", "settings.lease_duration").stdout == "auto\n"
    as_json = json.loads(tutela(state, "config", "set", "settings.lease_duration", "2.5",
                                "--dry-run", "--json").stdout)
    assert as_json["dry_run"] is True
    assert as_json["changes"] == ["~ settings.lease_duration: 'auto' -> 2.5"]


def test_set_commits_one_change(state: Path) -> None:
    before = generation(state)
    done = tutela(state, "config", "set", "settings.failover_damping.hold", "0")
    assert done.stdout == ("~ settings.failover_damping.hold: 300.0 -> 0.0\n"
                           f"set settings.failover_damping.hold: generation {before + 1}\n")
    assert generation(state) == before + 1
    assert "hold: 0.0" in tutela(state, "export").stdout
    flow = json.loads(tutela(state, "config", "set", "settings.failover_damping",
                             "{failovers: 5, window: 60, hold: 10}", "--json").stdout)
    assert flow["generation"] == before + 2
    assert tutela(state, "config", "get", "settings.failover_damping").stdout == \
        "failovers: 5\nwindow: 60.0\nhold: 10.0\n"
    tutela(state, "resource", "create", "process", "web", "-p", "command=sleep 100")
    tutela(state, "config", "set", "hierarchies.web.switchback", "automatic")
    tutela(state, "config", "set", "resources[web].params.env", "{A: '1'}")
    assert tutela(state, "config", "get", "resources.web.params.env.A").stdout == "'1'\n"
    assert tutela(state, "config", "get", "hierarchies.web.switchback").stdout == \
        "automatic\n"
    log = tutela(state, "log", "-n", "50").stdout
    assert "config set hierarchies.web.switchback" in log


@pytest.mark.parametrize(("argv", "field", "message", "fix"), [
    (["settings.lease_durtion", "2"], "settings.lease_durtion",
     "settings has no key 'lease_durtion'", "use one of: port, heartbeat_interval,"),
    (["settings.lease_duration", "-1"], "settings.lease_duration",
     "must be 'auto' or seconds above 0 (got -1)", "correct the value"),
    (["settings.quorum", "most"], "settings.quorum", "'majority' or 'none'",
     "correct the value"),
    (["settings.fencing", "agent"], "settings", "fencing 'agent' needs fence_command",
     "correct the value"),
    (["settings.heartbeat_misses", "[1"], "VALUE", "not valid YAML", "quote it"),
    (["nodes.n2.failover", "false"], "nodes[n2]", "nodes has no entry with name 'n2'",
     "use one of: n1"),
    (["nodes.n1.watchdog", "null"], "nodes[n1].watchdog", "only the node itself writes",
     "restart tutelad on n1"),
    (["nodes.n1.maintenance", "null"], "nodes[n1].maintenance", "only the node itself",
     "'tutela start' on n1 ends it"),
    (["settings..port", "1"], "KEY", "is not a key", "a dotted path"),
])
def test_bad_set_names_field_and_fix_and_changes_nothing(
        state: Path, argv: list[str], field: str, message: str, fix: str) -> None:
    before = generation(state)
    for extra in ([], ["--dry-run"]):
        result = tutela(state, "config", "set", *argv, *extra, check=False)
        assert result.returncode == 2, result.stderr
        assert "the change was refused; nothing was changed" in result.stderr
        assert f"  {field}: " in result.stderr and message in result.stderr, result.stderr
        assert fix in result.stderr.partition("    fix: ")[2], result.stderr
    assert generation(state) == before


def test_bad_get_names_the_keys_there_are(state: Path) -> None:
    result = tutela(state, "config", "get", "settings.failover_damping.holdd", check=False)
    assert result.returncode == 2
    assert result.stderr == (
        "error: settings.failover_damping.holdd: settings.failover_damping has no key "
        "'holdd' (fix: use one of: failovers, window, hold)\n")


def test_state_dir_after_the_command_and_not_running(state: Path, tmp_path: Path) -> None:
    shown = tutela(Path("/nonexistent"), "config", "get", "settings.port",
                   "--state-dir", str(state))
    assert shown.stdout == "7365\n"
    stopped = tutela(tmp_path / "nothing", "config", "set", "settings.port", "7400",
                     check=False)
    assert stopped.returncode == 3
    assert "tutela start" in stopped.stderr


@pytest.mark.parametrize("command", [["config"], ["config", "get"], ["config", "set"]])
def test_help(tmp_path: Path, command: list[str]) -> None:
    shown = tutela(tmp_path, *command, "--help").stdout
    assert "Usage: tutela " + " ".join(command) in shown
    if command != ["config"]:
        assert "nodes[db1.example.com].failover" in shown
