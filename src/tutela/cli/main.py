"""The `tutela` command: verbs for the cluster, its resources and the local lab.

Every verb but `init`, `kit` and `lab` talks to the local tutelad over its control socket.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tutela.access import unusable_state_dir
from tutela.cli import output, progress
from tutela.cli.client import (
    ACTION_TIMEOUT,
    DaemonError,
    NotRunning,
    Unanswered,
    call,
    is_running,
    maintenance_note,
    stored_generation,
)
from tutela.cli.kit_help import KitHelp
from tutela.daemon.protocol import LOG_NAME
from tutela.lcd.paths import DEFAULT_STATE_DIR, state_dir_from_env
from tutela.model.errors import ConfigError, Problem
from tutela.system_errors import explain

F = TypeVar("F", bound=Callable[..., Any])
LONG_ACTION_TIMEOUT = ACTION_TIMEOUT
ExitCode = output.ExitCode
EXIT_FAILED, EXIT_INVALID, EXIT_NOT_RUNNING = ExitCode.FAILED, ExitCode.REFUSED, \
    ExitCode.NOT_RUNNING
EXIT_NOT_MOVED, EXIT_UNKNOWN = ExitCode.NOT_MOVED, ExitCode.UNKNOWN


def _state_dir_after_command(ctx: click.Context, param: click.Parameter,
                             value: Path | None) -> None:
    """`tutela status --state-dir D` as well as `tutela --state-dir D status` (the way
    `tutela-witness` commands take it); given after the command, it wins."""
    if value is not None:
        ctx.find_root().obj = state_dir_from_env(value)


class JsonErrors:
    """A command line whose errors, given --json, come as one JSON object on stdout
    (output.json_errors), click's usage errors too; mixed into click.Command or Group."""

    def main(self, args: Any = None, *more: Any, **extra: Any) -> Any:
        with output.json_errors(args):
            return super().main(args, *more, **extra)  # type: ignore[misc]

    def make_context(self, *args: Any, **extra: Any) -> click.Context:
        with output.usage_errors():
            context: click.Context = super().make_context(*args, **extra)  # type: ignore[misc]
            return context

    def invoke(self, ctx: click.Context) -> Any:
        with output.usage_errors():
            return super().invoke(ctx)  # type: ignore[misc]


class JsonErrorsCommand(JsonErrors, click.Command):
    """A command run on its own (LifeKeeper's and Serviceguard's) with JsonErrors."""


class _NodeCommand(click.Command):
    """A command that also takes --state-dir after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(
            ["--state-dir"], type=click.Path(path_type=Path, readable=False),
            expose_value=False, callback=_state_dir_after_command,
            help="Node state directory; may also go before the command."))


class _NodeGroup(click.Group):
    command_class: type[click.Command] | None = _NodeCommand
    group_class: type[click.Group] | type[type] | None = type  # subgroups: _NodeGroups


class _Commands(JsonErrors, _NodeGroup):
    """The command groups, the lab's loaded only when used: it imports the whole lab, which
    would slow every `tutela status` down."""

    group_class = _NodeGroup
    LAZY: dict[str, tuple[str, str]] = {"config": ("tutela.cli.config", "config_group"),
                                        "api": ("tutela.cli.api", "api_group"),
                                        "disk": ("tutela.cli.disk", "disk_group"),
                                        "doctor": ("tutela.cli.doctor", "doctor"),
                                        "events": ("tutela.cli.events", "events_command"),
                                        "gui": ("tutela.cli.gui", "gui_command"),
                                        "kit": ("tutela.cli.kit", "kit_group"),
                                        "lab": ("tutela.cli.lab", "lab_group"),
                                        "migrate": ("tutela.cli.migrate", "migrate_group"),
                                        "notify": ("tutela.cli.notify", "notify_group"),
                                        "support-bundle": ("tutela.cli.support",
                                                           "support_bundle_command"),
                                        "why": ("tutela.cli.why", "why_command")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            module, attribute = self.LAZY[name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", type=click.Path(path_type=Path, readable=False),
              envvar="TUTELA_STATE_DIR",
              help="Node state directory (default: $TUTELA_STATE_DIR or /var/lib/tutela); "
                   "may also go after the command.")
@click.version_option(package_name="tutela")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None) -> None:
    """tutela: keep services running by moving them to a healthy node.

    Start with 'tutela init --cluster NAME' and 'tutela start'; 'tutela status' shows
    every hierarchy and the state of each resource.
    """
    ctx.obj = state_dir_from_env(state_dir)


def reports_errors(function: F) -> F:
    """Turn daemon and configuration errors into one clear message and an exit code."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except NotRunning as error:
            output.print_error(str(error), fix="start it: tutela start")
            sys.exit(EXIT_NOT_RUNNING)
        except ConfigError as error:
            output.print_error(str(error), error.to_json())
            sys.exit(EXIT_INVALID)
        except Unanswered as error:
            if error.done:  # it took effect: the command did its job, with a warning
                if output.json_requested():
                    output.print_json({"done": True, "warning": str(error)})
                else:
                    click.echo(f"warning: {error}", err=True)
                sys.exit(0)
            output.print_error(str(error))
            sys.exit(EXIT_UNKNOWN if error.done is None else EXIT_FAILED)
        except DaemonError as error:
            if error.kind == "switchover":
                output.print_error(str(error))
                sys.exit(EXIT_NOT_MOVED)
            output.print_error(str(error), error.problems)
            sys.exit(EXIT_INVALID if error.kind in ("config", "request") else EXIT_FAILED)
        except (OSError, sqlite3.Error) as error:  # this command's own: `init` on a full disk
            sentence = explain(error, click.get_current_context().find_root().obj)
            if sentence is None:
                raise
            output.print_error(sentence)
            sys.exit(EXIT_FAILED)
    return wrapper  # type: ignore[return-value]


