"""The Serviceguard importer on a corpus of realistic files, against golden outputs.

Each case is tests/migrate/corpus/<case>/: its input files, `args` (the paths to pass, one a
line, relative to the case), and the goldens expected.yaml, expected-report.md and
expected-runbook.md (the cutover runbook), in which the generated scripts directory reads
@SCRIPTS@ and the output directory @OUT@.

Regenerate the goldens after an intended change, review the diff, then run again without
the variable (a run that rewrites fails, naming what it rewrote; under CI it refuses):

    TUTELA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/migrate/test_migrate_corpus.py

Also checked here: every line of every input is accounted for in the report, and the YAML
applies cleanly with `tutela apply --dry-run` on a real tutelad.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helpers import check_goldens
from tutela.cli.migrate import migrate_group
from tutela.lcd.store import KEY_BYTES, Lcd
from tutela.model.config import ClusterConfig

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "args").is_file())
BIN = Path(sys.executable).parent
PLACEHOLDER = "@SCRIPTS@"
OUT_PLACEHOLDER = "@OUT@"
ROW = re.compile(r"^\| `(?P<file>[^`]+):(?P<line>\d+)(?:-(?P<end>\d+))?` \|", re.MULTILINE)
NOT_READ = re.compile(r"^- `(?P<name>[^`]+)`: ", re.MULTILINE)


@dataclass(frozen=True)
class Result:
    case: str
    inputs: list[Path]
    output: Path
    report: str
    yaml_text: str
    stderr: str
    runbook: str


def case_inputs(case: str) -> list[Path]:
    directory = CORPUS / case
    return [directory / line.strip() for line in (directory / "args").read_text().splitlines()
            if line.strip()]


def run_case(case: str, work: Path) -> Result:
    inputs = case_inputs(case)
    output = work / "cluster.yaml"
    result = CliRunner().invoke(
        migrate_group, ["serviceguard", *map(str, inputs), "-o", str(output),
                        "--scripts-dir", str(work / "scripts"),
                        "--runbook", str(work / "runbook.md")])
    assert result.exit_code == 0, result.output + result.stderr
    scripts = str(work / "scripts")
    report = (work / "cluster-report.md").read_text().replace(scripts, PLACEHOLDER)
    runbook = (work / "runbook.md").read_text().replace(scripts, PLACEHOLDER)
    return Result(case, inputs, output, report,
                  output.read_text().replace(scripts, PLACEHOLDER), result.stderr,
                  runbook.replace(str(work), OUT_PLACEHOLDER))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Every case converted once, for all the checks in this module."""
    return {case: run_case(case, tmp_path_factory.mktemp(case)) for case in CASES}


@pytest.mark.parametrize("case", CASES)
def test_output_matches_golden(results: dict[str, Result], case: str) -> None:
    result = results[case]
    check_goldens([(CORPUS / case / "expected.yaml", result.yaml_text),
                   (CORPUS / case / "expected-report.md", result.report),
                   (CORPUS / case / "expected-runbook.md", result.runbook)])


@pytest.mark.parametrize("case", CASES)
def test_every_input_line_is_accounted_for(results: dict[str, Result], case: str) -> None:
    """Each non-blank, non-comment line of each input file is in a report row, or its file
    (or a directory above it) is listed under 'Files not read'."""
    result = results[case]
    base = Path(os.path.commonpath([p if p.is_dir() else p.parent for p in result.inputs]))
    covered: set[tuple[str, int]] = set()
    for match in ROW.finditer(result.report):
        first = int(match["line"])
        covered |= {(match["file"], n) for n in range(first, int(match["end"] or first) + 1)}
    not_read = [m["name"] for m in NOT_READ.finditer(result.report)]
    missing = []
    for path in input_files(result.inputs):
        name = str(path.relative_to(base))
        if any(name == n or (n.endswith("/") and name.startswith(n)) for n in not_read):
            continue
        lines = path.read_bytes().decode("utf-8", "replace").split("\n")
        missing += [f"{name}:{n}" for n, line in enumerate(lines, 1)
                    if line.strip() and not line.strip().startswith("#")
                    and (name, n) not in covered]
    assert not missing, f"lines the report does not account for: {missing}"
    assert "not accounted for by the importer" not in result.report


def input_files(inputs: list[Path]) -> Iterator[Path]:
    for path in inputs:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


@pytest.mark.parametrize("case", CASES)
def test_report_counts_add_up(results: dict[str, Result], case: str) -> None:
    report = results[case].report
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^\| ([a-z ]+) \| (\d+) \|$", report,
                                                   re.MULTILINE)}
    total = re.search(r"^\| \*\*total\*\* \| (\d+) \|$", report, re.MULTILINE)
    assert total is not None
    assert sum(counts.values()) == int(total[1])
    assert set(counts) == {"mapped", "nothing to do", "not carried over", "not interpreted",
                           "error"}


def tutela(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args],
                            capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"tutela {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One tutelad per cluster name, started on first use; all stopped at the end.

    Starts run one after the other: they are CPU-bound, and in parallel they were slower.
    """
    started: dict[str, Path] = {}
    try:
        yield started
    finally:
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda state: tutela(state, "stop", check=False), started.values()))


def daemon_for(daemons: dict[str, Path], document: dict[str, Any],
               factory: pytest.TempPathFactory) -> Path:
    """The daemon of the document's cluster on its first node, with the members the
    document names (nodes, comm paths, witnesses) as forming the cluster first makes them
    (init, join, witness add: docs/serviceguard.md): an apply changes the voters one at a
    time, so a document is applied to a formed cluster, never to a node still alone."""
    name = document["name"]
    if name not in daemons:
        state = factory.mktemp(f"state-{name}")
        members = ClusterConfig.model_validate(
            {key: document[key] for key in ("name", "nodes", "comm_paths", "witnesses")
             if key in document})
        Lcd.create_from(state, document["nodes"][0]["name"], secrets.token_bytes(KEY_BYTES),
                        members, 1, f"formed cluster {name}").close()
        daemons[name] = state
        tutela(state, "start", "--no-wait")  # its peers are only named, never started
    return daemons[name]


@pytest.mark.parametrize("case", CASES)
def test_output_applies_cleanly_with_dry_run(
        results: dict[str, Result], daemons: dict[str, Path], case: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    result = results[case]
    state = daemon_for(daemons, yaml.safe_load(result.output.read_text()), tmp_path_factory)
    applied = tutela(state, "apply", "-f", str(result.output), "--dry-run", check=False)
    assert applied.returncode == 0, applied.stderr
    assert "nothing was changed" in applied.stdout
