"""Dependencies between hierarchies through the CLI, against a real tutelad on this host:
`tutela config set` and `tutela apply` refuse one that could never be met the same way,
naming the field and the fix and changing nothing; `tutela status` shows each dependency
and whether it is met."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from test_cli import generation, tutela


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tutelad for the module (a start takes seconds on a loaded machine), with the
    hierarchies web and db; every test leaves them as it found them."""
    state = tmp_path_factory.mktemp("dependencies") / "state"
    tutela(state, "init", "--cluster", "deptest", "--node", "n1")
    tutela(state, "start")
    try:
        for tag in ("web", "db"):
            tutela(state, "resource", "create", "process", tag, "-p", "command=sleep 100")
        yield state
    finally:
        tutela(state, "stop", check=False)


@pytest.mark.parametrize(("value", "message", "fix"), [
    ("[{hierarchy: dbx}]", "'dbx' is not the root of a hierarchy", "use one of: db"),
    ("[{hierarchy: web, location: any_node}]", "web depends on itself",
     "remove this dependency"),
])
def test_config_set_refuses_naming_the_field_and_changes_nothing(
        state: Path, value: str, message: str, fix: str) -> None:
    before = generation(state)
    for extra in ([], ["--dry-run"]):
        result = tutela(state, "config", "set", "hierarchies.web.dependencies", value, *extra,
                        check=False)
        assert result.returncode == 2, result.stderr
        assert "the change was refused; nothing was changed" in result.stderr
        assert f"  hierarchies[web].dependencies[0].hierarchy: {message}" in result.stderr, \
            result.stderr
        assert fix in result.stderr.partition("    fix: ")[2], result.stderr
    assert generation(state) == before


def test_apply_refuses_a_cycle_the_same_way(state: Path, tmp_path: Path) -> None:
    document = yaml.safe_load(tutela(state, "export").stdout)
    document["hierarchies"] = [
        {"root": "web", "dependencies": [{"hierarchy": "db"}]},
        {"root": "db", "dependencies": [{"hierarchy": "web", "location": "any_node"}]}]
    path = tmp_path / "cycle.yaml"
    path.write_text(yaml.safe_dump(document))
    before = generation(state)
    result = tutela(state, "apply", "-f", str(path), check=False)
    assert result.returncode == 2, result.stderr
    assert ("  hierarchies[db].dependencies[0].hierarchy: a cycle of dependencies: "
            "db -> web -> db") in result.stderr, result.stderr
    assert generation(state) == before


def test_status_shows_each_dependency_and_whether_it_is_met(state: Path) -> None:
    tutela(state, "config", "set", "hierarchies.web.dependencies", "[{hierarchy: db}]")
    lines = click.unstyle(tutela(state, "status").stdout).splitlines()
    assert "  needs db up on the same node: not met (db up nowhere)" in lines, lines
    tutela(state, "restore", "db")
    lines = click.unstyle(tutela(state, "status").stdout).splitlines()
    assert "  needs db up on the same node: met (db up on n1)" in lines, lines
    web = next(h for h in json.loads(tutela(state, "status", "--json").stdout)["hierarchies"]
               if h["root"] == "web")
    assert web["dependencies"] == [{"hierarchy": "db", "location": "same_node",
                                    "up_on": ["n1"], "met": True, "met_on": ["n1"],
                                    "text": "needs db up on the same node"}]
    tutela(state, "remove", "db")
    tutela(state, "config", "set", "hierarchies.web.dependencies", "[]")
