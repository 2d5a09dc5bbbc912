"""`tutela lab down` stops a witness run on the lab's client (as `make demo KEEP=1` leaves
one): deleting the client's namespace alone would leave it running, serving nobody."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import start_witness, stop_process

pytestmark = pytest.mark.lab

TUTELA = str(Path(sys.executable).with_name("tutela"))


def test_lab_down_stops_the_witness_on_the_client() -> None:
    lab = Lab.up(unique_lab_name("wdown"), nodes=1, disks=0)
    witness = start_witness(lab)
    try:
        state = lab.root / "witness"
        wait_until(lambda: subprocess.run(
            [str(Path(sys.executable).with_name("tutela-witness")), "list", "--state-dir",
             str(state)], capture_output=True, check=False).returncode == 0,
            timeout=60, what="the witness to answer")
        down = subprocess.run([TUTELA, "lab", "down", "--name", lab.name], capture_output=True,
                              text=True, timeout=120, check=False)
        assert down.returncode == 0, down.stderr
        assert f"witness (pid {witness.pid})" in down.stdout
        assert witness.wait(timeout=30) is not None  # ended by `lab down`, and reaped here
    finally:
        stop_process(witness)
        Lab.teardown(lab.name)
