"""How the CLI shows things: the status tree, kit parameter tables, errors, JSON.

Colour only on a terminal; `--json` output is for scripts and never changes shape silently.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from tutela.kits.base import Kit

STATE_COLOUR: dict[str, dict[str, Any]] = {
    "ISP": {"fg": "green"}, "ISU": {"fg": "yellow"}, "OSU": {"dim": True},
    "OSF": {"fg": "red", "bold": True}, "UNKNOWN": {"fg": "magenta"}}
"""click.style arguments per state. The hierarchy trees are drawn with click, not rich:
rich took 0.3 s for the 500 resources of a large cluster, click a few milliseconds, and
`--json` output then loads no rich at all."""


@functools.cache
def console(stderr: bool = False) -> Console:
    from rich.console import Console  # only where a table is drawn: 45 ms to import

    return Console(stderr=stderr, highlight=False)


class ExitCode(enum.IntEnum):
    """Every `tutela` command's exit codes: docs/cli.md's table, in the same order."""

    OK = 0
    FAILED = 1
    """The operation failed, or tutelad could not do it as things are (no majority...)."""
    REFUSED = 2
    """Bad usage or bad input, or a change that is not allowed: nothing was changed."""
    NOT_RUNNING = 3
    NOT_MOVED = 4
    """A switchover did not reach its target; the message says where the hierarchy runs."""
    UNKNOWN = 5
    """No answer, and whether the request took effect cannot be known."""
    PEERS_UNHEARD = 6
    """`start`: tutelad serves, but did not hear every peer in time."""


ERROR_CODES: dict[int, str] = {ExitCode.FAILED: "failed", ExitCode.REFUSED: "refused",
               ExitCode.NOT_RUNNING: "not-running", ExitCode.NOT_MOVED: "not-moved",
               ExitCode.UNKNOWN: "unknown", ExitCode.PEERS_UNHEARD: "peers-unheard"}
"""The `code` of a --json error object, by exit code."""

_json_errors: contextvars.ContextVar[bool] = contextvars.ContextVar("json_errors",
                                                                    default=False)
"""Whether the running command was given --json: its errors then go to stdout as JSON."""
_pending: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pending_error", default=None)
"""The error a --json command reported, printed with its exit code when it exits."""


def json_requested() -> bool:
    """Whether the running command line asked for --json."""
    return _json_errors.get()


def wants_json(arguments: Sequence[str]) -> bool:
    """Whether --json is among a command line's options (before any `--`)."""
    options = list(arguments)
    return "--json" in options[:options.index("--")] if "--" in options else (
        "--json" in options)


@contextlib.contextmanager
def json_errors(arguments: Sequence[str] | None) -> Iterator[None]:
    """Run a command line; given --json, the error it reports (`print_error`, or click's
    usage error through `usage_errors`) goes to stdout as {"error": {...}} with the exit
    code it exits with."""
    as_json = wants_json(sys.argv[1:] if arguments is None else arguments)
    json_token, pending_token = _json_errors.set(as_json), _pending.set(None)
    try:
        yield
    except SystemExit as exit_:
        error = _pending.get()
        if as_json and error is not None and exit_.code not in (0, None):
            code = exit_.code if isinstance(exit_.code, int) else ExitCode.FAILED
            name = error.pop("code") or ERROR_CODES.get(code, "failed")
            print_json({"error": {"code": name, "exit_code": code, **error}})
        raise
    finally:
        _json_errors.reset(json_token)
        _pending.reset(pending_token)


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Click's errors (a usage error, a bad parameter) while a --json command line is
    parsed or run: reported as its JSON error, with click's exit code (2 for usage)."""
    try:
        yield
    except click.ClickException as error:
        if not _json_errors.get():
            raise
        _pending.set({"code": "usage" if isinstance(error, click.UsageError) else None,
                      "message": error.format_message(), "field": _param_name(error),
                      "fix": _help_hint(error), "problems": []})
        sys.exit(error.exit_code)


def _help_hint(error: click.ClickException) -> str | None:
    context = getattr(error, "ctx", None)
    return f"see '{context.command_path} --help'" if context is not None else None


def _param_name(error: click.ClickException) -> str | None:
    param = getattr(error, "param", None)
    if param is None:
        return getattr(error, "option_name", None)
    opts = getattr(param, "opts", None)
    return str(opts[0]) if opts else str(param.name)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def print_error(message: str, problems: list[dict[str, str]] | None = None,
                fix: str | None = None) -> None:
    """The error on stderr for a person; with --json, kept for the JSON error object that
    goes to stdout when the command exits (with that exit code)."""
    if _json_errors.get():
        first = (problems or [{}])[0]
        _pending.set({"code": None, "message": message, "field": first.get("field"),
                      "fix": first.get("fix", fix),
                      "problems": problems or []})
        return
    error = click.style("error:", fg="red", bold=True)
    if problems:
        click.echo(f"{error} the change was refused; nothing was changed", err=True)
        for problem in problems:
            fix_line = f"\n    fix: {problem['fix']}" if problem.get("fix") else ""
            click.echo(f"  {problem['field']}: {problem['message']}{fix_line}", err=True)
    else:
        click.echo(f"{error} {message}", err=True)


