"""Every command answers: a switchover whose target dies in the middle of its restore ends
with where the hierarchy runs now, instead of waiting on the dead target for ever.

Two nodes and a witness (the survivor keeps a majority); the hierarchy is one generic
resource whose restore takes a while, so that the target can be powered off inside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.cli.client import runs_on
from tutela.lab import Lab
from tutela.lab.driver import (
    form_cluster_with_witness,
    status,
    tutela,
    witness_lab,
)

pytestmark = pytest.mark.lab
RESTORE_SECONDS = 8
"""How long the resource's restore takes: the window in which the target is powered off."""
ANSWER_BOUND = 120.0
"""A switchover that has not ended by then hangs (the old code waited 600 s and more)."""
EXIT_NOT_MOVED = 4  # docs/cli.md


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with witness_lab(unique_lab_name("dl"), tmp_path_factory.mktemp("dl"), disks=0
                     ) as (built, _):
        yield built


@pytest.fixture(scope="module")
def slow(lab: Lab) -> Path:
    """Resource `slow` in service on node1, extended to node2; returns the file where each
    restore writes, as it starts, its directory (in the state directory of its node)."""
    form_cluster_with_witness(lab, "dl")
    started = lab.root / "restores-started"
    restore, remove = lab.root / "restore.sh", lab.root / "remove.sh"
    restore.write_text(f'#!/bin/sh\necho "$TUTELA_STATE_DIR" >> {started}\n'
                       f"sleep {RESTORE_SECONDS}\n")
    remove.write_text("#!/bin/sh\nexit 0\n")
    for script in (restore, remove):
        script.chmod(0o755)
    tutela(lab, "node1", "resource", "create", "generic", "slow", "-p", f"restore={restore}",
           "-p", f"remove={remove}", "--restore")
    tutela(lab, "node1", "hierarchy", "extend", "slow", "--to", "node2", "--priority", "2")
    wait_until(lambda: runs_on(status(lab, "node1"), "slow") == "node1", timeout=30,
               what="slow in service on node1")
    return started


def test_switchover_to_a_target_that_dies_in_its_restore_says_where_it_runs(
        lab: Lab, slow: Path) -> None:
    target_dir = str(lab.state_dir("node2"))
    switchover = subprocess.Popen(
        lab.exec_argv("node1", ["tutela", "switchover", "slow", "--to", "node2"]),
        env=lab.environment("node1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        wait_until(lambda: slow.exists() and any(
            line.startswith(target_dir) for line in slow.read_text().split()),
            timeout=60, what="node2 to start restoring slow")
        lab.power_off("node2")
        stdout, stderr = switchover.communicate(timeout=ANSWER_BOUND)
    finally:
        if switchover.poll() is None:  # it hung: end it (nsenter and the tutela in the node)
            os.killpg(switchover.pid, signal.SIGKILL)
            switchover.communicate()
    assert switchover.returncode == EXIT_NOT_MOVED, (stdout, stderr)
    assert "slow did not move to node2" in stderr, stderr
    assert "node2 was declared DEAD" in stderr, stderr
    assert "it runs on node1 now" in stderr, stderr
    assert runs_on(status(lab, "node1"), "slow") == "node1"