def state_dir() -> Path:
    """The node's state directory; a user who may not use it is told so, and nothing runs."""
    directory: Path = click.get_current_context().find_root().obj
    problem = unusable_state_dir(directory)
    if problem is not None:
        output.print_error(f"tutela needs root (or a --state-dir you can write): {problem}")
        sys.exit(EXIT_INVALID)
    return directory


def emit(result: Any, as_json: bool, text: str) -> None:
    if as_json:
        output.print_json(result)
    else:
        click.echo(text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


# --- node lifecycle ------------------------------------------------------------------------

address_option = click.option(
    "--address", "addresses", multiple=True, metavar="A.B.C.D/P",
    help="This node's address on a cluster network; repeat per network "
         "(default: every global IPv4 address of this host).")


@cli.command()
@click.option("--cluster", required=True, help="Name of the new cluster.")
@click.option("--node", default=socket.gethostname, show_default="this host's name",
              help="Name of this node.")
@address_option
@json_option
@reports_errors
def init(cluster: str, node: str, addresses: tuple[str, ...], as_json: bool) -> None:
    """Create this node's configuration database (LCD) for a new cluster.

    Runs before the daemon exists; refuses when the state directory is initialised.
    Other nodes join with a token from 'tutela node token'.
    """
    from tutela.apiauth import api_dir
    from tutela.apiauth.tls import ensure_init_certificate
    from tutela.daemon.watchdog import node_watchdog
    from tutela.lcd.store import AlreadyInitialised, Lcd  # the kits load only when needed
    from tutela.lcm.addresses import global_ipv4_interfaces

    node_addresses = addresses or tuple(global_ipv4_interfaces())
    try:
        Lcd.create(state_dir(), cluster, node, node_addresses, node_watchdog()).close()
    except AlreadyInitialised as error:
        output.print_error(str(error))
        sys.exit(EXIT_INVALID)
    ensure_init_certificate(api_dir(state_dir()), list(node_addresses))
    emit({"cluster": cluster, "node": node, "state_dir": str(state_dir())}, as_json,
         f"initialised node {node} of cluster {cluster} in {state_dir()}; next: tutela start")


@cli.command()
@click.option("--timeout", default=30.0, show_default=True,
              help="Seconds to wait until tutelad serves and has heard its peers.")
@click.option("--no-wait", is_flag=True,
              help="Return once tutelad serves, without waiting for its peers.")
@json_option
@reports_errors
def start(timeout: float, no_wait: bool, as_json: bool) -> None:
    """Start tutelad for this node and wait until it serves and has heard its peers.

    Returns once every other node and every witness is heard and each other node hears
    this one, so that a change made right after it has its majority; if that does not
    happen within --timeout, names what was not heard (exit 6; tutelad keeps running).
    Under systemd, with the tutelad unit installed for this state directory, starts the
    unit. Resources that were in service when it last stopped are re-adopted as they are.
    """
    directory = state_dir()
    deadline = time.monotonic() + timeout
    if is_running(directory):
        result: dict[str, Any] = {"started": "already", "pid": None}
        sentences = ["tutelad is already running"]
    elif _started_by_systemd(directory):
        result = {"started": "systemd", "pid": None}
        sentences = [_start_unit(directory, deadline)]
    else:
        pid = _start_directly(directory, deadline)
        result = {"started": "directly", "pid": pid}
        sentences = [f"tutelad started (pid {pid})"]
    result["peers_heard"] = None
    if not no_wait:
        if not as_json:  # the first line now: the wait for the peers can take a while
            click.echo(sentences.pop())
        result["peers_heard"] = peers = _wait_for_peers(directory, deadline, timeout)
        sentences += [f"heard every peer ({peers})"] if peers else []
    if as_json or sentences:
        emit(result, as_json, "\n".join(sentences))


SYSTEMD_BOOTED = Path("/run/systemd/system")
"""Present when systemd runs this host (sd_booted(3)'s test)."""
UNIT = "tutelad.service"
UNIT_ENVIRONMENT = Path("/etc/tutela/tutelad.env")
"""The unit's EnvironmentFile: TUTELA_STATE_DIR there, if set, is the unit's node."""
EXIT_PEERS_UNHEARD = ExitCode.PEERS_UNHEARD


def _started_by_systemd(directory: Path) -> bool:
    """systemd runs this host, the tutelad unit is installed (enabled or not) and its state
    directory is this one. A tutelad started beside the unit would keep the unit from
    starting; a node of another state directory (a lab node) is not the unit's."""
    if not SYSTEMD_BOOTED.is_dir() or shutil.which("systemctl") is None:
        return False
    load_state = subprocess.run(["systemctl", "show", "--property=LoadState", "--value", UNIT],
                                capture_output=True, text=True, check=False).stdout.strip()
    return load_state == "loaded" and _unit_state_dir().resolve() == directory.resolve()


def _unit_state_dir() -> Path:
    """TUTELA_STATE_DIR as the unit's environment file sets it, else the default."""
    value = None
    if UNIT_ENVIRONMENT.exists():
        for line in UNIT_ENVIRONMENT.read_text().splitlines():
            name, _, rest = line.strip().partition("=")
            if name == "TUTELA_STATE_DIR" and rest:
                value = rest.strip("'\"")
    return Path(value or DEFAULT_STATE_DIR)


def _start_unit(directory: Path, deadline: float) -> str:
    """`systemctl start tutelad`: it returns once tutelad said READY=1 (it serves)."""
    try:
        result = subprocess.run(["systemctl", "start", UNIT], capture_output=True, text=True,
                                timeout=max(deadline - time.monotonic(), 1.0), check=False)
    except subprocess.TimeoutExpired:
        output.print_error(f"systemctl start {UNIT} did not return in time; see "
                           "'systemctl status tutelad' and 'journalctl -u tutelad'")
        sys.exit(EXIT_FAILED)
    if result.returncode != 0 or not is_running(directory):
        output.print_error(f"systemctl start {UNIT} failed (exit status {result.returncode})"
                           f": {result.stderr.strip()}; see 'journalctl -u tutelad'")
        sys.exit(EXIT_FAILED)
    return f"tutelad started by systemd ({UNIT})"


def _start_directly(directory: Path, deadline: float) -> int:
    """tutelad in the background, in a session of its own; wait until it answers; its
    pid."""
    directory.mkdir(parents=True, exist_ok=True)
    daemon = Path(sys.executable).with_name("tutelad")
    with open(directory / "tutelad.out", "ab") as out:
        process = subprocess.Popen(
            [str(daemon), "--state-dir", str(directory)], stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    while time.monotonic() < deadline:
        if is_running(directory):
            return process.pid
        if process.poll() is not None:
            output.print_error(f"tutelad exited with status {process.returncode}: "
                               + _tail(directory / "tutelad.out", 5))
            sys.exit(EXIT_FAILED)
        time.sleep(0.05)  # polling the socket until the daemon answers or the deadline
    output.print_error("tutelad did not answer in time (--timeout); see 'tutela log'")
    sys.exit(EXIT_FAILED)


def _wait_for_peers(directory: Path, deadline: float, timeout: float) -> int:
    """Until every peer is heard both ways (`_unheard`): how many peers there are; else
    name them and exit 6."""
    while True:
        view = call(directory, "status")
        unheard = _unheard(view)
        if not unheard:
            return len(view["nodes"]) - 1 + len(view["witnesses"])
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)  # polling the daemon's view until its peers are heard
    output.print_error(
        f"tutelad serves, but within {timeout:g}s it has not heard:\n"
        + "".join(f"  {line}\n" for line in unheard)
        + f"{_quorum_sentence(view)} tutelad keeps trying ('tutela status' shows the paths). "
        "Check that tutelad runs there, the addresses, and that the firewalls let the "
        "cluster port (7365 by default) and the witness port (7366) through both ways")
    sys.exit(EXIT_PEERS_UNHEARD)


def _unheard(view: dict[str, Any]) -> list[str]:
    """What this node has not heard yet: each other node it does not hear or that does not
    hear it (a peer whose tutela does not say is taken at its word), each witness it does
    not hear; with the state of every path."""
    missing = []
    for peer in (n for n in view["nodes"] if not n["local"]):
        if peer["state"] != "ALIVE":
            missing.append(f"node {peer['name']}: {_paths_sentence(peer['paths'])}")
        elif peer.get("hears_us") is False:
            missing.append(f"node {peer['name']} does not hear this node yet; it is heard "
                           f"here: {_paths_sentence(peer['paths'])}")
    missing += [f"witness {w['address']}: {_paths_sentence(w['paths'])}"
                for w in view["witnesses"] if w["state"] != "ALIVE"]
    return missing


def _paths_sentence(paths: list[dict[str, Any]]) -> str:
    if not paths:
        return "no comm path to it"
    return "; ".join(f"path {p['name']} {p['state']}" + (
        "" if p["state"] == "ALIVE" else ", never heard" if p["last_heard_age"] is None
        else f", last heard {p['last_heard_age']:.0f}s ago") for p in paths)


def _quorum_sentence(view: dict[str, Any]) -> str:
    """Whether a configuration change can work now (it needs a majority of the nodes)."""
    if view["quorum"] == "none":
        return "Configuration changes need no majority here (settings.quorum: none)."
    nodes = view["nodes"]
    reachable = sum(n["state"] == "ALIVE" for n in nodes)
    needed = len(nodes) // 2 + 1
    verdict = "can" if reachable >= needed else "cannot"
    return (f"Configuration changes {verdict} be made from here: {reachable} of {len(nodes)} "
            f"nodes reachable, {needed} needed.")


@cli.command()
@click.option("--leave-resources", "-f", is_flag=True,
              help="Keep protected services running, unprotected (like lkstop -f).")
@click.option("--force", is_flag=True,
              help="With --leave-resources: stop even if the other nodes cannot be told "
                   "(no quorum); they may then start the hierarchies too.")
@click.option("--wait", default=600.0, show_default=True, help="Seconds to wait for the stop.")
@json_option
@reports_errors
def stop(leave_resources: bool, force: bool, wait: float, as_json: bool) -> None:
    """Stop tutelad; by default take every hierarchy out of service first.

    With --leave-resources (a maintenance stop) everything in service here stays so,
    unprotected, and the other nodes are told not to take the clustered hierarchies over
    until 'tutela start' here re-adopts them; refused if they cannot be told, unless
    --force.
    """
    if force and not leave_resources:
        raise click.UsageError("--force goes with --leave-resources")
    result = call(state_dir(), "stop", leave_resources=leave_resources, force=force)
    deadline = time.monotonic() + wait
    while is_running(state_dir()):
        if time.monotonic() > deadline:
            output.print_error(f"tutelad still runs after {wait:g}s; see 'tutela log'")
            sys.exit(EXIT_FAILED)
        time.sleep(0.05)  # polling until the daemon has gone
    if as_json:
        output.print_json({"stopped": True, "leave_resources": leave_resources,
                           "maintenance": result.get("maintenance") or [],
                           "untold": result.get("untold") or []})
        return
    click.echo("tutelad stopped" + (" (resources left in service)" if leave_resources else ""))
    if result.get("maintenance"):
        click.echo(f"in maintenance: {', '.join(result['maintenance'])} run here unprotected; "
                   "the other nodes leave them alone until 'tutela start' here")
    if result.get("untold"):
        untold = ", ".join(result["untold"])
        click.echo(click.style("warning:", fg="yellow", bold=True) + " the other nodes "
                   f"were not told (--force): {untold} run here unprotected, and a node that "
                   "is up, or comes up, may start them too", err=True)


@cli.command()
@click.option("--watch", is_flag=True, help="Redraw it in place until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
              metavar="S", help="Seconds between redraws with --watch.")
@json_option
@reports_errors
def status(watch: bool, interval: float, as_json: bool) -> None:
    """Show every hierarchy as a tree with the state of each resource."""
    if watch:
        if as_json:
            raise click.UsageError("--watch draws for a person; a script polls "
                                   "'tutela status --json'")
        from tutela.cli.watch import watch_status

        watch_status(state_dir(), interval)
        return
    try:
        result = call(state_dir(), "status")
    except NotRunning as error:
        raise NotRunning(error.kind, str(error) + maintenance_note(state_dir())) from None
    if as_json:
        output.print_json(result)
    else:
        output.print_status(result)


@cli.command()
@click.option("--lines", "-n", default=50, show_default=True, help="How many lines to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C ends).")
@json_option
def log(lines: int, follow: bool, as_json: bool) -> None:
    """Show the daemon's log: every state change and why it happened.

    With --json, {"path": ..., "lines": [...]} (not with --follow: 'tutela events --follow
    --json' gives the records one per line)."""
    if follow and as_json:
        raise click.UsageError("--follow prints lines as they come; a script reads "
                               "'tutela events --follow --json'")
    path = state_dir() / LOG_NAME
    if not path.exists():
        output.print_error(f"no log at {path} yet; has tutelad run on this node? (run by "
                           "systemd, it logs to the journal: journalctl -u tutelad)")
        sys.exit(EXIT_FAILED)
    if as_json:
        text = path.read_text(errors="replace").splitlines()
        output.print_json({"path": str(path), "lines": text[-lines:] if lines else []})
        return
    command = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    sys.exit(subprocess.call(command))


@cli.command()
@click.argument("address")
@click.option("--token", required=True, help="A token from 'tutela node token' on a cluster node.")
@click.option("--node", default=socket.gethostname, show_default="this host's name",
              help="Name of this node.")
@address_option
@click.option("--port", default=7365, show_default=True, help="The cluster's comm path port.")
@json_option
@reports_errors
def join(address: str, token: str, node: str, addresses: tuple[str, ...], port: int,
         as_json: bool) -> None:
    """Join the cluster that the node at ADDRESS belongs to.

    Creates this node's LCD from the cluster's configuration; then run 'tutela start'.
    A tcp comm path is made to every node on each network this node shares with it.
    """
    from tutela.daemon.watchdog import node_watchdog
    from tutela.lcd.store import AlreadyInitialised, Lcd
    from tutela.lcm.addresses import global_ipv4_interfaces
    from tutela.lcm.join import JoinRefused, request_join
    from tutela.model.config import ClusterConfig

    directory = state_dir()
    if (directory / "lcd.sqlite").exists():
        output.print_error(f"this node is initialised already ({directory}); a node joins "
                           "only once: remove its state directory first to join anew")
        sys.exit(EXIT_INVALID)
    try:
        grant = request_join(address, port, token, node,
                             list(addresses or global_ipv4_interfaces()),
                             node_watchdog().model_dump(mode="json"))
    except JoinRefused as error:
        output.print_error(f"join refused by {address}: {error}")
        sys.exit(EXIT_INVALID)
    except OSError as error:
        output.print_error(f"cannot reach {address} port {port}: {error.strerror or error}; "
                           "is tutelad running there, and is this its address?")
        sys.exit(EXIT_FAILED)
    config = ClusterConfig.model_validate(grant.config)
    try:
        Lcd.create_from(directory, node, grant.key, config, grant.generation,
                        f"joined cluster {grant.cluster}").close()
    except AlreadyInitialised as error:
        output.print_error(str(error))
        sys.exit(EXIT_INVALID)
    emit({"cluster": grant.cluster, "node": node, "generation": grant.generation}, as_json,
         f"joined cluster {grant.cluster} as {node} (generation {grant.generation}); "
         "next: tutela start")


@cli.group()
def node() -> None:
    """Cluster nodes: tokens for joining, removal, failover blocks."""


@node.command("token")
@click.option("--ttl", default=600.0, show_default=True, help="Seconds the token stays valid.")
@json_option
@reports_errors
def node_token(ttl: float, as_json: bool) -> None:
    """Make a one-time token for a node to join (valid for --ttl seconds, one use)."""
    result = call(state_dir(), "node.token", ttl=ttl)
    where = result["addresses"][0] if result["addresses"] else "THIS-NODE-ADDRESS"
    emit(result, as_json, f"{result['token']}\n\non the new node run:\n  tutela join "
         f"{where} --token {result['token']}\n(valid {ttl:g}s, once)")


@node.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True,
              help="Change the configuration without quorum (only if the others are gone).")
