"""`tutela start` returns once the node serves and it and its peers hear each other, so a
configuration change right after it has its majority; with a peer off it names the peer
and its paths within its deadline (exit 6), and `--no-wait` returns once the node serves.

Two lab nodes and no witness: a change needs both, so a change on either node right after
the other started shows that each hears the other. Then two nodes and a witness: a witness
not heard is named too. Last, under systemd (a stand-in for systemctl, as no systemd runs
here): the unit is started when it is installed for this state directory, not otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import unique_lab_name, wait_until
from tutela.cli import main
from tutela.cli.main import EXIT_PEERS_UNHEARD
from tutela.lab import Lab
from tutela.lab.driver import (
    WITNESS_PORT,
    all_alive,
    form_cluster,
    form_cluster_with_witness,
    tutela,
    witness_alive,
    witness_lab,
)

PATHS = ("tcp/198.51.100.11-198.51.100.12", "tcp/203.0.113.11-203.0.113.12")
RESTARTS = 3
PEER_TIMEOUT = 5


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("stw"), nodes=2, disks=0,
                root=tmp_path_factory.mktemp("stw")) as built:
        try:
            form_cluster(built, "stw")
            yield built
        finally:
            for node in built.nodes:
                if built.node_state(node) != "off":
                    tutela(built, node, "stop", check=False)


def _change(lab: Lab, on: str, mode: str) -> None:
    """A configuration change (it needs both nodes of two): block or allow node2's failover."""
    result = tutela(lab, on, "node", "failover", "node2", mode, check=False)
    assert result.returncode == 0, result.stderr
    assert "no quorum" not in result.stderr


@pytest.mark.lab
def test_a_change_right_after_start_succeeds(lab: Lab) -> None:
    for restart in range(RESTARTS):
        started, other = ("node2", "node1") if restart % 2 == 0 else ("node1", "node2")
        tutela(lab, started, "stop")
        result = tutela(lab, started, "start")
        assert "heard every peer (1)" in result.stdout, result.stdout
        _change(lab, started, "block")  # its majority includes the peer it just heard
        _change(lab, other, "allow")  # and the peer's includes it


@pytest.mark.lab
def test_a_peer_powered_off_is_named_within_the_deadline(lab: Lab) -> None:
    lab.power_off("node2")
    try:
        tutela(lab, "node1", "stop")
        result = tutela(lab, "node1", "start", "--timeout", str(PEER_TIMEOUT), check=False)
        assert result.returncode == EXIT_PEERS_UNHEARD, result
        assert ("tutelad serves, but within 5s it has not heard:\n  node node2: path"
                in result.stderr), result.stderr
        for path in PATHS:
            assert f"path {path} DEAD, never heard" in result.stderr, result.stderr
        assert "cannot be made from here: 1 of 2 nodes reachable, 2 needed" in result.stderr

        again = tutela(lab, "node1", "start", "--no-wait")  # it runs: nothing to wait for
        assert again.stdout.strip() == "tutelad is already running"
        tutela(lab, "node1", "stop")
        assert "tutelad started" in tutela(lab, "node1", "start", "--no-wait").stdout
    finally:
        if lab.node_state("node2") == "off":
            lab.power_on("node2")
    wait_until(lambda: all_alive(lab), timeout=30, what="node2 back")
    result = tutela(lab, "node1", "start")  # running, and now it hears its peer
    assert result.stdout.splitlines() == ["tutelad is already running", "heard every peer (1)"]


@pytest.mark.lab
def test_a_witness_not_heard_is_named(tmp_path: Path) -> None:
    with witness_lab(unique_lab_name("stww"), tmp_path, disks=0) as (lab, witness):
        form_cluster_with_witness(lab, "stww")
        address = f"{lab.client_address()}:{WITNESS_PORT}"
        os.kill(witness.pid, signal.SIGSTOP)  # a hung witness host: it answers nothing
        try:
            tutela(lab, "node2", "stop")
            result = tutela(lab, "node2", "start", "--timeout", str(PEER_TIMEOUT),
                            check=False)
        finally:
            os.kill(witness.pid, signal.SIGCONT)
        assert result.returncode == EXIT_PEERS_UNHEARD, result
        assert f"\n  witness {address}: path witness/{address} DEAD" in result.stderr, \
            result.stderr
        assert "node node1" not in result.stderr  # node1 is heard, and hears node2
        assert "can be made from here: 2 of 2 nodes reachable" in result.stderr
        wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=30,
                   what="the witness heard again")


BIN = Path(sys.executable).parent
FAKE_SYSTEMCTL = """#!/bin/sh
# A stand-in for systemctl: no systemd runs as PID 1 here. It records its arguments; 'show'
# says the unit is installed; 'start' runs tutelad as the unit would and returns once it
# answers, as systemctl start returns at the unit's READY=1.
echo "$*" >> "$CALLS"
case "$1" in
  show) echo loaded ;;
  start) setsid "$BIN/tutelad" --state-dir "$STATE" </dev/null >/dev/null 2>&1 &
         until "$BIN/tutela" --state-dir "$STATE" status >/dev/null 2>&1; do sleep 0.1; done ;;
esac
"""


@pytest.fixture
def under_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An initialised state directory on a host that looks booted by systemd, with the
    tutelad unit installed (the stand-in systemctl first on PATH); the unit's environment
    file names that state directory. Yields the state directory; tutelad stopped at the end."""
    state = tmp_path / "state"
    subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), "init", "--cluster",
                    "sd", "--node", "n1"], check=True, capture_output=True, timeout=60)
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(FAKE_SYSTEMCTL)
    fake.chmod(0o755)
    booted = tmp_path / "run-systemd-system"
    booted.mkdir()
    environment = tmp_path / "tutelad.env"
    environment.write_text(f"# the unit's environment\nTUTELA_STATE_DIR='{state}'\n")
    monkeypatch.setattr(main, "SYSTEMD_BOOTED", booted)
    monkeypatch.setattr(main, "UNIT_ENVIRONMENT", environment)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("BIN", str(BIN))
    monkeypatch.setenv("STATE", str(state))
    try:
        yield state
    finally:
        subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), "stop"],
                       capture_output=True, timeout=120, check=False)


def test_under_systemd_start_starts_the_installed_unit(under_systemd: Path) -> None:
    result = CliRunner().invoke(main.cli, ["--state-dir", str(under_systemd), "start"])
    assert result.exit_code == 0, result.output
    assert result.output == "tutelad started by systemd (tutelad.service)\n"
    calls = (under_systemd.parent / "calls").read_text().splitlines()
    assert calls == ["show --property=LoadState --value tutelad.service",
                     "start tutelad.service"]


def test_under_systemd_another_state_directory_is_started_directly(
        under_systemd: Path) -> None:
    main.UNIT_ENVIRONMENT.write_text("TUTELA_STATE_DIR=/var/lib/tutela-elsewhere\n")
    result = CliRunner().invoke(main.cli, ["--state-dir", str(under_systemd), "start"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("tutelad started (pid ")
    calls = (under_systemd.parent / "calls").read_text().splitlines()
    assert calls == ["show --property=LoadState --value tutelad.service"]