def print_status(status: dict[str, Any]) -> None:
    bold = functools.partial(click.style, bold=True)
    click.echo(f"cluster {bold(status['cluster'])}  node {bold(status['node'])}  "
               f"generation {status['generation']}  tutelad pid {status['daemon_pid']}")
    for warning in status.get("warnings", []):
        click.echo(f"{click.style('WARNING', fg='red', bold=True)} {warning}")
    if len(status["nodes"]) > 1 or status.get("witnesses"):
        witnesses = [{**w, "local": False, "generation": None, "name": f"{w['name']} (witness)"}
                     for w in status.get("witnesses", [])]
        console().print(_nodes_table(status["nodes"] + witnesses))
    for line in _maintenance_lines(status["nodes"]):
        click.echo(click.style(line, fg="yellow"))
    for line in [*_lease_lines(status), *_disk_voter_lines(status.get("disk_voter")),
                 *_etcd_lines(status.get("arbiter"))]:
        click.echo(line)
    if not status["hierarchies"]:
        click.echo("no resources yet: see 'tutela resource create --help'")
    lines: list[str] = []
    for hierarchy in status["hierarchies"]:
        resources = {r["tag"]: r for r in hierarchy["resources"]}
        lines += _label(resources[hierarchy["root"]])
        _add_children(lines, resources, hierarchy["root"], "")
        lines += _dependency_lines(hierarchy.get("dependencies", []))
        lines += _ownership_lines(hierarchy["root"], hierarchy.get("ownership"))
        lines += _instances_lines(hierarchy.get("instances"))
    if lines:
        click.echo("\n".join(lines))


def _nodes_table(nodes: list[dict[str, Any]]) -> Table:
    from rich.table import Table

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


def _disk_voter_lines(disk: dict[str, Any] | None) -> list[str]:
    """The disk voter as this node casts it: its state, its claims, the other slots."""
    if not disk:
        return []
    state = {"ok": click.style("ok", fg="green"), "failing": click.style("FAILING", fg="red",
                                                                         bold=True)}
    words = state.get(disk["state"], disk["state"])
    if disk["state"] == "starting":
        words += f" (first write in {disk['ready_in']:g}s)"
    elif disk["error"]:
        words += f": {disk['error']}"
    claims = ", ".join(disk["claims"]) or "nothing"
    lines = [f"disk voter {disk['voter']} on {disk['device']} slot {disk['slot']}: {words}; "
             f"this node claims {claims}"]
    for node, seen in disk["others"].items():
        lines.append(f"  slot of {node}: claims {', '.join(seen['claims']) or 'nothing'}, "
                     f"unchanged for {seen['unchanged_for']:.1f}s")
    return lines


def _etcd_lines(arbiter: dict[str, Any] | None) -> list[str]:
    """With `arbiter: etcd`: its members, whether this node reaches a quorum of them (in
    red with etcd's error when not), the leases this node holds and every owner key."""
    if not arbiter or arbiter["kind"] != "etcd":
        return []  # the embedded majority's voters are the nodes, witnesses and disk voter
    if arbiter["quorum"]:
        reach = click.style("quorum reached", fg="green")
    else:
        reach = click.style(f"NOT REACHED: {arbiter['error']}", fg="red", bold=True)
    held = ", ".join(f"{name} ({left:.1f}s left)" for name, left in arbiter["held"].items())
    lines = [f"arbiter etcd (TTL {arbiter['ttl']}s) at {', '.join(arbiter['endpoints'])}: "
             f"{reach}", f"  this node holds: {held or 'nothing'}"]
    if arbiter["owners"] is not None:
        owners = ", ".join(f"{name} by {node or '(not tutela)'}"
                           for name, node in sorted(arbiter["owners"].items()))
        lines.append(f"  owner keys in etcd: {owners or 'none'}")
    return lines


def _lease_lines(status: dict[str, Any]) -> list[str]:
    """The lease in effect and why, each node's watchdog, and the nodes that cannot take
    part in failover (in red, with the fix)."""
    lease = status.get("lease")
    if not lease:
        return []
    lines = [f"lease {lease['duration']:g}s ({lease['why']}), renewed every "
             f"{lease['renew_every']:g}s"]
    if status.get("fencing", {}).get("mode") == "watchdog":
        lines.append("watchdogs: " + "; ".join(
            f"{node['name']} {_watchdog_words(node.get('watchdog'))}"
            for node in status["nodes"]))
    for node in status["nodes"]:
        problem = node.get("fencing_problem")
        if problem:
            lines.append(click.style(f"{node['name']} cannot take part in failover: "
                                     f"{problem['message']}", fg="red", bold=True))
            lines.append(f"  fix: {problem['fix']}")
    return lines


def _watchdog_words(record: dict[str, Any] | None) -> str:
    if record is None:
        return "not reported"
    if not record["present"]:
        return f"missing ({record['device']})"
    shortest = record["min_timeout"]
    return (f"{record['device']}, fractions of a second" if shortest <= 0
            else f"{record['device']}, whole seconds (>= {shortest:g}s)")


