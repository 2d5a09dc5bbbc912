"""`tutela events`: the event journals of every reachable node, merged by time
(docs/events.md). This node's journal is read from its file here, so it shows with tutelad
stopped too; tutelad asks every other node for its records over the comm paths.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from tutela.cli import output
from tutela.cli.client import DaemonError, NotRunning, call
from tutela.cli.main import _NodeCommand, json_option, reports_errors, state_dir
from tutela.daemon import events as node_events
from tutela.journal.events import Event, human, merged, parse_since, select
from tutela.journal.file import read_journal

EVENTS_TIMEOUT = node_events.PEER_WAIT + 5.0
"""Seconds tutelad has to bring every peer's records."""


@dataclass
class Gathered:
    events: list[Event]
    notes: list[str] = field(default_factory=list)
    """What could not be read, each with why."""
    local_only: bool = False
    """tutelad is not running here: only this node's file was read."""


def gather(directory: Path, hierarchy: str | None, since: datetime.datetime | None,
           limit: int | None) -> Gathered:
    """Every reachable node's records that match, merged by time; the last `limit`."""
    here = read_journal(directory)
    streams = [select(here.events, hierarchy, since, limit)]
    notes = [f"this node: {here.skipped} line(s) of its journal are not whole records "
             "(torn by a crash) and were skipped"] if here.skipped else []
    local_only = False
    query: dict[str, Any] = {"hierarchy": hierarchy, "limit": limit, "since": None if since
                             is None else since.astimezone(datetime.UTC).isoformat(
                                 timespec="milliseconds")}
    try:
        answer = call(directory, "events", timeout=EVENTS_TIMEOUT, **query)
    except NotRunning:
        local_only = True
        notes.append("tutelad is not running on this node: only its own journal is shown "
                     "(the other nodes are reached through tutelad)")
    except DaemonError as error:
        notes.append(f"the other nodes: not read: {error}")
    else:
        streams += [[Event.from_json(r) for r in records]
                    for records in answer["records"].values()]
        notes += [f"{peer}: not read: {why}" for peer, why in answer["unanswered"].items()]
    events = merged(streams)
    return Gathered(events if limit is None else events[-limit:], notes, local_only)


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None
           ) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value, datetime.datetime.now(datetime.UTC))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("events", cls=_NodeCommand,
               context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new records as they come (Ctrl-C ends, exit 0).")
@click.option("--hierarchy", metavar="TAG", help="Only the records about this hierarchy.")
@click.option("--since", callback=_since, metavar="DURATION|TIME",
              help="Only records from then on: 90s, 10m, 2h, 1d ago, or an ISO time (UTC "
                   "unless it names a zone).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="Only the last N records (with --follow: of the first batch).")
@click.option("--interval", type=click.FloatRange(min=0.2), default=1.0, show_default=True,
              help="Seconds between polls with --follow.")
@json_option
@reports_errors
def events_command(follow: bool, hierarchy: str | None, since: datetime.datetime | None,
                   limit: int | None, interval: float, as_json: bool) -> None:
    """What changed on every reachable node, merged by time: nodes and comm paths up and
    down, leases, restores and removes with their cause, local recovery, fencing, the
    watchdog, configuration generations, maintenance (docs/events.md).

    One line per record: time (UTC), node, severity, kind, subject, cause and the
    correlation id shared by the records of one failover."""
    directory = state_dir()
    if not follow:
        _show_all(gather(directory, hierarchy, since, limit), as_json)
        return
    try:
        _follow(directory, gather(directory, hierarchy, since, limit), hierarchy, interval,
                as_json)
    except KeyboardInterrupt:
        sys.exit(0)


def _show_all(gathered: Gathered, as_json: bool) -> None:
    if as_json:
        output.print_json({"events": [e.to_json() for e in gathered.events],
                           "notes": gathered.notes, "local_only": gathered.local_only})
        return
    for note in gathered.notes:
        click.echo(f"note: {note}", err=True)
    for event in gathered.events:
        click.echo(human(event))
    if not gathered.events:
        click.echo("no events recorded", err=True)


def _follow(directory: Path, gathered: Gathered, hierarchy: str | None, interval: float,
            as_json: bool) -> None:
    """Print the records as they come, each once; JSON: one object per line."""
    for note in gathered.notes:
        click.echo(f"note: {note}", err=True)
    seen: set[str] = set()
    batch = gathered.events
    while True:
        for event in batch:
            line = event.to_line()
            if line not in seen:
                seen.add(line)
                click.echo(json.dumps(event.to_json()) if as_json else human(event))
        time.sleep(interval)  # the poll period, not a wait for something
        since = datetime.datetime.fromisoformat(batch[-1].at) if batch else None
        batch = gather(directory, hierarchy, since, None).events or batch
