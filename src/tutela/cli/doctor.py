"""`tutela doctor`: check this node, or with --cluster every node, and say what to fix.

The running tutelad gathers the facts (its comm paths' states, its watchdog) and, with
--cluster, those of its peers over the comm paths; without one (before joining, or
stopped) this command gathers this node's facts itself. Either way the checks run here.
"""

from __future__ import annotations

import shutil
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import click

from tutela.cli import output
from tutela.cli.client import DaemonError, NotRunning, call
from tutela.cli.main import EXIT_INVALID, _NodeCommand, json_option, state_dir
from tutela.doctor.checks import diagnose
from tutela.doctor.facts import Situation
from tutela.doctor.findings import Finding, Severity, counts, exit_code
from tutela.doctor.probes import gather, stored_config
from tutela.lcm.paths import DEFAULT_PORT, split_host_port
from tutela.model.config import ClusterConfig

DOCTOR_TIMEOUT = 60.0
"""Seconds tutelad has to answer: its own probes and its peers' (tutela.daemon.doctor)."""
STYLE: dict[Severity, dict[str, Any]] = {
    Severity.PROBLEM: {"fg": "red", "bold": True}, Severity.WARNING: {"fg": "yellow"},
    Severity.OK: {"fg": "green"}, Severity.INFO: {"dim": True}}


@click.command("doctor", cls=_NodeCommand,
               context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cluster", is_flag=True,
              help="Check every node of the cluster, asked over the comm paths by this "
                   "node's tutelad.")
@click.option("--peer", "peers", multiple=True, metavar="ADDRESS",
              help="Before joining: the address of a cluster node this node will join (or "
                   "its address on each network); checks its port and the networks the "
                   "join would make comm paths on. Repeatable.")
@click.option("--port", type=click.IntRange(1, 65535),
              help="The cluster's port for --peer (default 7365).")
@json_option
def doctor(cluster: bool, peers: tuple[str, ...], port: int | None, as_json: bool) -> None:
    """Check this node before and after it joins, and say what to fix.

    Name resolution, the cluster port on every comm path, two independent comm paths,
    clocks (--cluster), the watchdog against the lease, fencing, the witness, every kit's
    programs, the shared disks and their UUIDs on every node that may mount them, ext4
    multi-mount protection, free space in the state directory.

    Exit status: 0 nothing to fix, 1 warnings only, 3 problems (2: bad options, as for
    every command). Each finding names its check, node and fix (docs/doctor.md).
    """
    directory = state_dir()
    stored = stored_config(directory)
    if cluster and stored is None:
        _refuse("--cluster checks the nodes of this node's cluster, and this node has not "
                "joined one yet: leave it out (and give --peer ADDRESS to check a join)")
    if (peers or port) and stored is not None:
        _refuse("--peer and --port check a join, and this node has joined already: its "
                "comm paths are checked without them")
    for peer in peers:
        _check_peer(peer)
    situation = _situation(directory, stored, cluster, peers, port)
    findings = sorted(diagnose(situation), key=lambda f: -f.severity)
    if as_json:
        output.print_json(_json(situation, findings))
    else:
        _print(situation, findings)
    sys.exit(exit_code(findings))


def _check_peer(value: str) -> None:
    try:
        host, number = split_host_port(value, DEFAULT_PORT)
    except ValueError:
        host, number = "", 0
    if not host or not 1 <= number <= 65535:
        _refuse(f"--peer {value!r} is not HOST or HOST:PORT; give e.g. 198.51.100.11 or "
                "198.51.100.11:7365")


def _refuse(message: str) -> None:
    output.print_error(message)
    sys.exit(EXIT_INVALID)


def _situation(directory: Path, stored: tuple[str, ClusterConfig] | None, cluster: bool,
               peers: tuple[str, ...], port: int | None) -> Situation:
    """From tutelad if it runs; else (or if it fails) from this node's own probes."""
    why = "tutelad is not running (no answer on its control socket)"
    if stored is not None:
        try:
            answer = call(directory, "doctor", timeout=DOCTOR_TIMEOUT, cluster=cluster)
            return Situation.model_validate(answer)
        except NotRunning:
            pass
        except DaemonError as error:  # doctor still reports what it can find out here
            why = f"tutelad failed to answer: {error}"
    here, config = stored if stored is not None else (socket.gethostname(), None)
    facts = gather(config, here, directory, peers=peers, port=port)
    return Situation(config=config, here=here, nodes={here: facts}, cluster=cluster,
                     daemon_error=why if cluster else None)


def _json(situation: Situation, findings: list[Finding]) -> dict[str, object]:
    return {"node": situation.here,
            "cluster": situation.config.name if situation.config else None,
            "checked": list(situation.nodes), "findings": [f.to_json() for f in findings],
            "counts": counts(findings), "exit_code": exit_code(findings)}


def _print(situation: Situation, findings: list[Finding]) -> None:
    config = situation.config
    where = f" of cluster {config.name}" if config else " (not initialised)"
    click.echo(f"doctor: {situation.here}{where}; checked {', '.join(situation.nodes)}")
    width = max((len(f.node or "cluster") for f in findings), default=7)
    indent = " " * (width + 22)
    columns = max(60, shutil.get_terminal_size((100, 24)).columns)
    for finding in findings:
        label = click.style(f"{finding.severity.label.upper():<8}", **STYLE[finding.severity])
        head = f"{(finding.node or 'cluster'):<{width}}  {finding.check:<9}  "
        lines = textwrap.wrap(finding.found, columns - len(indent)) or [""]
        click.echo(f"{label} {head}{lines[0]}")
        for line in lines[1:]:
            click.echo(indent + line)
        if finding.fix and finding.severity > Severity.OK:
            click.echo(textwrap.fill(f"fix: {finding.fix}", columns, initial_indent=indent,
                                     subsequent_indent=indent + "     "))
    found = counts(findings)
    click.echo(", ".join(_counted(n, label) for label, n in reversed(found.items()) if n))


def _counted(number: int, label: str) -> str:
    plural = "s" if number != 1 and label in ("problem", "warning") else ""
    return f"{number} {label}{plural}"
