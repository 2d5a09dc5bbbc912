"""How the CLI shows things: the status tree, kit parameter tables, errors, JSON.

Colour only on a terminal; `--json` output is for scripts and never changes shape silently.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

if TYPE_CHECKING:
    from tutela.kits.base import Kit

STATE_STYLE = {"ISP": "green", "ISU": "yellow", "OSU": "dim", "OSF": "bold red",
               "UNKNOWN": "magenta"}
console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def print_error(message: str, problems: list[dict[str, str]] | None = None) -> None:
    if problems:
        error_console.print("[bold red]error:[/] the change was refused; nothing was changed")
        for problem in problems:
            fix = f"\n    fix: {problem['fix']}" if problem.get("fix") else ""
            error_console.print(f"  {problem['field']}: {problem['message']}{fix}",
                                markup=False)
    else:
        error_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)


def print_status(status: dict[str, Any]) -> None:
    console.print(f"cluster [bold]{status['cluster']}[/]  node [bold]{status['node']}[/]  "
                  f"generation {status['generation']}  tutelad pid {status['daemon_pid']}")
    for warning in status.get("warnings", []):
        console.print(f"[bold red]WARNING[/] {_escape(warning)}")
    if len(status["nodes"]) > 1 or status.get("witnesses"):
        witnesses = [{**w, "local": False, "generation": None, "name": f"{w['name']} (witness)"}
                     for w in status.get("witnesses", [])]
        console.print(_nodes_table(status["nodes"] + witnesses))
    if not status["hierarchies"]:
        console.print("no resources yet: see 'tutela resource create --help'")
    for hierarchy in status["hierarchies"]:
        resources = {r["tag"]: r for r in hierarchy["resources"]}
        tree = Tree(_label(resources[hierarchy["root"]]))
        _add_children(tree, resources, hierarchy["root"], {hierarchy["root"]})
        console.print(tree)


def _nodes_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table("node", "state", "generation", "comm paths (state, last heard)")
    for node in nodes:
        style = "green" if node["state"] == "ALIVE" else "bold red"
        paths = "\n".join(
            f"{p['name']} prio {p['priority']}: [{'green' if p['state'] == 'ALIVE' else 'red'}]"
            f"{p['state']}[/]" + (f" {p['last_heard_age']:.1f}s ago"
                                  if p["last_heard_age"] is not None else " never")
            for p in node["paths"])
        table.add_row(node["name"] + (" (this node)" if node["local"] else ""),
                      f"[{style}]{node['state']}[/]", str(node.get("generation") or "-"),
                      paths or "-")
    return table


def _add_children(branch: Tree, resources: dict[str, Any], tag: str, path: set[str]) -> None:
    for child in resources[tag]["depends_on"]:
        _add_children(branch.add(_label(resources[child])), resources, child, path | {child})


def _label(resource: dict[str, Any]) -> str:
    style = STATE_STYLE.get(resource["state"], "")
    summary = ", ".join(f"{k}={_shorten(str(v))}" for k, v in list(resource["params"].items())[:2])
    text = f"[bold]{resource['tag']}[/]  [{style}]{resource['state']}[/]  {resource['kit']}"
    text += f" [dim]({_escape(summary)})[/]" if summary else ""
    for node, there in resource.get("elsewhere", {}).items():
        age = there["age"]
        stale = f" stale {age:.0f}s" if there["stale"] and age is not None else (
            " no data" if there["stale"] else "")
        text += f"  [dim]{node}:[/]{there['state']}{stale}"
    if resource["state"] not in ("ISP", "OSU"):
        text += f"\n[{style}]{_escape(resource['reason'])}[/]"
    return text


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def print_kits(kits: dict[str, Kit[Any]]) -> None:
    table = Table("kit", "description")
    for name in sorted(kits):
        table.add_row(name, kits[name].description)
    console.print(table)


def kit_schema(kit: Kit[Any]) -> list[dict[str, Any]]:
    rows = []
    for name, field in kit.Params.model_fields.items():
        rows.append({"name": name, "required": field.is_required(),
                     "default": None if field.is_required() else repr(field.get_default()),
                     "description": field.description or ""})
    return rows


def print_kit(kit: Kit[Any]) -> None:
    console.print(f"[bold]{kit.name}[/]: {kit.description}")
    table = Table("parameter", "required", "default", "description")
    for row in kit_schema(kit):
        table.add_row(row["name"], "yes" if row["required"] else "",
                      row["default"] or "", row["description"])
    console.print(table)
    console.print(f"e.g. tutela resource create {kit.name} TAG --param NAME=VALUE ...")

