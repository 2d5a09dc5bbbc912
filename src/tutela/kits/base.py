"""The one interface every recovery kit implements, and the errors kits raise.

Kit actions are synchronous and idempotent; the engine runs them in worker threads with timeouts.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tutela.model.config import collection_message
from tutela.model.errors import ConfigError, Problem


class KitParams(BaseModel):
    """Base of every kit's parameter model; field descriptions drive CLI help and the GUI."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class KitError(Exception):
    """An action failed; the message says why in words an administrator can act on."""


P = TypeVar("P", bound=KitParams)


@dataclass(frozen=True)
class ActionContext(Generic[P]):
    tag: str
    resource_id: str
    params: P
    state_dir: Path
    """A directory of this resource's own (pid files, markers); it survives daemon restarts."""
    timeout: float
    """Seconds this action may take; kits bound their own subprocesses by it."""
    log: logging.Logger


@dataclass(frozen=True)
class CheckResult:
    healthy: bool
    reason: str = ""


DEFAULT_TIMEOUTS: Mapping[str, float] = {
    "restore": 60.0, "remove": 60.0, "quick_check": 10.0, "recover": 60.0,
}


class Kit(ABC, Generic[P]):
    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[KitParams]]
    default_timeouts: ClassVar[Mapping[str, float]] = DEFAULT_TIMEOUTS
    fence_first: ClassVar[bool] = False
    """Self-fencing takes resources of this kit out of service before the rest of their
    hierarchy, dependencies notwithstanding (ip: addresses are quickest to drop)."""

    def prepare(self) -> None:
        """Load ahead what a first action of this kit would otherwise wait for (a library's
        import): tutelad runs it once in a worker thread at start for every built-in kit
        its configuration uses, so a first takeover does not pay for it. Nothing by
        default."""

    def parse_params(self, raw: Mapping[str, Any], field_prefix: str = "params") -> P:
        """Validate raw parameters; a ConfigError names each bad field and how to fix it."""
        try:
            return self.Params.model_validate(dict(raw))  # type: ignore[return-value]
        except ValidationError as exc:
            raise ConfigError([_problem(self, field_prefix, e) for e in exc.errors()]) from None

    def check_here(self, params: P) -> list[tuple[str, str]]:
        """What keeps the resource from running on THIS node: (parameter, problem) pairs.

        Parameters are validated the same on every node (the configuration is shared);
        whether a script exists, a device is there or an interface is up is checked here,
        on the node that creates the resource and on each node it is extended to.
        """
        return []

    def pre_restore_check(self, ctx: ActionContext[P]) -> None:
        """Refuse (KitError) when restoring here now would be unsafe, e.g. a duplicate address.

        Runs for every resource of a hierarchy before any of them is restored.
        """

    @abstractmethod
    def restore(self, ctx: ActionContext[P]) -> None:
        """Bring the resource in service; succeed at once if it already is."""

    @abstractmethod
    def remove(self, ctx: ActionContext[P]) -> None:
        """Take the resource out of service; succeed at once if it already is."""

    @abstractmethod
    def quick_check(self, ctx: ActionContext[P]) -> CheckResult:
        """Say whether the resource is in service and healthy; cheap, run every few seconds."""

    def force_remove(self, ctx: ActionContext[P]) -> None:
        """Take the resource out of service as fast as possible: the quorum-loss action
        `fastkill`, when this node's lease has ended and another node may take over.

        Never waits for an orderly stop (no TERM grace, no fsck) and finishes well within
        ctx.timeout. Idempotent: on a resource not in service it succeeds and does nothing.
        Raises KitError only if the resource is still in service afterwards. By default it
        is `remove`, for kits whose remove is already immediate (ip) or that have nothing
        faster to offer (generic runs the administrator's remove script).
        """
        self.remove(ctx)

    def recover(self, ctx: ActionContext[P]) -> None:
        """Repair a failed resource in place; by default remove it and restore it again."""
        self.remove(ctx)
        self.restore(ctx)


def _problem(kit: Kit[Any], prefix: str, error: Any) -> Problem:
    location = ".".join(str(part) for part in error["loc"])
    field = f"{prefix}.{location}" if location else prefix
    if error["type"] == "missing":
        fix = f"give it, e.g. --param {location}=VALUE (see: tutela kit show {kit.name})"
    elif error["type"] == "extra_forbidden":
        fix = f"remove it; kit {kit.name!r} knows: {', '.join(kit.Params.model_fields)}"
    else:
        fix = f"see: tutela kit show {kit.name}"
    return Problem(field, collection_message(error) or error["msg"], fix)
