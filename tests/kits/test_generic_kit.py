"""The generic kit with real scripts in a temporary directory that record how they were run.

Checks the calling convention, environment, exit codes, logging and timeouts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kitsupport import wait_until

from tutela.kits.base import ActionContext, KitError
from tutela.kits.generic import GenericKit
from tutela.kits.procutil import is_alive
from tutela.model.errors import ConfigError

MakeCtx = Callable[..., ActionContext[Any]]

RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$TUTELA_STATE_DIR/calls"
env | grep -E '^(TUTELA_|LKROOT=)' | sort > "$TUTELA_STATE_DIR/env.$TUTELA_ACTION"
pwd > "$TUTELA_STATE_DIR/cwd"
echo "hello from $TUTELA_ACTION"
echo "a warning" >&2
exit ${EXIT_CODE:-0}
"""


def script(directory: Path, name: str, body: str = RECORDER) -> str:
    path = directory / name
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {name: script(bin_dir, name) for name in ("restore", "remove", "check", "recover")}


def calls(ctx: ActionContext[Any]) -> list[str]:
    return (ctx.state_dir / "calls").read_text().splitlines()


def test_scripts_get_tag_id_and_environment(make_ctx: MakeCtx, scripts: dict[str, str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_ctx("generic", {"restore": scripts["restore"], "remove": scripts["remove"]},
                   timeout=7.5, tag="app1")
    with caplog.at_level(logging.INFO):
        GenericKit().restore(ctx)
    assert calls(ctx) == ["restore -t app1 -i id-app1"]
    env = (ctx.state_dir / "env.restore").read_text().splitlines()
    assert env == sorted(["LKROOT=/opt/LifeKeeper", "TUTELA_ACTION=restore",
                          "TUTELA_ID=id-app1", f"TUTELA_STATE_DIR={ctx.state_dir}",
                          "TUTELA_TAG=app1", "TUTELA_TIMEOUT=7.5"])
    assert (ctx.state_dir / "cwd").read_text().strip() == str(ctx.state_dir)
    assert "restore script: hello from restore" in caplog.text
    assert "restore script (stderr): a warning" in caplog.text


def test_failing_script_raises_with_its_last_line(make_ctx: MakeCtx, scripts: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx("generic", {"restore": scripts["restore"], "remove": scripts["remove"]})
    monkeypatch.setenv("EXIT_CODE", "3")
    with pytest.raises(KitError, match=r"restore script .*/restore exited 3: a warning"):
        GenericKit().restore(ctx)


def test_quick_check_default_and_failure(make_ctx: MakeCtx, scripts: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"restore": scripts["restore"], "remove": scripts["remove"]}
    assert GenericKit().quick_check(make_ctx("generic", base)).healthy
    ctx = make_ctx("generic", {**base, "quick_check": scripts["check"]})
    assert GenericKit().quick_check(ctx).healthy
    monkeypatch.setenv("EXIT_CODE", "1")
    result = GenericKit().quick_check(ctx)
    assert not result.healthy and "exited 1" in result.reason
    assert calls(ctx) == ["check -t res1 -i id-res1"] * 2


def test_recover_default_and_script(make_ctx: MakeCtx, scripts: dict[str, str]) -> None:
    base = {"restore": scripts["restore"], "remove": scripts["remove"]}
    default = make_ctx("generic", base, tag="a")
    GenericKit().recover(default)
    assert [c.split()[0] for c in calls(default)] == ["remove", "restore"]
    own = make_ctx("generic", {**base, "recover": scripts["recover"]}, tag="b")
    GenericKit().recover(own)
    assert calls(own) == ["recover -t b -i id-b"]
    assert "TUTELA_ACTION=recover" in (own.state_dir / "env.recover").read_text()


def test_timeout_kills_the_process_group(make_ctx: MakeCtx, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = script(tmp_path, "hang", f"#!/bin/sh\nsleep 1000 &\necho $$ $! > {pids}\nwait\n")
    ctx = make_ctx("generic", {"restore": hang, "remove": hang, "quick_check": hang},
                   timeout=0.5)
    with pytest.raises(KitError, match=r"did not finish within 0.5s; killed its process group"):
        GenericKit().restore(ctx)
    script_pid, child_pid = map(int, pids.read_text().split())
    wait_until(lambda: not is_alive(script_pid) and not is_alive(child_pid), timeout=5,
               what="script and its child gone")
    check = GenericKit().quick_check(ctx)
    assert not check.healthy and "did not finish" in check.reason


def test_relative_script_is_a_validation_error(scripts: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        GenericKit().parse_params({"restore": scripts["restore"], "remove": scripts["remove"],
                                   "quick_check": "bin/check"})
    assert [p.field for p in err.value.problems] == ["params.quick_check"]
    with pytest.raises(ConfigError) as err:
        GenericKit().parse_params({"restore": "bin/restore"})
    assert {p.field for p in err.value.problems} == {"params.restore", "params.remove"}


@pytest.mark.parametrize("problem", ["missing", "not_executable", "directory"])
def test_script_that_cannot_run_here_is_named(scripts: dict[str, str], tmp_path: Path,
                                              problem: str) -> None:
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    bad = {"missing": str(tmp_path / "nope"), "not_executable": str(plain),
           "directory": str(tmp_path)}[problem]
    kit = GenericKit()
    params = kit.parse_params({"restore": scripts["restore"], "remove": scripts["remove"],
                               "quick_check": bad})  # valid anywhere: the config is shared
    assert [name for name, _ in kit.check_here(params)] == ["quick_check"]
    good = kit.parse_params({"restore": scripts["restore"], "remove": scripts["remove"]})
    assert kit.check_here(good) == []
