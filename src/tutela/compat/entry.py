"""What every LifeKeeper and Serviceguard command shares: the node it acts on (as `tutela`:
$TUTELA_STATE_DIR, else /var/lib/tutela), the cluster as tutelad reports it, and errors
turned into one message and the original's exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from tutela.cli import output
from tutela.cli.client import call
from tutela.cli.main import reports_errors, state_dir
from tutela.lcd.paths import state_dir_from_env
from tutela.model.config import ClusterConfig

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED = output.ExitCode.FAILED
"""Serviceguard's commands exit 1 for every failure (their man pages' RETURN VALUE)."""
CONTEXT = {"help_option_names": ["-h", "--help"]}


def entry_point(command: click.Command, name: str) -> Callable[[], None]:
    """The console script of `command`: run as `name`, on this node's state directory."""
    def main() -> None:
        command.main(prog_name=name, obj=state_dir_from_env())
    return main


def fail(message: str) -> NoReturn:
    """Say what went wrong and how to go on, and exit 1."""
    output.print_error(message)
    sys.exit(EXIT_FAILED)


def failures_exit_1(function: F) -> F:
    """A Serviceguard command: tutela's errors (reported by `reports_errors`, with their
    message and fix) exit 1, as every failure of the original does (usage errors: 2)."""
    reporting = reports_errors(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return reporting(*args, **kwargs)
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                sys.exit(EXIT_FAILED)
            raise
    return wrapper  # type: ignore[return-value]


def node_state() -> Path:
    """This node's state directory (refused, with the reason, for a user who may not use
    it)."""
    return state_dir()


def snapshot() -> tuple[dict[str, Any], ClusterConfig]:
    """tutelad's status and the configuration in force on this node."""
    from tutela.lcd.document import from_yaml  # what the status commands need only

    directory = node_state()
    status: dict[str, Any] = call(directory, "status")
    config = from_yaml(call(directory, "export")["yaml"], "tutela export")
    return status, config


def set_failover(root: str, enabled: bool) -> None:
    """The hierarchy's `failover` (Serviceguard's global switching), as `tutela config set
    hierarchies.ROOT.failover` sets it."""
    call(node_state(), "config.set", key=f"hierarchies.{root}.failover", value=enabled,
         dry_run=False)
