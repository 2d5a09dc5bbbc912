"""Local recovery policy: recover a failed resource up to N times within a time window.

Pure: the caller passes monotonic times in, the policy says what to do.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from tutela.model.config import RecoveryPolicy

Decision = Literal["recover", "give_up"]


@dataclass
class RecoveryTracker:
    policy: RecoveryPolicy
    attempts: deque[float] = field(default_factory=deque)

    def on_failure(self, now: float) -> Decision:
        """A quick check failed at `now`: recover again, or give up (the resource fails)."""
        while self.attempts and now - self.attempts[0] >= self.policy.window:
            self.attempts.popleft()
        if len(self.attempts) >= self.policy.attempts:
            return "give_up"
        self.attempts.append(now)
        return "recover"

    @property
    def attempts_in_window(self) -> int:
        return len(self.attempts)