@json_option
@reports_errors
def node_remove(name: str, force: bool, as_json: bool) -> None:
    """Remove node NAME and its comm paths from the cluster."""
    result = call(state_dir(), "node.remove", node=name, force=force)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


@node.command("failover")
@click.argument("name")
@click.argument("mode", type=click.Choice(["block", "allow"]))
@json_option
@reports_errors
def node_failover(name: str, mode: str, as_json: bool) -> None:
    """Block or allow failover away from node NAME when it dies.

    Blocked (LifeKeeper's !nofailover!), the other nodes leave its hierarchies alone when
    it dies; confirm a takeover with 'tutela switchover ROOT --to NODE'. Failover after a
    resource failure on NAME is not affected (see the hierarchy's 'failover' setting)."""
    result = call(state_dir(), "node.failover", node=name, allow=mode == "allow")
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


@cli.group()
def witness() -> None:
    """Witnesses: voters without resources that break ties (run tutela-witness on them)."""


@witness.command("add")
@click.argument("address", metavar="HOST:PORT")
@click.option("--token", required=True, help="A token from 'tutela-witness token' there.")
@json_option
@reports_errors
def witness_add(address: str, token: str, as_json: bool) -> None:
    """Enrol this cluster at the witness at HOST:PORT and make it a voter."""
    result = call(state_dir(), "witness.add", timeout=LONG_ACTION_TIMEOUT, address=address,
                  token=token)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


