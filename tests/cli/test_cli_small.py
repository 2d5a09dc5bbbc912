"""Small promises of the two commands: kit defaults, join's exit codes, --state-dir before or
after the command, and a plain "needs root" for a user who may not use the state directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def run(*argv: str, prefix: list[str] | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / argv[0]), *argv[1:]]
    return subprocess.run([*(prefix or []), *command], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, **(env or {})})


# --- kit show ----------------------------------------------------------------------------

def test_kit_show_gives_real_defaults_and_says_required() -> None:
    text = run("tutela", "kit", "show", "ip", env={"COLUMNS": "200"}).stdout
    assert "PydanticUndefined" not in text
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in text.splitlines() if line.startswith("│")}
    assert rows["address"] == "required"
    assert rows["ping_list"] == "[]"  # a default made by a factory
    assert rows["arp_count"] == "3"
    shown = json.loads(run("tutela", "kit", "show", "ip", "--json").stdout)
    params = {p["name"]: p for p in shown["params"]}
    assert params["ping_list"]["default"] == "[]"
    assert params["address"] == {**params["address"], "required": True, "default": None}


# --- --state-dir before or after the command ---------------------------------------------

@pytest.mark.parametrize("argv", [
    ["tutela", "--state-dir", "{d}", "status"],
    ["tutela", "status", "--state-dir", "{d}"],
    ["tutela", "--state-dir", "/elsewhere", "status", "--state-dir", "{d}"],
    ["tutela", "--state-dir", "{d}", "node", "token"],
    ["tutela", "node", "token", "--state-dir", "{d}"],
    ["tutela-witness", "--state-dir", "{d}", "list"],
    ["tutela-witness", "list", "--state-dir", "{d}"],
    ["tutela-witness", "--state-dir", "/elsewhere", "token", "--state-dir", "{d}"],
])
def test_state_dir_goes_before_or_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    result = run(*[part.replace("{d}", str(tmp_path)) for part in argv])
    assert result.returncode == 3, result.stderr  # nothing runs there: that directory's answer
    assert f"{tmp_path}/" in result.stderr


def test_state_dirs_from_the_environment_still_count(tmp_path: Path) -> None:
    node = run("tutela", "status", env={"TUTELA_STATE_DIR": str(tmp_path)})
    witness = run("tutela-witness", "list", env={"TUTELA_WITNESS_STATE_DIR": str(tmp_path)})
    assert f"{tmp_path}/tutelad.sock" in node.stderr
    assert f"{tmp_path}/witness.sock" in witness.stderr


# --- a user without root -----------------------------------------------------------------

@pytest.fixture
def shared_dirs() -> Iterator[tuple[Path, Path]]:
    """A directory only root may use and one anybody may, where uid 65534 can reach them."""
    top = Path(tempfile.mkdtemp(prefix="tutela-cli-small-"))
    try:
        top.chmod(0o755)
        closed, open_ = top / "closed", top / "open"
        closed.mkdir(mode=0o700)
        open_.mkdir()
        open_.chmod(0o777)
        yield closed, open_
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize(("command", "env_name"), [
    (["tutela", "status"], "TUTELA_STATE_DIR"),
    (["tutela", "init", "--cluster", "c"], "TUTELA_STATE_DIR"),
    (["tutela", "log"], "TUTELA_STATE_DIR"),
    (["tutela-witness", "list"], "TUTELA_WITNESS_STATE_DIR"),
    (["tutela-witness", "run"], "TUTELA_WITNESS_STATE_DIR"),
])
def test_a_user_without_root_is_told_plainly(shared_dirs: tuple[Path, Path],
                                             command: list[str], env_name: str) -> None:
    closed, _ = shared_dirs
    for env in ({env_name: str(closed)}, {env_name: ""}):  # a given one, and the default
        result = run(*command, prefix=NOBODY, env=env)
        assert result.returncode == 2, result.stderr
        assert f"{command[0]} needs root (or a --state-dir you can write)" in result.stderr
        assert "Usage:" not in result.stderr
        assert "Traceback" not in result.stderr
    assert not any(closed.iterdir())


def test_a_user_without_root_may_use_a_state_dir_they_can_write(
        shared_dirs: tuple[Path, Path]) -> None:
    _, open_ = shared_dirs
    result = run("tutela", "status", "--state-dir", str(open_ / "node"), prefix=NOBODY)
    assert result.returncode == 3, result.stderr  # gets as far as asking the daemon
    assert "tutela start" in result.stderr


# --- join's exit codes, against a real tutelad in a network namespace of our own ------------

NODE1, NODE2 = "203.0.113.1", "203.0.113.2"


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A started tutelad in a new network namespace, NODE1 and NODE2 on its loopback."""
    namespace = f"tcs-{os.getpid()}"
    ip = ["ip", "-n", namespace]
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    state = tmp_path / "node1"
    try:
        for step in (["link", "set", "lo", "up"], ["addr", "add", f"{NODE1}/24", "dev", "lo"],
                     ["addr", "add", f"{NODE2}/24", "dev", "lo"]):
            subprocess.run([*ip, *step], check=True)
        inside = ["ip", "netns", "exec", namespace]
        for step in (["init", "--cluster", "c", "--node", "n1", "--address", f"{NODE1}/24"],
                     ["start"]):
            result = run("tutela", "--state-dir", str(state), *step, prefix=inside)
            assert result.returncode == 0, result.stderr
        yield namespace, state
    finally:
        run("tutela", "--state-dir", str(state), "stop", "--leave-resources",
            prefix=["ip", "netns", "exec", namespace])
        subprocess.run(["ip", "netns", "delete", namespace], check=True)


def test_join_exit_codes_are_the_documented_ones(cluster_node: tuple[str, Path],
                                                 tmp_path: Path) -> None:
    namespace, node1 = cluster_node
    inside = ["ip", "netns", "exec", namespace]
    joiner = tmp_path / "node2"

    def join(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return run("tutela", "--state-dir", str(state), "join", NODE1, "--node", "n2",
                   "--address", f"{NODE2}/24", *args, prefix=inside)

    refused = join(joiner, "--token", "not-a-token")
    assert refused.returncode == 2, refused.stderr
    assert "unknown, used or expired" in refused.stderr
    unreachable = join(joiner, "--token", "t", "--port", "7999")  # nothing listens there
    assert unreachable.returncode == 1, unreachable.stderr
    assert f"cannot reach {NODE1} port 7999" in unreachable.stderr
    again = join(node1, "--token", "t")  # a node joins once
    assert again.returncode == 2, again.stderr
    assert "initialised already" in again.stderr
    assert not (joiner / "lcd.sqlite").exists()
