"""doctor's parts around the checks: exit codes, the clock estimate, the kit table, and the
probes against real sockets, files and an LCD; the command's options and output."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tutela.doctor import probes
from tutela.doctor.facts import (
    CONNECTED,
    IN_USE,
    NO_ADDRESS,
    REFUSED,
    ClockFacts,
    clock_sample,
)
from tutela.doctor.findings import Finding, Severity, counts, exit_code
from tutela.doctor.tools import KIT_TOOLS
from tutela.kits.registry import KITS
from tutela.lcd.store import Lcd

TUTELA = str(Path(sys.executable).with_name("tutela"))
UNASSIGNED = "198.51.100.77"
"""A documentation address this host does not have."""


def finding(severity: Severity) -> Finding:
    return Finding("space", severity, "node1", "found")


@pytest.mark.parametrize(("severities", "code"), [
    ([], 0), ([Severity.OK, Severity.INFO], 0), ([Severity.OK, Severity.WARNING], 1),
    ([Severity.WARNING, Severity.PROBLEM, Severity.OK], 3)])
def test_exit_code_is_set_by_the_worst_finding(severities: list[Severity], code: int) -> None:
    assert exit_code(map(finding, severities)) == code


def test_counts_name_every_severity() -> None:
    assert counts([finding(Severity.PROBLEM), finding(Severity.PROBLEM)]) == {
        "ok": 0, "info": 0, "warning": 0, "problem": 2}


def test_a_clock_sample_takes_the_middle_of_the_round_trip_less_the_peers_work() -> None:
    # Asked at 100.0, answered 1.0 s later, of which the peer spent 0.8 s gathering: it
    # read its clock between 100.0 and 100.2; it said 105.1, so it is 5 s ahead, +-0.1 s.
    sample = clock_sample(100.0, 1.0, ClockFacts(wall=105.1, processing=0.8))
    assert sample.offset == pytest.approx(5.0)
    assert sample.uncertainty == pytest.approx(0.1)


def test_every_kit_says_which_programs_it_needs() -> None:
    assert set(KIT_TOOLS) == set(KITS)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_connect_and_listen_on_a_port_that_is_taken(listener: int) -> None:
    assert probes.connect("127.0.0.1", listener, "127.0.0.1") == CONNECTED
    assert probes.listen("127.0.0.1", listener) == IN_USE


def test_connect_and_listen_on_a_free_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert probes.connect("127.0.0.1", free) == REFUSED
    assert probes.listen("127.0.0.1", free) == CONNECTED


def test_an_address_this_host_lacks() -> None:
    assert probes.listen(UNASSIGNED, 7365) == NO_ADDRESS
    assert probes.connect("127.0.0.1", 7365, UNASSIGNED) == NO_ADDRESS


def test_a_disk_path_that_is_missing_or_no_block_device(tmp_path: Path) -> None:
    assert not probes._disk(str(tmp_path / "gone"), "ext4").present
    (tmp_path / "file").write_bytes(b"")
    disk = probes._disk(str(tmp_path / "file"), "ext4")
    assert (disk.present, disk.block) == (True, False)


def test_before_init_the_host_is_checked_with_its_hostname(tmp_path: Path) -> None:
    assert probes.stored_config(tmp_path) is None
    facts = probes.gather(None, socket.gethostname(), tmp_path / "state")
    assert not facts.initialised and not facts.daemon
    assert facts.resolution["localhost"] is not None
    assert facts.space.path == str(tmp_path / "state") and facts.space.free > 0
    assert set(facts.tools) >= {"mount", "blkid", "ping"}


def test_an_initialised_node_is_read_from_its_lcd(tmp_path: Path) -> None:
    Lcd.create(tmp_path, "demo", "node1", ("198.51.100.11/24",)).close()
    stored = probes.stored_config(tmp_path)
    assert stored is not None
    node, config = stored
    assert (node, config.name) == ("node1", "demo")


def doctor(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TUTELA, "doctor", "--state-dir", str(state_dir), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_command_reports_before_init_in_text_and_json(tmp_path: Path) -> None:
    text = doctor(state_dir=tmp_path)
    report = doctor("--json", state_dir=tmp_path)
    result = json.loads(report.stdout)
    assert report.returncode == text.returncode == result["exit_code"]
    assert result["cluster"] is None and result["checked"] == [result["node"]]
    checks = {f["check"] for f in result["findings"]}
    assert {"node", "names", "localhost", "paths", "watchdog", "tools", "space"} <= checks
    assert "not initialised yet" in text.stdout
    assert text.stdout.splitlines()[-1].endswith(("ok", "info", "warnings", "warning",
                                                  "problem", "problems"))


def test_cluster_needs_a_node_that_joined(tmp_path: Path) -> None:
    result = doctor("--cluster", state_dir=tmp_path)
    assert result.returncode == 2
    assert "has not joined one yet" in result.stderr


@pytest.mark.parametrize("peer", ["node1:http", "198.51.100.11:0", ":7365"])
def test_a_peer_that_is_no_address_is_refused(peer: str, tmp_path: Path) -> None:
    result = doctor("--peer", peer, state_dir=tmp_path)
    assert result.returncode == 2
    assert f"--peer {peer!r} is not HOST or HOST:PORT" in result.stderr


def test_peer_is_refused_on_a_node_that_joined(tmp_path: Path) -> None:
    Lcd.create(tmp_path, "demo", "node1", ("198.51.100.11/24",)).close()
    result = doctor("--peer", "198.51.100.12", state_dir=tmp_path)
    assert result.returncode == 2
    assert "joined already" in result.stderr


def test_a_joined_node_without_tutelad_is_checked_from_its_lcd(tmp_path: Path) -> None:
    Lcd.create(tmp_path, "demo", "node1", ("198.51.100.11/24",)).close()
    result = json.loads(doctor("--json", state_dir=tmp_path).stdout)
    assert result["cluster"] == "demo" and result["node"] == "node1"
    assert any(f["check"] == "node" and "tutelad is not running" in f["found"]
               for f in result["findings"])