@witness.command("remove")
@click.argument("address", metavar="HOST:PORT")
@json_option
@reports_errors
def witness_remove(address: str, as_json: bool) -> None:
    """Stop using the witness at HOST:PORT as a voter."""
    result = call(state_dir(), "witness.remove", address=address)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


@cli.group()
def cluster() -> None:
    """The cluster as a whole: its key."""


@cluster.command("rotate-key")
@json_option
@reports_errors
def cluster_rotate_key(as_json: bool) -> None:
    """Replace the cluster key on every node and witness, without downtime.

    Every node and witness must be ALIVE. In phases, each acknowledged by all before the
    next: stage (all accept the new key too), switch (all send with it), renew (connections
    made anew under it), drop (the old key is refused). A rotation cut short is resumed by
    running this again. A node away during the rotation must be joined again afterwards."""
    result = call(state_dir(), "cluster.rotate_key", timeout=LONG_ACTION_TIMEOUT)
    lines = [f"phase {p['phase']}: acknowledged by {', '.join(p['acknowledged'])}"
             for p in result["phases"]]
    emit(result, as_json, "\n".join([*lines, result["summary"]
                                      + (" (a rotation cut short, resumed)"
                                         if result["resumed"] else "")]))


@cli.group()
def path() -> None:
    """Comm paths between this node and another (heartbeats go over every path)."""


