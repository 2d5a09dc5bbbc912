"""The `tutela-witness` command: run the witness, make enrolment tokens, list, remove clusters.

Every verb but `run` talks to the running witness over the Unix socket in its state directory.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click

from tutela import logsetup
from tutela.access import unusable_state_dir
from tutela.logsetup import LogOutput
from tutela.notify import Notifier
from tutela.witness import control

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_STATE_DIR: Final = "/var/lib/tutela-witness"
STATE_ENV: Final = "TUTELA_WITNESS_STATE_DIR"
DEFAULT_PORT: Final = 7366
EXIT_FAILED, EXIT_INVALID, EXIT_NOT_RUNNING = 1, 2, 3


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def reports_errors(function: F) -> F:
    """Turn the witness's refusals into one clear line and an exit code."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except control.NotRunning as error:
            fail(str(error), EXIT_NOT_RUNNING)
        except control.ControlError as error:
            fail(str(error), EXIT_INVALID if error.kind in ("request", "refused")
                 else EXIT_FAILED)
        except OSError as error:
            fail(f"cannot talk to the witness: {error}", EXIT_FAILED)
    return wrapper  # type: ignore[return-value]


def _state_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """--state-dir after the command, else the one before it (or ${STATE_ENV}, or the
    default); a user who may not use it is told so, and nothing runs."""
    directory: Path = value if value is not None else ctx.find_root().params["state_dir"]
    problem = unusable_state_dir(directory)
    if problem is not None:
        fail(f"tutela-witness needs root (or a --state-dir you can write): {problem}")
    return directory


STATE_DIR_HELP = (f"The witness's state directory (clusters served, control socket, log); "
                  f"${STATE_ENV} if set.")
state_dir_option = click.option(
    "--state-dir", type=click.Path(path_type=Path, readable=False), callback=_state_dir,
    help=f"{STATE_DIR_HELP} It may also go before the command.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", type=click.Path(path_type=Path, readable=False), envvar=STATE_ENV,
              default=DEFAULT_STATE_DIR, show_default=True,
              help=f"{STATE_DIR_HELP} It may also go after the command.")
@click.version_option(package_name="tutela")
def main(state_dir: Path) -> None:
    """tutela-witness: a third vote for tutela clusters; it runs no resources.

    Start it with 'tutela-witness run', make a token with 'tutela-witness token' and enrol
    each cluster with it from a cluster node; 'tutela-witness list' shows what it serves.
    """


@main.command()
@click.option("--listen", "listen", multiple=True, metavar="HOST[:PORT]",
              default=[f"0.0.0.0:{DEFAULT_PORT}"], show_default=True,
              help=f"Address to serve nodes on (port {DEFAULT_PORT} if left out; 0 picks a "
                   "free one); repeat for several.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
@state_dir_option
def run(listen: tuple[str, ...], log_level: str, state_dir: Path) -> None:
    """Run the witness in the foreground until SIGTERM.

    Logs to the journal when systemd runs it, else to witness.log in the state directory
    (and to a terminal); tells systemd when it serves (Type=notify).
    """
    addresses = [parse_listen(value) for value in listen]
    from tutela.witness import server  # the server's imports are for `run` only
    from tutela.witness.registry import RegistryError

    output = configure_logging(state_dir, log_level)
    notifier = Notifier.from_environment()
    try:
        asyncio.run(server.run(state_dir, addresses, notifier))
    except (server.CannotStart, RegistryError, control.AlreadyRunning) as error:
        logging.getLogger("tutela.witness").error("%s", error)
        output.stop()
        if not output.to_stderr:
            click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_INVALID)
    finally:
        output.stop()  # writes what is still queued
        notifier.close()


def parse_listen(value: str) -> tuple[str, int]:
    """HOST, HOST:PORT or [IPV6]:PORT; a bad value is a usage error naming the fix."""
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST[:PORT], e.g. 0.0.0.0:{DEFAULT_PORT}",
                                 param_hint="--listen")
    return host, int(port)


def configure_logging(state_dir: Path, level: str) -> LogOutput:
    """To the journal under systemd, else to witness.log in the state directory (logsetup)."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return logsetup.configure(state_dir / control.LOG_NAME, level)
    except OSError as error:
        fail(f"cannot use the state directory {state_dir}: {error.strerror}; run as root or "
             f"pass --state-dir (or ${STATE_ENV})")


@main.command()
@click.option("--ttl", default=600.0, show_default=True, type=click.FloatRange(min=0,
              min_open=True), help="Seconds the token stays valid.")
@click.option("--cluster", metavar="NAME", help="Make the token for this cluster only; needed "
              "to replace the key of a cluster the witness serves already.")
@json_option
@state_dir_option
@reports_errors
def token(ttl: float, cluster: str | None, as_json: bool, state_dir: Path) -> None:
    """Print a one-time enrolment token (one use, valid --ttl seconds, until a restart)."""
    result = control.call(state_dir, "token", ttl=ttl, cluster=cluster)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(result["token"])
    scope = f"cluster {cluster}" if cluster else "one new cluster"
    click.echo(f"(enrols {scope}, once, within {ttl:g}s)", err=True)


@main.command("list")
@json_option
@state_dir_option
@reports_errors
def list_(as_json: bool, state_dir: Path) -> None:
    """Show the clusters served: their nodes, the current grants, dropped frames."""
    result = control.call(state_dir, "list")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    witness = result["witness"]
    click.echo(f"witness on {', '.join(witness['listen'])}, up {witness['uptime']:.0f}s, "
               f"{witness['connections']} connections, {witness['tokens']} tokens outstanding"
               + _drops(witness["dropped_frames"]))
    for name, cluster in result["clusters"].items():
        click.echo(_cluster_text(name, cluster))
    if not result["clusters"]:
        click.echo("no cluster enrolled yet: make a token with 'tutela-witness token'")


def _cluster_text(name: str, cluster: dict[str, Any]) -> str:
    quiet = f", quiet {cluster['quiet']:.2f}s more" if cluster["quiet"] else ""
    lines = [f"cluster {name}: voter {cluster['voter']}, lease "
             f"{cluster['lease']['duration']:g}s{quiet}, enrolled {cluster['enrolled_at']} "
             f"by {cluster['enrolled_by']}" + _drops(cluster["dropped_frames"])]
    for node, seen in cluster["nodes"].items():
        lines.append(f"  node {node} ({seen['address']}): heard {seen['last_heard']:.1f}s "
                     f"ago, {seen['connections']} connections")
    for lease, grant in cluster["grants"].items():
        lines.append(f"  grant {lease} -> {grant['holder']} ({grant['remaining']:.2f}s left)")
    return "\n".join(lines)


def _drops(counts: dict[str, int]) -> str:
    dropped = ", ".join(f"{reason} {n}" for reason, n in counts.items() if n)
    return f"; dropped frames: {dropped}" if dropped else ""


@main.command()
@click.argument("cluster")
@state_dir_option
@reports_errors
def remove(cluster: str, state_dir: Path) -> None:
    """Stop serving CLUSTER: forget its key and disconnect its nodes."""
    control.call(state_dir, "remove", cluster=cluster)
    click.echo(f"removed cluster {cluster}; its nodes lose this vote until it is enrolled "
               "again")


if __name__ == "__main__":
    main()
