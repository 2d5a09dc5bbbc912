"""The README's five-minute tour, run as written: its commands are read from README.md, so
the README cannot drift from what works. Only the lab's name differs (a unique one, through
TUTELA_LAB_NAME, as the tour's commands take no --name), and with it the lab's directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import status

pytestmark = pytest.mark.lab

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def tour() -> str:
    """The shell block under "A five-minute tour"."""
    text = README.read_text()
    section = text[text.index("## A five-minute tour"):]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start:section.index("```\n", start)]


def run_as_written(script: str, name: str, where: Path) -> subprocess.CompletedProcess[str]:
    """`script` in bash, stopping at the first failure, with the virtualenv active (as the
    tour asks) and the lab named `name`."""
    env = {**os.environ, "TUTELA_LAB_NAME": name,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-x", "-c", script], cwd=where,
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    name = unique_lab_name("tour")
    script = tour().replace("/run/tutela-lab/lab/", f"/run/tutela-lab/{name}/")
    tour_body, down = script.rsplit("\ntutela lab down", 1)
    assert down.strip() == "", "the tour ends with 'tutela lab down'"
    try:
        ran = run_as_written(tour_body, name, tmp_path)
        assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}"
        assert "in service on node1: vip data web" in ran.stdout
        assert "Directory listing for /" in ran.stdout  # the client reached the web server
        assert "no changes (generation" in ran.stdout  # export and apply agree
        assert "format: tutela/1" in (tmp_path / "cluster.yaml").read_text()
        lab = Lab.load(name)
        wait_until(lambda: _recovered(lab), timeout=120, interval=0.5,
                   what="web recovered after the crash the tour makes")
        ran = run_as_written("tutela lab down", name, tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert not Path(f"/run/tutela-lab/{name}").exists()
    finally:
        Lab.teardown(name)


def _recovered(lab: Lab) -> bool:
    web = next(r for h in status(lab, "node1")["hierarchies"] for r in h["resources"]
               if r["tag"] == "web")
    return bool(web["state"] == "ISP" and "recover" in web["reason"])