@path.command("add")
@click.argument("peer")
@click.argument("local")
@click.argument("remote")
@click.option("--kind", type=click.Choice(["tcp", "tty"]), default="tcp", show_default=True)
@click.option("--priority", type=int, default=1, show_default=True,
              help="1 is the highest; control messages take the best live path.")
@json_option
@reports_errors
def path_add(peer: str, local: str, remote: str, kind: str, priority: int,
             as_json: bool) -> None:
    """Add a path to PEER: LOCAL and REMOTE are addresses (tcp) or serial devices (tty)."""
    result = call(state_dir(), "path.add", peer=peer, local=local, remote=remote, kind=kind,
                  priority=priority)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


@path.command("remove")
@click.argument("name")
@json_option
@reports_errors
def path_remove(name: str, as_json: bool) -> None:
    """Remove the comm path NAME (as 'tutela status' shows it)."""
    result = call(state_dir(), "path.remove", name=name)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


# --- resources --------------------------------------------------------------------------

@cli.group()
def resource() -> None:
    """Create and delete resources (see 'tutela kit list' for the kinds)."""


@resource.command("create", cls=type("_ResourceCreate", (KitHelp, _NodeCommand), {}))
@click.argument("kit")
@click.argument("tag")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="A kit parameter; repeat for each ('tutela kit show KIT' lists them).")
@click.option("--depends-on", multiple=True, metavar="TAG", help="A child this resource needs.")
@click.option("--check-interval", type=float, help="Seconds between quick checks (default 5).")
@click.option("--recovery-attempts", type=int, help="Local recoveries allowed (default 3)...")
@click.option("--recovery-window", type=float, help="...within this many seconds (default 300).")
@click.option("--timeout", "timeouts", multiple=True, metavar="ACTION=SECONDS",
              help="Override an action's timeout (restore, remove, quick_check, recover).")
