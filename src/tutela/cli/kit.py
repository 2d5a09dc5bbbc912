"""`tutela kit list` and `tutela kit show`: the built-in kits and the OCF agents installed
on this node, with their parameters."""

from __future__ import annotations

from typing import Any

import click

from tutela.cli import output
from tutela.cli.kit_help import parameter_rows
from tutela.cli.main import json_option, reports_errors


@click.group("kit")
def kit_group() -> None:
    """The recovery kits and their parameters (built-in kits and OCF agents)."""


@kit_group.command("list")
@json_option
def kit_list(as_json: bool) -> None:
    """List the built-in kits and every OCF resource agent installed on this node
    (ocf:PROVIDER:AGENT, from /usr/lib/ocf/resource.d); an agent that needs Pacemaker
    itself is marked unsupported, with the reason."""
    rows = _rows()
    if as_json:
        output.print_json(rows)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table("kit", "description")
    for row in rows:
        note = f" (not supported: see tutela kit show {row['kit']})" \
            if row["unsupported"] else ""
        table.add_row(Text(row["kit"]), Text(row["description"] + note))
    output.console().print(table)


def _rows() -> list[dict[str, Any]]:
    from tutela.kits.ocf import unsupported
    from tutela.kits.ocf_agents import AgentError, all_meta_data, installed
    from tutela.kits.registry import KITS

    rows = [{"kit": name, "type": "built-in", "description": kit.description,
             "unsupported": None} for name, kit in sorted(KITS.items())]
    for agent, meta in all_meta_data(installed()):
        if isinstance(meta, AgentError):
            rows.append({"kit": agent.kit, "type": "ocf", "description": "",
                         "unsupported": str(meta)})
        else:
            rows.append({"kit": agent.kit, "type": "ocf", "description": meta.shortdesc,
                         "unsupported": unsupported(agent)})
    return rows


@kit_group.command("show")
@click.argument("name")
@json_option
@reports_errors
def kit_show(name: str, as_json: bool) -> None:
    """Show the parameters of kit NAME (a built-in kit, or ocf:PROVIDER:AGENT)."""
    from tutela.kits.ocf import OcfKit, tool_uses, unsupported
    from tutela.kits.registry import get_kit

    found = get_kit(name)
    if not isinstance(found, OcfKit):
        if as_json:
            output.print_json({"kit": name, "description": found.description,
                               "params": output.kit_schema(found)})
        else:
            output.print_kit(found)
        return
    rows = parameter_rows(found)
    problem = unsupported(found.agent)
    optional = [use.describe() for use in tool_uses(found.agent) if use.optional]
    if as_json:
        output.print_json({"kit": name, "description": found.description,
                           "path": str(found.agent.path), "params": rows,
                           "timeouts": dict(found.default_timeouts),
                           "check_levels": found.meta.check_levels(),
                           "unsupported": problem, "optional_pacemaker_tools": optional})
        return
    _print_ocf(found, rows, problem, optional)


def _print_ocf(kit: Any, rows: list[dict[str, Any]], problem: str | None,
               optional: list[str]) -> None:
    from rich.table import Table
    from rich.text import Text

    click.echo(f"{click.style(kit.name, bold=True)}: {kit.description} ({kit.agent.path})")
    if problem:
        click.echo(click.style(problem, fg="red"))
    table = Table("parameter", "type", "default", "description")
    for row in rows:
        table.add_row(Text(row["name"]), row["type"],
                      Text("required" if row["required"] else str(row["default"] or "")),
                      Text(row["description"]))
    output.console().print(table)
    click.echo("default timeouts: " + ", ".join(
        f"{action} {seconds:g}s" for action, seconds in kit.default_timeouts.items()))
    if optional:
        click.echo("Pacemaker tools in optional code paths only (guarded, or for "
                   "promotable clones): " + "; ".join(optional))
    click.echo(f"e.g. tutela resource create {kit.name} TAG --param NAME=VALUE ...")
