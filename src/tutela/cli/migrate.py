"""`tutela migrate`: bring a configuration over from another cluster manager.

`tutela migrate serviceguard` writes the YAML for `tutela apply`, a line-by-line report, scripts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tutela.cli.output import ExitCode, print_error

if TYPE_CHECKING:  # the importer (and the kits it validates with) load only when used
    from tutela.migrate import Migration

EXIT_FAILED, EXIT_NOTHING = ExitCode.FAILED, ExitCode.REFUSED
DEFAULT_STEM = "serviceguard"


@click.group("migrate", context_settings={"help_option_names": ["-h", "--help"]})
def migrate_group() -> None:
    """Bring a configuration over from another cluster manager (HP Serviceguard today)."""


@migrate_group.command("serviceguard")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...",
                type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the YAML here (default: standard output).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the Markdown report here (default: STEM-report.md beside the "
                   "output, or ./serviceguard-report.md).")
@click.option("--scripts-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the generated wrapper scripts (default: STEM-scripts/ "
                   "beside the output, or ./serviceguard-scripts/).")
@click.option("--runbook", "runbook_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the cutover runbook here: the ordered steps from the running "
                   "Serviceguard cluster to tutela, each with its commands, check and "
                   "rollback.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary with every report entry (and the YAML when -o is "
                   "not given).")
def serviceguard(paths: tuple[Path, ...], output: Path | None, report_path: Path | None,
                 scripts_dir: Path | None, runbook_path: Path | None, as_json: bool) -> None:
    """Convert Serviceguard cluster and package files into a tutela configuration.

    Each PATH is a cluster ASCII file (cmgetconf), a modular or legacy package file, a
    legacy control script, or a whole $SGCONF directory, searched for all of them.
    Nothing that is read is ever run. The report says, for every line, what it became or
    why it did not carry over and what to do by hand.

    Exit status: 0 when something was converted (even with errors in the report), 1 when
    the output could not be written, 2 when nothing could be converted.

    Example: tutela migrate serviceguard /etc/cmcluster -o cluster.yaml
    """
    from tutela.migrate import MigrationError, check, convert, write_scripts

    directory = output.parent if output else Path.cwd()
    stem = output.stem if output else DEFAULT_STEM
    report_path = report_path or directory / f"{stem}-report.md"
    migration = convert(list(paths), scripts_dir or directory / f"{stem}-scripts")
    for name, reason in migration.problems:
        _error(f"{name}: {reason}")
    if not migration.converted:
        _error("nothing could be converted: no Serviceguard cluster or package file among "
               "the inputs")
        sys.exit(EXIT_NOTHING)
    try:
        scripts = write_scripts(migration)
        check(migration)
        _write(report_path, migration.ledger.markdown())
        if output is not None:
            _write(output, migration.yaml())
        if runbook_path is not None:
            _write(runbook_path, _runbook(migration, output, scripts))
    except OSError as error:
        _error(f"cannot write {error.filename or 'the output'}: {error.strerror or error}")
        sys.exit(EXIT_FAILED)
    except MigrationError as error:
        _error(str(error))
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(_json(migration, output, report_path, scripts, runbook_path),
                              indent=2))
        return
    if output is None:
        click.echo(migration.yaml(), nl=False)
    _summary(migration, output, report_path, scripts, runbook_path)


def _write(path: Path, text: str) -> None:
    """Write atomically, so an interrupted run never leaves half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _runbook(migration: Migration, output: Path | None, scripts: list[Path]) -> str:
    from tutela.migrate.runbook import Paths, runbook

    # without -o the YAML went to standard output: the runbook names the file it is saved to
    paths = Paths(str(output.absolute()) if output else "FILE",
                  str(migration.scripts_dir) if scripts else "")
    return runbook(migration.config, migration.origin, paths)


def _error(message: str) -> None:
    print_error(message)


def _summary(migration: Migration, output: Path | None, report: Path,
             scripts: list[Path], runbook: Path | None) -> None:
    from tutela.migrate.sgmodel import Outcome

    ledger, config = migration.ledger, migration.config
    for entry in ledger.errors():
        _error(f"{entry.loc}: {entry.detail}")
    counts = ledger.line_outcomes()
    lines = ", ".join(f"{counts.get(o, 0)} {o.value}" for o in (
        Outcome.MAPPED, Outcome.NOTHING, Outcome.MANUAL, Outcome.SHELL, Outcome.ERROR))
    roots = sum(1 for _ in config.hierarchies)
    target = str(output) if output else "standard output"
    click.echo(f"converted cluster {config.name}: nodes {len(config.nodes)}, comm paths "
               f"{len(config.comm_paths)}, witnesses {len(config.witnesses)}, hierarchies "
               f"{roots}, resources {len(config.resources)}", err=True)
    click.echo(f"lines: {lines}; {len(ledger.steps())} manual steps", err=True)
    click.echo(f"wrote the configuration to {target}, the report to {report}"
               + (f", {len(scripts)} scripts to {migration.scripts_dir}" if scripts else "")
               + (f", the cutover runbook to {runbook}" if runbook else ""), err=True)
    click.echo(f"next: work through the report's manual steps, then tutela apply -f "
               f"{output or 'FILE'} --dry-run", err=True)


def _json(migration: Migration, output: Path | None, report: Path,
          scripts: list[Path], runbook: Path | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "cluster": migration.config.name,
        "output": str(output) if output else None,
        "report": str(report),
        "scripts_dir": str(migration.scripts_dir),
        "scripts": [str(s) for s in scripts],
        "runbook": str(runbook) if runbook else None,
        "problems": [{"file": name, "reason": reason} for name, reason in migration.problems],
        **migration.ledger.to_json(),
    }
    if output is None:
        result["yaml"] = migration.yaml()
    return result