@click.option("--unprotected", is_flag=True, help="No quick checks or local recovery (ISU).")
@click.option("--restore", is_flag=True, help="Bring it in service right after creating it.")
@json_option
@reports_errors
def resource_create(kit: str, tag: str, params: tuple[str, ...], depends_on: tuple[str, ...],
                    check_interval: float | None, recovery_attempts: int | None,
                    recovery_window: float | None, timeouts: tuple[str, ...],
                    unprotected: bool, restore: bool, as_json: bool) -> None:
    """Create resource TAG of kind KIT, out of service unless --restore is given.

    Example: tutela resource create ip vip --param address=198.51.100.100/24
    """
    recovery = {k: v for k, v in (("attempts", recovery_attempts),
                                  ("window", recovery_window)) if v is not None}
    result = call(
        state_dir(), "resource.create", timeout=LONG_ACTION_TIMEOUT, kit=kit, tag=tag,
        params=parse_assignments(params, "--param"), depends_on=list(depends_on),
        check_interval=check_interval, recovery=recovery or None,
        protected=False if unprotected else None, restore=restore,
        timeouts={k: float(v) for k, v in parse_assignments(timeouts, "--timeout").items()}
        or None)
    emit(result, as_json, f"created {tag} (generation {result['generation']})"
         + ("; in service" if restore else "; out of service, bring it up with: "
            f"tutela restore {tag}"))


