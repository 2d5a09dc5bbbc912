"""`tutela notify test`: one test record to each notification target the cluster
configuration names (or one), sent from this node itself, so it works with tutelad stopped
too; each target's result is reported (docs/notifications.md)."""

from __future__ import annotations

import sys

import click

from tutela.cli import output
from tutela.cli.main import EXIT_FAILED, EXIT_INVALID, _NodeGroup, json_option, state_dir
from tutela.lcd.store import Lcd, NotInitialised
from tutela.notifications.dispatch import send_tests


@click.group("notify", cls=_NodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
def notify_group() -> None:
    """Notifications of the event journal's records (docs/notifications.md)."""


@notify_group.command("test")
@click.option("--name", metavar="N", help="Only the target named N.")
@json_option
def test_command(name: str | None, as_json: bool) -> None:
    """Send one test record (kind notify.test) to every configured target, or the one
    named, from this node: one attempt each, at once, within each target's timeout.
    Exit 0 when every target took it, 1 when one did not, 2 when there is none."""
    try:
        lcd = Lcd.open(state_dir())
    except NotInitialised as error:
        output.print_error(str(error))
        sys.exit(EXIT_INVALID)
    try:
        config, node = lcd.load(), lcd.node
    finally:
        lcd.close()
    targets = [t for t in config.notifications if name is None or t.name == name]
    if not targets:
        known = ", ".join(t.name for t in config.notifications) or "none"
        output.print_error(f"no notification named {name!r} (configured: {known})" if name
                           else "no notification is configured; add one under "
                           "'notifications' (docs/notifications.md)")
        sys.exit(EXIT_INVALID)
    results = send_tests(config, node, targets)
    if as_json:
        output.print_json({"results": [vars(r) for r in results]})
    else:
        for result in results:
            outcome = "delivered" if result.delivered else f"FAILED: {result.error}"
            click.echo(f"{result.name} ({result.kind}): {outcome} in {result.seconds:g}s")
    if not all(r.delivered for r in results):
        sys.exit(EXIT_FAILED)
