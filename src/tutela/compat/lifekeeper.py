"""LifeKeeper's commands over tutela's operations: lkstart and lkstop (tutela start and
stop; lkstop -f is the maintenance stop, --leave-resources), lcdstatus (the status display
in LifeKeeper's layout), perform_action (restore or remove one resource's hierarchy here)
and lksupport (tutela support-bundle). docs/compat.md lists the differences."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tutela.cli import main as tutela
from tutela.cli.main import reports_errors
from tutela.compat.entry import CONTEXT, entry_point, fail, snapshot
from tutela.compat.serviceguard import bring_to
from tutela.compat.view import cluster_view, lcdstatus_detailed, lcdstatus_short

SUPPORT_BUNDLE = "support-bundle"


@click.command("lkstart", context_settings=CONTEXT)
@click.option("-w", "wait", type=click.FloatRange(min=1), default=30.0, show_default=True,
              metavar="SECONDS",
              help="Seconds to wait until this node serves and hears its peers.")
@click.pass_context
def lkstart(ctx: click.Context, wait: float) -> None:
    """Start tutelad on this node: 'tutela start --timeout SECONDS'. Hierarchies left in
    service (lkstop -f) are re-adopted and protected again."""
    ctx.invoke(tutela.start, timeout=wait)


@click.command("lkstop", context_settings=CONTEXT)
@click.option("-f", "leave", is_flag=True,
              help="Leave the resources in service, unprotected: 'tutela stop "
                   "--leave-resources' (the other nodes do not take them over).")
@click.pass_context
def lkstop(ctx: click.Context, leave: bool) -> None:
    """Stop tutelad on this node: 'tutela stop', which first takes every hierarchy out of
    service here (the other nodes take the clustered ones over). With -f, 'tutela stop
    --leave-resources': a maintenance stop, refused without a majority of the nodes."""
    ctx.invoke(tutela.stop, leave_resources=leave)


@click.command("lcdstatus", cls=tutela.JsonErrorsCommand, context_settings=CONTEXT)
@click.option("-q", "short", is_flag=True,
              help="Short form: one line per resource (first column LOCAL), then the "
                   "comm paths.")
@click.option("-e", "backup", is_flag=True,
              help="Short form with the next node by priority (BACKUP) first.")
@click.option("--json", "as_json", is_flag=True,
              help="The packages and nodes as JSON (tutela's addition).")
@reports_errors
def lcdstatus(short: bool, backup: bool, as_json: bool) -> None:
    """Show every resource hierarchy with its states and the comm paths, in LifeKeeper's
    layout: the detailed display, or with -q or -e the short one. The same as 'tutela
    status'."""
    status, config = snapshot()
    if as_json:
        click.echo(json.dumps(status, indent=2))
    elif short or backup:
        click.echo(lcdstatus_short(status, config, backup), nl=False)
    else:
        click.echo(lcdstatus_detailed(status, config), nl=False)


@click.command("perform_action", context_settings=CONTEXT)
@click.option("-t", "tag", required=True, metavar="TAG", help="The resource.")
@click.option("-a", "action", required=True, type=click.Choice(["restore", "remove"]),
              help="restore: in service here, with what it depends on; remove: out of "
                   "service, with what depends on it.")
@reports_errors
@click.pass_context
def perform_action(ctx: click.Context, tag: str, action: str) -> None:
    """Bring TAG in service on this node (restore) or take it out of service (remove).

    restore is 'tutela restore TAG'; for a hierarchy that may run on several nodes and
    runs (or is started) elsewhere, then 'tutela switchover TAG --to THIS-NODE', as
    LifeKeeper brings it in service on the server you ask. remove is 'tutela remove TAG'."""
    if action == "remove":
        ctx.invoke(tutela.remove, tag=tag)
        return
    status, config = snapshot()
    view = cluster_view(status, config)
    hierarchy = next((h for h in status["hierarchies"]
                      if any(r["tag"] == tag for r in h["resources"])), None)
    package = view.package(hierarchy["root"]) if hierarchy else None
    eligible = [n.name for n in package.nodes] if package else []
    bring_to(ctx, tag, view.local, eligible)


@click.command("lksupport", context_settings=CONTEXT)
@click.option("-o", "output", type=click.Path(path_type=Path), metavar="FILE",
              help="Write the archive to FILE (default: tutela support-bundle's).")
@click.pass_context
def lksupport(ctx: click.Context, output: Path | None) -> None:
    """Gather this cluster's configuration, status, logs and system facts in one archive
    for support: 'tutela support-bundle'."""
    where = tutela.cli.get_command(ctx, SUPPORT_BUNDLE)
    if where is None:
        fail("lksupport: not available yet: 'tutela support-bundle', which it runs, is not "
             "in this version of tutela; meanwhile gather 'tutela export', 'tutela status "
             "--json' and 'tutela log' of every node")
    ctx.invoke(where, output_path=output)


main_lkstart = entry_point(lkstart, "lkstart")
main_lkstop = entry_point(lkstop, "lkstop")
main_lcdstatus = entry_point(lcdstatus, "lcdstatus")
main_perform_action = entry_point(perform_action, "perform_action")
main_lksupport = entry_point(lksupport, "lksupport")