@resource.command("delete")
@click.argument("tag")
@json_option
@reports_errors
def resource_delete(tag: str, as_json: bool) -> None:
    """Delete resource TAG (it must be out of service and nothing may depend on it)."""
    result = call(state_dir(), "resource.delete", tag=tag)
    emit(result, as_json, f"deleted {tag} (generation {result['generation']})")


@cli.group()
def dependency() -> None:
    """Make one resource depend on another (restored after it, removed before it)."""


@dependency.command("add")
@click.argument("parent")
@click.argument("child")
@json_option
@reports_errors
def dependency_add(parent: str, child: str, as_json: bool) -> None:
    """PARENT needs CHILD: CHILD is restored first and removed last."""
    result = call(state_dir(), "dependency.add", parent=parent, child=child)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


@dependency.command("remove")
@click.argument("parent")
@click.argument("child")
@json_option
@reports_errors
def dependency_remove(parent: str, child: str, as_json: bool) -> None:
    """PARENT no longer needs CHILD."""
    result = call(state_dir(), "dependency.remove", parent=parent, child=child)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


on_option = click.option("--on", "on", metavar="NODE",
                         help="Run it on NODE of the cluster instead of this node.")


def timeout_option(function: F) -> F:
    return click.option(
        "--timeout", type=click.FloatRange(min=1), default=ACTION_TIMEOUT, show_default=True,
        metavar="S", help="Seconds to wait for the outcome before reporting what is known."
    )(function)


@cli.command()
@click.argument("tag")
@on_option
@timeout_option
@json_option
@reports_errors
def restore(tag: str, on: str | None, timeout: float, as_json: bool) -> None:
    """Bring TAG in service here, with everything it depends on (children first).

    With --on NODE, on NODE; a hierarchy that may run on several nodes and runs nowhere is
    started on NODE itself. On a terminal, a bar shows how many of the resources are in
    service while it runs."""
    directory = state_dir()
    request = functools.partial(call, directory, "restore", timeout=timeout, tag=tag, on=on)
    result = progress.while_running(directory, f"restoring {tag}", request, progress.restored(
        tag), "in service") if progress.shown(as_json) else request()
    done = " ".join(result["restored"]) or "already"
    emit(result, as_json, f"in service on {result['node']}: {done}")


@cli.command()
@click.argument("tag")
@on_option
@timeout_option
@json_option
@reports_errors
def remove(tag: str, on: str | None, timeout: float, as_json: bool) -> None:
    """Take TAG out of service here, with everything that depends on it (parents first)."""
    result = call(state_dir(), "remove", timeout=timeout, tag=tag, on=on)
    done = " ".join(result["removed"]) or "already"
    emit(result, as_json, f"out of service on {result['node']}: {done}")


