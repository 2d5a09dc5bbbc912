"""The `tutela-witness` console script: help, list --json, token, remove, clear errors.

Errors must exit non-zero with one line that names the problem and the fix.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from witness_support import HOST, WITNESS, Node, WitnessProcess, cli, enrolled

from tutela.witness.enroll import enroll


@pytest.mark.parametrize("command", [[], ["run"], ["token"], ["list"], ["remove"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = subprocess.run([str(WITNESS), *command, "--help"], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.startswith("Usage: tutela-witness")
    assert "--state-dir" in result.stdout or not command


def test_list_json_shape(witness: WitnessProcess) -> None:
    cluster = enrolled(witness, "prod")
    node = Node(witness.port, cluster, "n1")
    node.granted("web")
    listed = json.loads(cli(witness.state, "list", "--json").stdout)
    assert set(listed) == {"witness", "clusters"}
    assert set(listed["witness"]) == {"incarnation", "listen", "uptime", "tokens",
                                      "connections", "dropped_frames"}
    assert listed["witness"]["listen"] == [f"{HOST}:{witness.port}"]
    assert {"unknown-cluster", "enrol-refused", "malformed"} <= set(
        listed["witness"]["dropped_frames"])
    prod = listed["clusters"]["prod"]
    assert set(prod) == {"voter", "lease", "quiet", "enrolled_at", "enrolled_by", "nodes",
                         "grants", "dropped_frames"}
    assert prod["quiet"] == 0
    assert set(prod["nodes"]["n1"]) == {"last_heard", "address", "connections"}
    assert prod["nodes"]["n1"]["address"] == HOST
    assert prod["grants"]["web"]["holder"] == "n1"
    assert 0 < prod["grants"]["web"]["remaining"] <= 2.0
    assert {"bad-mac", "replay", "wrong-sender", "unknown-kind"} <= set(prod["dropped_frames"])
    text = cli(witness.state, "list").stdout
    assert "cluster prod: voter " + cluster.voter in text and "grant web -> n1" in text
    node.close()


def test_token_from_the_command_enrols(witness: WitnessProcess) -> None:
    token = cli(witness.state, "token", "--ttl", "30").stdout.strip()
    assert enroll(HOST, witness.port, token, "prod", bytes(32), "n1").startswith("witness@")
    made = json.loads(cli(witness.state, "token", "--cluster", "prod", "--json").stdout)
    assert made["cluster"] == "prod" and made["ttl"] == 600.0
    bad = cli(witness.state, "token", "--cluster", "no way", check=False)
    assert bad.returncode == 2 and "is not a cluster name" in bad.stderr


def test_remove_forgets_the_cluster_and_disconnects_its_nodes(witness: WitnessProcess) -> None:
    cluster = enrolled(witness, "prod")
    node = Node(witness.port, cluster, "n1")
    node.heartbeat()
    node.receive(lambda: bool(node.heartbeats), what="a heartbeat")
    assert "removed cluster prod" in cli(witness.state, "remove", "prod").stdout
    assert node.closed_by_witness()
    assert witness.status()["clusters"] == {}
    state = json.loads((witness.state / "witness.json").read_text())
    assert state["clusters"] == {}
    again = cli(witness.state, "remove", "prod", check=False)
    assert again.returncode == 2
    assert "no cluster 'prod' is enrolled here; 'tutela-witness list'" in again.stderr
    node.close()


def test_commands_without_a_running_witness_say_how_to_start_it(tmp_path: Path) -> None:
    result = cli(tmp_path, "list", check=False)
    assert result.returncode == 3
    assert result.stderr.startswith("error: no witness runs on")
    assert "tutela-witness run" in result.stderr and len(result.stderr.splitlines()) == 1


def test_second_witness_on_one_state_dir_is_refused(witness: WitnessProcess) -> None:
    result = cli(witness.state, "run", "--listen", f"{HOST}:0", check=False)
    assert result.returncode == 2
    assert "a witness runs on this state directory already" in result.stderr
    assert witness.status()["clusters"] == {}  # the first one still answers


def test_busy_port_and_bad_listen_value_are_clear(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli(tmp_path / "w", "run", "--listen", f"{HOST}:{port}", check=False)
    assert result.returncode == 2
    assert f"cannot listen on {HOST}:{port}" in result.stderr
    assert "choose another --listen" in result.stderr
    assert not (tmp_path / "w" / "witness.sock").exists()
    bad = cli(tmp_path / "w", "run", "--listen", "host:port", check=False)
    assert bad.returncode == 2 and "is not HOST[:PORT]" in bad.stderr


def test_unreadable_state_file_is_named_with_the_fix(tmp_path: Path) -> None:
    state = tmp_path / "w"
    state.mkdir()
    (state / "witness.json").write_text("{not json")
    result = cli(state, "run", "--listen", f"{HOST}:0", check=False)
    assert result.returncode == 2
    assert f"cannot read {state / 'witness.json'}" in result.stderr
    assert "restore it from a backup" in result.stderr


def test_state_dir_from_the_environment(witness: WitnessProcess) -> None:
    result = subprocess.run([str(WITNESS), "list", "--json"], capture_output=True, text=True,
                            timeout=30, check=True,
                            env={**os.environ, "TUTELA_WITNESS_STATE_DIR": str(witness.state)})
    assert json.loads(result.stdout)["witness"]["listen"] == [f"{HOST}:{witness.port}"]
