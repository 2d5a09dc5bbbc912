"""`tutela api`: the HTTPS API's tokens, and the API process itself (docs/api.md)."""

from __future__ import annotations

import datetime
import functools
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from tutela.cli import output
from tutela.cli.client import QUESTION_TIMEOUT, DaemonError, call
from tutela.cli.main import EXIT_INVALID, json_option, reports_errors, state_dir
from tutela.model.config import API_PORT
from tutela.model.errors import ConfigError, Problem

if TYPE_CHECKING:
    from tutela.apiauth.auth import TokenRecord

DURATION = re.compile(r"^(\d+)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> float:
    """Seconds of 90s, 10m, 12h, 30d; ConfigError naming `option` otherwise."""
    found = DURATION.match(text.strip())
    if found is None or int(found[1]) == 0:
        raise ConfigError([Problem(option, f"{text!r} is not a duration",
                                   f"write it as a number and a unit, e.g. {option} 30d "
                                   "(s, m, h or d)")])
    return int(found[1]) * SECONDS[found[2]]


@click.group("api")
def api_group() -> None:
    """The HTTPS API and GUI of this node: its tokens, its process (docs/api.md)."""


@api_group.group("token")
def token_group() -> None:
    """API tokens for scripts: a role, an optional hierarchy limit, an expiry."""


@token_group.command("create")
@click.option("--role", required=True, type=click.Choice(["admin", "operator", "guest"]),
              help="What the token may do (docs/api.md, 'Roles').")
@click.option("--expires", default="30d", show_default=True, metavar="DURATION",
              help="How long it is valid: 90s, 10m, 12h, 30d.")
@click.option("--name", default="script", show_default=True,
              help="Whose it is or what for: the user the event journal records.")
@click.option("--hierarchy", "hierarchies", multiple=True, metavar="ROOT",
              help="Limit the role to this hierarchy; repeat for more (default: all).")
@json_option
@reports_errors
def token_create(role: str, expires: str, name: str, hierarchies: tuple[str, ...],
                 as_json: bool) -> None:
    """Create a token valid on every node; it is shown once, only its hash is kept (in the
    cluster configuration, changed as 'tutela config set' changes it)."""
    from tutela.apiauth.auth import new_token

    lifetime = parse_duration(expires, "--expires")
    token, record = new_token(name, cast(Any, role), hierarchies, lifetime, time.time())
    call(state_dir(), "config.set", timeout=QUESTION_TIMEOUT, key=f"api_tokens[{record.id}]",
         value={**asdict(record), "hierarchies": list(hierarchies)}, dry_run=False)
    if as_json:
        output.print_json({"token": token, **record.public()})
    else:
        click.echo(f"{token}\n(role {role}, valid until {_when(record.expires)}, on every "
                   "node; send it as 'Authorization: Bearer TOKEN'; it is not shown again)")


@token_group.command("list")
@json_option
@reports_errors
def token_list(as_json: bool) -> None:
    """The cluster's tokens, and this node's from before they were cluster-wide (never
    their secrets)."""
    from tutela.apiauth.token_changes import stored_tokens

    records = [r.public() for r in stored_tokens(state_dir())[1] + _local_tokens()]
    if as_json:
        output.print_json(records)
        return
    for r in records:
        limit = ",".join(r["hierarchies"]) or "all"
        expired = " (expired)" if r["expires"] <= time.time() else ""
        click.echo(f"{r['id']}  {r['name']}  {r['role']}  hierarchies={limit}  "
                   f"until {_when(r['expires'])}{expired}")
    if not records:
        click.echo("no API tokens", err=True)


@token_group.command("revoke")
@click.argument("token_id", metavar="ID")
@json_option
@reports_errors
def token_revoke(token_id: str, as_json: bool) -> None:
    """Revoke token ID (from 'tutela api token list'); it stops working at once."""
    from tutela.apiauth import api_dir
    from tutela.apiauth.auth import revoke_token
    from tutela.apiauth.token_changes import TokenChangeFailed, revoke_cluster_token, stored_tokens

    state = state_dir()
    try:
        revoked = revoke_cluster_token(token_id, functools.partial(stored_tokens, state),
                                       functools.partial(write_cluster_tokens, state))
    except TokenChangeFailed as error:
        output.print_error(str(error), fix="try again once the configuration changes less")
        sys.exit(EXIT_INVALID)
    if not revoked and not revoke_token(api_dir(state), token_id):
        output.print_error(f"ID {token_id!r}: no such token", fix="see 'tutela api token list'")
        sys.exit(EXIT_INVALID)
    if as_json:
        output.print_json({"revoked": token_id})
    else:
        click.echo(f"revoked {token_id}")


def write_cluster_tokens(state: Path, base: tuple[int, int], tokens: list[dict[str, Any]]
                         ) -> None:
    """Make the cluster's tokens `tokens` if its configuration is still at version `base`
    (tutelad's compare-and-set); Conflict if another change came first."""
    from tutela.apiauth.token_changes import Conflict

    try:
        call(state, "config.set", timeout=QUESTION_TIMEOUT, key="api_tokens",
             value=tokens, dry_run=False, base_version=list(base))
    except DaemonError as error:
        if any(p.get("field") == "base_version" for p in error.problems):
            raise Conflict(str(error)) from None
        raise


def _local_tokens() -> list[TokenRecord]:
    """This node's token file from before tokens were kept in the configuration."""
    from tutela.apiauth import api_dir
    from tutela.apiauth.auth import load_tokens

    return load_tokens(api_dir(state_dir()))


@api_group.command("serve")
@click.option("--bind", default=f"127.0.0.1:{API_PORT}", show_default=True,
              metavar="ADDRESS[:PORT]", help="Where to listen.")
@json_option
def api_serve(bind: str, as_json: bool) -> None:
    """Serve the API in the foreground (tutelad starts it by itself where the configuration
    enables it: settings.api.enabled or nodes[].api_address). With --json, an error (a
    bad --bind) is a JSON object (docs/cli.md, errors as JSON).

    This process becomes the API process (`python -m tutela.api`, as tutelad starts it):
    the CLI imports nothing of the web stack, which imports the CLI's readers."""
    from tutela.model.config import metrics_endpoint

    try:
        address, port = metrics_endpoint(bind, API_PORT)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--bind") from None
    os.execv(sys.executable, [sys.executable, "-m", "tutela.api", "--state-dir",
                              str(state_dir()), "--bind", f"{address}:{port}"])


def _when(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds")
