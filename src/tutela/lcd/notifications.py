"""The checks of the notification targets that need more than the model knows: every
`kinds` entry names event kinds of the journal (docs/events.md)."""

from __future__ import annotations

from tutela.journal.events import BY_NAME
from tutela.model.config import ClusterConfig
from tutela.model.errors import Problem


def names_kinds(pattern: str) -> bool:
    """'*', an event kind, or PREFIX.* where some kind starts with PREFIX."""
    if pattern.endswith(".*"):
        return any(kind.startswith(pattern[:-1]) for kind in BY_NAME)
    return pattern == "*" or pattern in BY_NAME


def notification_problems(config: ClusterConfig) -> list[Problem]:
    prefixes = sorted({kind.split(".")[0] + ".*" for kind in BY_NAME})
    return [Problem(f"notifications[{target.name}].kinds", f"{pattern!r} is no event kind",
                    f"give '*', a kind (lease.won) or a prefix ({', '.join(prefixes)}); "
                    "the kinds are listed in docs/events.md")
            for target in config.notifications for pattern in target.kinds
            if not names_kinds(pattern)]
