"""The one error type for bad configuration input: every problem names its field and its fix.

Raised before anything is written, so a rejected change leaves the LCD as it was.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class ConfigError(Exception):
    """One or more problems with a configuration change; nothing was changed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    def to_json(self) -> list[dict[str, str]]:
        return [{"field": p.field, "message": p.message, "fix": p.fix} for p in self.problems]