def _maintenance_lines(nodes: list[dict[str, Any]]) -> list[str]:
    """A line for each node stopped by `tutela stop --leave-resources`."""
    lines = []
    for node in nodes:
        record = node.get("maintenance")
        if record:
            lines.append(f"{node['name']} is in maintenance since {record['since']}: "
                         f"{', '.join(record['hierarchies'])} left in service there, "
                         "unprotected; no other node takes them over ('tutela start' on "
                         f"{node['name']} re-adopts them)")
    return lines


def _add_children(lines: list[str], resources: dict[str, Any], tag: str,
                  indent: str) -> None:
    """The tree below `tag`, drawn with the branch characters `tree` uses."""
    children = resources[tag]["depends_on"]
    for number, child in enumerate(children):
        last = number == len(children) - 1
        first_line, *more = _label(resources[child])
        lines.append(f"{indent}{'└── ' if last else '├── '}{first_line}")
        below = indent + ("    " if last else "│   ")
        lines += [below + line for line in more]
        _add_children(lines, resources, child, below)


def _label(resource: dict[str, Any]) -> list[str]:
    """A resource's line: tag, state, kit, two parameters, its state on other nodes; and
    the reason when it is neither in service nor cleanly out of it."""
    colour = STATE_COLOUR.get(resource["state"], {})
    summary = ", ".join(f"{k}={_shorten(str(v))}" for k, v in list(resource["params"].items())[:2])
    text = (f"{click.style(resource['tag'], bold=True)}  "
            f"{click.style(resource['state'], **colour)}  {resource['kit']}")
    text += click.style(f" ({summary})", dim=True) if summary else ""
    for node, there in resource.get("elsewhere", {}).items():
        age = there["age"]
        stale = f" stale {age:.0f}s" if there["stale"] and age is not None else (
            " no data" if there["stale"] else "")
        text += f"  {click.style(node + ':', dim=True)}{there['state']}{stale}"
    if resource["state"] in ("ISP", "OSU"):
        return [text]
    return [text, click.style(resource["reason"], **colour)]


def _dependency_lines(dependencies: list[dict[str, Any]]) -> list[str]:
    """Below a hierarchy's tree: each hierarchy it needs, where that is up, and whether
    the dependency is met (in red when not)."""
    lines = []
    for entry in dependencies:
        up = f"up on {', '.join(entry['up_on'])}" if entry["up_on"] else "up nowhere"
        line = (f"  {entry['text']}: {'met' if entry['met'] else 'not met'} "
                f"({entry['hierarchy']} {up})")
        lines.append(line if entry["met"] else click.style(line, fg="red"))
    return lines


def _ownership_lines(root: str, ownership: dict[str, Any] | None) -> list[str]:
    """Below a clustered hierarchy's tree: its failover hold, and why each node sees it
    running nowhere (with the node that holds it, in the message, and since when)."""
    if not ownership:
        return []
    lines = []
    hold = ownership.get("hold")
    if hold:
        lines.append(click.style(
            f"  failover held: {hold['failovers']} failovers in {hold['window']:g}s, "
            f"{hold['left']:.0f}s left (until {hold['until']}); 'tutela restore {root}' "
            "ends the hold", fg="yellow"))
    for entry in ownership.get("stuck", []):
        maintenance = entry.get("reason") == "maintenance"
        lines.append(click.style(
            f"  {'left alone' if maintenance else 'not running'}: {entry['node']} sees: "
            f"{entry['message']} (since {entry['since']})",
            fg="yellow" if maintenance else "red"))
    return lines


def _instances_lines(instances: dict[str, Any] | None) -> list[str]:
    """Below a multi-node hierarchy's tree: how many instances are in service against its
    min and max, and its state on every node of its equivalencies."""
    if not instances:
        return []
    limit = instances["max_instances"]
    counts = (f"  instances: {instances['in_service']} in service (min "
              f"{instances['min_instances']}, max {limit if limit is not None else 'all'})")
    words = []
    for node, there in instances["nodes"].items():
        note = " failed, down until 'tutela restore'" if there["failed"] else (
            " (spare)" if there["alive"] and not there["wanted"]
            and instances["target"] == "in_service" else "")
        words.append(f"{node} {there['state']}{note}")
    line = f"{counts}: {', '.join(words)}"
    if instances["below_min"]:
        return [click.style(line + "; below min_instances", fg="red", bold=True)]
    return [line]


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def kit_schema(kit: Kit[Any]) -> list[dict[str, Any]]:
    rows = []
    for name, field in kit.Params.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        rows.append({"name": name, "required": field.is_required(),
                     "default": None if field.is_required() else repr(default),
                     "description": field.description or ""})
    return rows


def print_kit(kit: Kit[Any]) -> None:
    from rich.table import Table

    click.echo(f"{click.style(kit.name, bold=True)}: {kit.description}")
    table = Table("parameter", "default", "description")
    for row in kit_schema(kit):
        table.add_row(row["name"], "required" if row["required"] else row["default"],
                      row["description"])
    console().print(table)
    click.echo(f"e.g. tutela resource create {kit.name} TAG --param NAME=VALUE ...")

