"""`tutela why [TAG]`: the last move (or failed move) of a hierarchy in a few plain
sentences, from the journals of every reachable node as `tutela events` reads them
(docs/why.md; the explainer is tutela.journal.why).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tutela.cli import output
from tutela.cli.events import gather
from tutela.cli.main import EXIT_INVALID, _NodeCommand, json_option, reports_errors, state_dir
from tutela.doctor.probes import stored_config
from tutela.journal.why import explain
from tutela.model.hierarchy import build_hierarchies


def members_of(directory: Path) -> dict[str, str] | None:
    """Resource tag -> the root of its hierarchy, from this node's configuration; None
    before the node is initialised."""
    stored = stored_config(directory)
    if stored is None:
        return None
    return {tag: h.root for h in build_hierarchies(stored[1].resources) for tag in h.members}


@click.command("why", cls=_NodeCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("tag", required=False)
@json_option
@reports_errors
def why_command(tag: str | None, as_json: bool) -> None:
    """Why TAG's hierarchy last moved (or could not): which node stopped answering on which
    paths and when, what local recovery tried, who won the lease with whose votes, fencing,
    how long the restore took (docs/why.md). Without TAG: the last move of any hierarchy.

    TAG may be any resource of the hierarchy. Read from the event journals of every
    reachable node (as 'tutela events' reads them)."""
    directory = state_dir()
    members = members_of(directory)
    root = tag
    if tag is not None and members is not None:
        if tag not in members:
            output.print_error(f"TAG {tag!r}: no such resource in the configuration; "
                               "'tutela status' lists them")
            sys.exit(EXIT_INVALID)
        root = members[tag]
    gathered = gather(directory, None, None, None)
    explanation = explain(gathered.events, root, members)
    if as_json:
        output.print_json({"explanation": explanation and explanation.to_json(),
                           "notes": gathered.notes, "local_only": gathered.local_only})
        return
    for note in gathered.notes:
        click.echo(f"note: {note}", err=True)
    if explanation is None:
        what = f"of {root}" if root else "of any hierarchy"
        click.echo(f"no move {what} is recorded in the journals read", err=True)
        return
    for sentence in explanation.sentences:
        click.echo(sentence)
