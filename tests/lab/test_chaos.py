"""`tutela lab chaos`, end to end: short campaigns of the product command against a lab it
builds (two nodes and a witness), one with a fixed seed and one with a fresh seed (printed,
to replay a failure). Each must see no instant of dual ownership, recover every fault,
end with a healthy cluster and leave no lab behind."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import unique_lab_name
from tutela.lab import netns
from tutela.lab.lab import default_root

pytestmark = pytest.mark.lab

FIXED_SEED = 24176
"""Draws kill-tutelad, freeze, power-off and one-way first (tutela.lab.chaos_plan.draw), each
short (2.8 to 6.1 s) with short pauses (14.8 s in all): the kinds seed 5 drew in its 75 s,
in less time."""
FIXED_DURATION = 60
"""Seconds of the fixed campaign: its fourth fault starts after about 45 s on a loaded
machine (three faults, their recoveries and four pauses)."""
FRESH_DURATION = 75
TIMEOUT = 900
"""Seconds the command may take in all: building, the campaign, the last recovery (up to
RECOVERY_TIMEOUT) and the teardown, on a loaded machine."""


def run_campaign(seed: int, duration: int) -> tuple[dict[str, Any], str]:
    name = unique_lab_name("chaos")
    # the lab's default root, short: under an xdist worker's temporary folder the nodes'
    # control sockets' paths pass the 108 bytes a Unix socket's path may have
    root = Path(default_root(name))
    tutela = str(Path(sys.executable).with_name("tutela"))
    result = subprocess.run(
        [tutela, "lab", "chaos", "--name", name, "--root", str(root),
         "--nodes", "2", "--witness", "--duration", str(duration), "--seed", str(seed),
         "--json"], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.stdout.strip(), f"no report (exit {result.returncode}): {result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    assert netns.lab_netns(name) == [], f"lab {name} left behind"
    assert not root.exists()
    return report | {"exit_status": result.returncode}, result.stderr


def check(report: dict[str, Any], log: str) -> None:
    context = f"seed {report['seed']}; replay: {report['replay']}\n{log}"
    assert report["dual_ownership"] == 0, f"split brain: {report['violations']}\n{context}"
    assert report["faults_total"] > 0, context
    assert report["faults_recovered"] == report["faults_total"], context
    assert report["healthy_at_end"], f"{report['reason']}\n{context}"
    assert report["checker_blind"] == "", context
    assert report["result"] == "pass" and report["exit_status"] == 0, context
    assert report["checker"]["samples"] > 0, context
    assert report["outages"]["answers"] > 0, context


def test_a_campaign_with_a_fixed_seed() -> None:
    report, log = run_campaign(FIXED_SEED, FIXED_DURATION)
    check(report, log)
    assert set(report["faults"]) >= {"kill-tutelad", "power-off"}, report["faults"]


def test_a_campaign_with_a_fresh_seed() -> None:
    seed = secrets.randbelow(10**9)
    print(f"chaos seed {seed}")  # shown with the failure: replay it with --seed
    report, log = run_campaign(seed, FRESH_DURATION)
    check(report, log)
