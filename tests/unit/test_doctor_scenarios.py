"""doctor's checks as data: each file in tests/doctor/ is a fact set and the findings it
must give, in the manner of the planner's scenarios. Add a file to add a case.

A file names the configuration (merged over STANDARD below: two nodes on two networks, a
witness, a hierarchy with a shared ext4 disk extended to both; `config: null` for a node not
initialised), which nodes answered and how each differs from a healthy node (HEALTHY:
everything in order, tutelad running). `expected` lists every finding that is not ok or
info, as "SEVERITY NODE CHECK" (NODE `cluster` for the cluster as a whole), optionally
followed by "~ TEXT" that its text or fix must contain; `info` lists the info findings.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tutela.doctor.checks import diagnose, shared_disks
from tutela.doctor.facts import Situation
from tutela.doctor.findings import Finding, Severity
from tutela.doctor.tools import every_program
from tutela.lcm.paths import paths_for, witness_paths
from tutela.model.config import ClusterConfig

SCENARIOS = sorted((Path(__file__).parent.parent / "doctor").glob("*.yaml"))
UUID = "5d1b2c3a-0000-4000-8000-000000000001"
STANDARD: dict[str, Any] = {
    "name": "demo",
    "settings": {"lease_duration": "auto"},
    "nodes": [
        {"name": "node1", "addresses": ["198.51.100.11/24", "203.0.113.11/24"],
         "watchdog": {"device": "/dev/watchdog", "present": True, "min_timeout": 1}},
        {"name": "node2", "addresses": ["198.51.100.12/24", "203.0.113.12/24"],
         "watchdog": {"device": "/dev/watchdog", "present": True, "min_timeout": 1}}],
    "comm_paths": [
        {"nodes": ["node1", "node2"], "addresses": ["198.51.100.11", "198.51.100.12"]},
        {"nodes": ["node1", "node2"], "addresses": ["203.0.113.11", "203.0.113.12"],
         "priority": 2}],
    "witnesses": [{"address": "198.51.100.250:7366"}],
    "resources": [
        {"tag": "vip", "kit": "ip", "params": {"address": "198.51.100.100/24"}},
        {"tag": "data", "kit": "filesystem", "depends_on": ["vip"],
         "params": {"device": "/dev/sdb", "mountpoint": "/srv/data", "fstype": "ext4"}}],
    "hierarchies": [{"root": "data", "equivalencies": [{"node": "node1", "priority": 1},
                                                       {"node": "node2", "priority": 2}]}],
}


def healthy(config: ClusterConfig | None, node: str) -> dict[str, Any]:
    """The facts of a node where everything is in order, as tutelad gathers them."""
    addresses = next((list(n.addresses) for n in config.nodes if n.name == node), []) \
        if config else ["192.0.2.10/24", "203.0.113.10/24"]
    names = {n.name: [a.split("/")[0] for a in n.addresses][:1] for n in config.nodes} \
        if config else {node: ["192.0.2.10"]}
    paths = paths_for(config, node) if config else []
    return {
        "node": node, "initialised": config is not None, "daemon": config is not None,
        "hostname": node, "resolution": {"localhost": ["127.0.0.1"], **names},
        "addresses": addresses,
        "paths": [{"name": p.name, "peer": p.peer, "kind": p.kind, "local": p.local,
                   "remote": p.remote, "state": "ALIVE"} for p in paths if p.port is None],
        "witnesses": [{"address": w.name.removeprefix("witness/"), "state": "ALIVE"}
                      for w in (witness_paths(config) if config else [])],
        "watchdog": {"device": "/dev/watchdog", "present": True, "min_timeout": 1},
        "tools": {program: f"/usr/bin/{program}" for program in every_program()},
        "disks": [{"device": d.params.device, "present": True, "block": True, "uuid": UUID,
                   "mmp": True} for d in (shared_disks(config) if config else [])
                  if node in d.nodes],
        "space": {"path": "/var/lib/tutela", "free": 8 << 30, "total": 16 << 30},
        "clock": {"wall": 1_800_000_000.0},
    }


def merged(base: Any, change: Any) -> Any:
    """`change` over `base`: mappings merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(change, dict):
        result = copy.deepcopy(base)
        for key, value in change.items():
            result[key] = merged(base.get(key), value)
        return result
    return copy.deepcopy(change)


def situation(case: dict[str, Any]) -> Situation:
    raw = case.get("config", {})
    config = None if raw is None else ClusterConfig.model_validate(merged(STANDARD, raw))
    here = case.get("here", "node1")
    nodes = case.get("nodes", {here: {}})
    return Situation.model_validate({
        "config": config, "here": here, "cluster": case.get("cluster", False),
        "nodes": {name: merged(healthy(config, name), change or {})
                  for name, change in nodes.items()},
        "unanswered": case.get("unanswered", {}), "clocks": case.get("clocks", {}),
        "daemon_error": case.get("daemon_error")})


def matches(finding: Finding, expected: str) -> bool:
    head, _, text = expected.partition(" ~ ")
    severity, node, check = head.split()
    return (finding.severity.label, finding.node or "cluster", finding.check) == (
        severity, node, check) and text in f"{finding.found} {finding.fix}"


def unmatched(findings: list[Finding], expected: list[str]) -> tuple[list[str], list[str]]:
    """(expected entries no finding matches, findings no entry matches)."""
    left = list(findings)
    missing = []
    for entry in expected:
        hit = next((f for f in left if matches(f, entry)), None)
        if hit is None:
            missing.append(entry)
        else:
            left.remove(hit)
    return missing, [f"{f.severity.label} {f.node or 'cluster'} {f.check}: {f.found}"
                     for f in left]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    findings = diagnose(situation(case))
    serious = [f for f in findings if f.severity >= Severity.WARNING]
    assert unmatched(serious, case.get("expected", [])) == ([], [])
    infos = [f for f in findings if f.severity == Severity.INFO]
    assert unmatched(infos, case.get("info", [])) == ([], [])


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 20