@cli.command()
@click.argument("tag")
@click.option("--to", "to", required=True, metavar="NODE", help="The node to move it to.")
@timeout_option
@json_option
@reports_errors
def switchover(tag: str, to: str, timeout: float, as_json: bool) -> None:
    """Move TAG's hierarchy to NODE: out of service where it runs, lease released, taken
    over at once by NODE (no lease wait).

    If NODE fails or dies on the way, it says where the hierarchy runs now and exits 4."""
    result = call(state_dir(), "switchover", timeout=timeout, tag=tag, to=to)
    emit(result, as_json, f"{' '.join(result['switched']) or tag} now runs on {result['node']}")


@cli.group()
def hierarchy() -> None:
    """Where a hierarchy may run: its equivalencies (node and priority)."""


@hierarchy.command("extend")
@click.argument("tag")
@click.option("--to", "to", required=True, metavar="NODE", help="The node that may run it.")
@click.option("--priority", type=int, help="1 is the highest; default: after the others.")
@json_option
@reports_errors
def hierarchy_extend(tag: str, to: str, priority: int | None, as_json: bool) -> None:
    """Let NODE run TAG's hierarchy, after checking each resource can run there.

    The first extension also puts this node in, at priority 1. From then on the
    hierarchy runs under an ownership lease and fails over between its nodes.
    """
    result = call(state_dir(), "hierarchy.extend", timeout=LONG_ACTION_TIMEOUT, tag=tag,
                  to=to, priority=priority)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


@hierarchy.command("unextend")
@click.argument("tag")
@click.argument("node")
@json_option
@reports_errors
def hierarchy_unextend(tag: str, node: str, as_json: bool) -> None:
    """NODE may no longer run TAG's hierarchy (it must not be running it there)."""
    result = call(state_dir(), "hierarchy.unextend", tag=tag, node=node)
    emit(result, as_json, f"{result['summary']} (generation {result['generation']})")


# --- declarative configuration ----------------------------------------------------------

@cli.command()
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to FILE.")
@json_option
@reports_errors
def export(output: Path | None, as_json: bool) -> None:
    """Write the whole configuration as one YAML document (what 'apply' reads).

    With --json, {"generation": N, "yaml": "..."} (and "path" with -o)."""
    result = call(state_dir(), "export")
    if as_json and output is None:
        emit(result, as_json, "")
        return
    if output is None:
        click.echo(result["yaml"], nl=False)
        return
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(result["yaml"])
    os.replace(temporary, output)
    emit({**result, "path": str(output)}, as_json,
         f"wrote generation {result['generation']} to {output}")


@cli.command()
@click.option("--file", "-f", "path", required=True, type=click.File("r"),
              help="The YAML document ('-' for standard input).")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@timeout_option
@json_option
@reports_errors
def apply(path: Any, dry_run: bool, timeout: float, as_json: bool) -> None:
    """Make the configuration what FILE says, in one change (all or nothing).

    On a terminal, a bar shows how many nodes hold the new generation while it runs."""
    directory = state_dir()
    request = functools.partial(call, directory, "apply", timeout=timeout, yaml=path.read(),
                                source=path.name, dry_run=dry_run)
    result = progress.while_running(
        directory, f"applying {path.name}", request,
        progress.applied(stored_generation(directory)), "nodes at the new generation"
    ) if progress.shown(as_json) and not dry_run else request()
    if as_json:
        output.print_json(result)
        return
    for line in result["changes"]:
        click.echo(line)
    if not result["changes"]:
        click.echo(f"no changes (generation {result['generation']})")
    elif dry_run:
        for warning in result.get("warnings", []):
            click.echo(f"warning: this node could not run it yet: {warning}")
        click.echo(f"dry run: {len(result['changes'])} change(s) would be applied; "
                   "nothing was changed")
    else:
        click.echo(f"applied {len(result['changes'])} change(s): "
                   f"generation {result['generation']}")


def parse_assignments(items: tuple[str, ...], option: str) -> dict[str, Any]:
    """NAME=VALUE pairs; a value in [...] or {...} is read as YAML (lists, maps)."""
    parsed: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError([Problem(option, f"{item!r} is not NAME=VALUE",
                                       f"write it as {option} name=value")])
        if value.startswith(("[", "{")):
            import yaml  # only for list or map values: it costs every command's start-up

            parsed[name] = yaml.safe_load(value)
        else:
            parsed[name] = value
    return parsed


def _tail(path: Path, lines: int) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def main() -> None:
    cli(prog_name="tutela")
