"""Errors of the lab: every message names the problem and, where there is one, the fix."""

from __future__ import annotations

import subprocess


class LabError(Exception):
    """A lab operation could not be done. `str(err)` is one line: problem, then fix."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} (fix: {fix})" if fix else problem)


class LabCommandError(subprocess.CalledProcessError):
    """A command run in a lab node (or on the host for the lab) exited non-zero.

    Same as `subprocess.CalledProcessError`, but `str()` includes the tail of stderr,
    so a failing test says why.
    """

    def __str__(self) -> str:
        text = super().__str__()
        err = self.stderr
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        if err:
            tail = err.strip().splitlines()[-5:]
            text += " stderr: " + " | ".join(tail)
        return text
