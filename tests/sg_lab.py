"""Serviceguard files for a lab cluster and their import, as the lab migration tests use them
(tests/lab/test_migrate_failover.py, test_migrate_dependencies_lab.py): the files name the
lab's nodes, networks and disk, and are written at test time."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tutela.lab import Lab

MEMBER_TIMEOUT_US = 14_000_000  # what cmquerycl writes: Serviceguard's default, 14 s


@dataclass(frozen=True)
class Migrated:
    document: Path
    """The generated YAML, as `tutela migrate serviceguard -o` wrote it."""
    config: dict[str, Any]
    summary: dict[str, Any]
    """`--json`'s summary: counts, manual steps, every report entry."""
    mountpoint: Path
    url: str
    """The package's file, fetched through its address."""
    runbook: str
    """The cutover runbook, as `--runbook` wrote it."""


@dataclass(frozen=True)
class RunbookLine:
    """One command of the runbook and the host it runs on (its block's `# on HOST`)."""

    host: str
    command: str


STEP = re.compile(r"^## \d+\. (?P<title>.+)$")


def runbook_steps(text: str) -> dict[str, list[RunbookLine]]:
    """The commands of each numbered step of a cutover runbook, by the step's title, in
    order; the rollback section after the steps is not read."""
    steps: dict[str, list[RunbookLine]] = {}
    title, host, fenced = "", "", False
    for line in text.splitlines():
        heading = STEP.match(line)
        if heading or line.startswith("## "):
            title = heading["title"] if heading else ""
        elif line.startswith("```"):
            fenced = not fenced
        elif fenced and title and line.startswith("# on "):
            host = line.removeprefix("# on ")
        elif fenced and title and line and not line.startswith("#"):
            steps.setdefault(title, []).append(RunbookLine(host, line))
    return steps


def cluster_ascii(lab: Lab, name: str, quorum_server: str | None = None) -> str:
    """What `cmgetconf` prints for the lab's nodes, with a heartbeat address on each lab
    network, and a quorum server if one is given."""
    nodes = "".join(f"""
NODE_NAME               {node}
  NETWORK_INTERFACE     {lab.interface(1)}
    HEARTBEAT_IP        {lab.node_address(node, 1)}
  NETWORK_INTERFACE     {lab.interface(2)}
    HEARTBEAT_IP        {lab.node_address(node, 2)}
""" for node in lab.nodes)
    quorum = (f"\n# Quorum server.\nQS_HOST                 {quorum_server}\n"
              "QS_POLLING_INTERVAL     300000000\n") if quorum_server else ""
    return f"""\
# Cluster configuration, as cmgetconf writes it (abridged).
CLUSTER_NAME            {name}
HOSTNAME_ADDRESS_FAMILY IPV4
{quorum}{nodes}
# Cluster timing parameters (microseconds).
MEMBER_TIMEOUT          {MEMBER_TIMEOUT_US}
AUTO_START_TIMEOUT      600000000
NETWORK_POLLING_INTERVAL 2000000

SUBNET 198.51.100.0
  IP_MONITOR OFF
SUBNET 203.0.113.0
  IP_MONITOR OFF

MAX_CONFIGURED_PACKAGES 300
"""


def migrate(lab: Lab, files: dict[str, str], mountpoint: Path, content: dict[str, str],
            url: str) -> Migrated:
    """The package data on the lab's first disk (as it was under Serviceguard), the files
    in $SGCONF, and `tutela migrate serviceguard` on node1, as an administrator runs it
    after copying $SGCONF over. `files`: path in $SGCONF -> text; `content`: file name ->
    text, on the disk."""
    data = lab.root / "disk-content"
    data.mkdir()
    for name, text in content.items():
        (data / name).write_text(text)
    # mkfs.ext4 -d fills the new filesystem from a directory without mounting it
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(data), lab.disks[0]], check=True,
                   timeout=120)
    sgconf = lab.root / "cmcluster"
    for name, text in files.items():
        (sgconf / name).parent.mkdir(parents=True, exist_ok=True)
        (sgconf / name).write_text(text)
    out = lab.root / "migrated"
    out.mkdir()
    result = lab.exec("node1", ["tutela", "migrate", "serviceguard", str(sgconf),
                                "-o", str(out / "cluster.yaml"),
                                "--report", str(out / "report.md"),
                                "--runbook", str(out / "runbook.md"), "--json"], cwd=str(out))
    document = out / "cluster.yaml"
    return Migrated(document, yaml.safe_load(document.read_text()), json.loads(result.stdout),
                    mountpoint, url, (out / "runbook.md").read_text())
