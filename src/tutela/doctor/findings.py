"""What doctor reports: findings, each with its check, severity, node, what was found and
the fix; and the exit code they add up to (docs/doctor.md)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(enum.IntEnum):
    """From harmless to serious; the order in which the worst one sets the exit code."""

    OK = 0
    """Checked, and fine."""
    INFO = 1
    """Not checked here, and why (e.g. clocks are compared with --cluster only)."""
    WARNING = 2
    """It works, but weaker or harder to run than it should be (one comm path, no MMP)."""
    PROBLEM = 3
    """Something tutela needs does not work: a failover would fail or be refused, a
    resource cannot run here, a node or witness does not answer."""

    @property
    def label(self) -> str:
        return self.name.lower()


EXIT_FINE, EXIT_WARNINGS, EXIT_PROBLEMS = 0, 1, 3
"""Exit codes of `tutela doctor`; 2 stays bad input, as for every command."""


@dataclass(frozen=True)
class Finding:
    check: str
    """The check's id, e.g. 'watchdog' (docs/doctor.md lists them)."""
    severity: Severity
    node: str | None
    """The node it was found on; None for the cluster as a whole (a setting)."""
    found: str
    fix: str = ""
    """A command to run or a setting to change; empty when there is nothing to fix."""

    def to_json(self) -> dict[str, str | None]:
        return {"check": self.check, "severity": self.severity.label, "node": self.node,
                "found": self.found, "fix": self.fix or None}


def exit_code(findings: Iterable[Finding]) -> int:
    worst = max((f.severity for f in findings), default=Severity.OK)
    if worst == Severity.PROBLEM:
        return EXIT_PROBLEMS
    return EXIT_WARNINGS if worst == Severity.WARNING else EXIT_FINE


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each severity, for the summary line and --json."""
    found = {severity.label: 0 for severity in Severity}
    for finding in findings:
        found[finding.severity.label] += 1
    return found
