"""`tutela config get` and `tutela config set`: one setting by its key, without a YAML
round trip (docs/configuration.md, "One setting at a time").

`set` sends the key and the value to tutelad, which changes the configuration in force
there and applies it as `tutela apply` does: one change, the same validation and dry run.
`get` reads the exported document: what `tutela export` shows, with the defaults.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import yaml

from tutela.cli import output
from tutela.cli.client import QUESTION_TIMEOUT, call
from tutela.cli.main import EXIT_INVALID, _NodeGroup, json_option, reports_errors, state_dir
from tutela.lcd.document import from_yaml
from tutela.lcd.keypath import get_value, parse_value
from tutela.model.errors import ConfigError

KEY_HELP = """KEY is a dotted path into the configuration document: settings.lease_duration,
settings.failover_damping.hold, nodes.node2.failover, hierarchies.web.switchback,
resources.data.params.mountpoint. A list entry is named by its name, tag, root or node (as
'tutela apply' names it), comm paths and witnesses by their index from 0; brackets work
too, and a name with a dot needs them: nodes[db1.example.com].failover."""


@click.group("config", cls=_NodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
def config_group() -> None:
    """Read or change one setting of the configuration by its key.

    \b
    tutela config get settings.lease_duration
    tutela config set settings.lease_duration 2.5 --dry-run
    tutela config set hierarchies.web.switchback automatic
    """


@config_group.command("get", help=f"""Print the value at KEY as YAML, defaults included.

Without KEY, the whole settings section; 'tutela export' prints the whole document. The
output is what 'tutela config set KEY' takes back.

{KEY_HELP}""")
@click.argument("key", required=False)
@json_option
@reports_errors
def config_get(key: str | None, as_json: bool) -> None:
    try:
        value = get_value(_in_force(), key or "settings")
    except ConfigError as error:  # a question, not a change: no "nothing was changed"
        for problem in error.problems:
            output.print_error(f"{problem}")
        sys.exit(EXIT_INVALID)
    if as_json:
        output.print_json(value)
    else:
        click.echo(_as_yaml(value))


@config_group.command("set", context_settings={"ignore_unknown_options": True},
                      help=f"""Set the value at KEY to VALUE, in one configuration change.

VALUE is read as YAML: auto, 1.61, true, null, [a, b], {{hold: 0}}. The change is checked
as 'tutela apply' checks a document; a refused one changes nothing. The fields that only a
node writes (nodes.NAME.watchdog, nodes.NAME.maintenance) are refused.

{KEY_HELP}""")
@click.argument("key")
@click.argument("value")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--timeout", type=click.FloatRange(min=1), default=QUESTION_TIMEOUT,
              show_default=True, metavar="S",
              help="Seconds to wait for the outcome before reporting what is known.")
@json_option
@reports_errors
def config_set(key: str, value: str, dry_run: bool, timeout: float, as_json: bool) -> None:
    result = call(state_dir(), "config.set", timeout=timeout, key=key,
                  value=parse_value(value), dry_run=dry_run)
    if as_json:
        output.print_json(result)
        return
    for line in result["changes"]:
        click.echo(line)
    generation = result["generation"]
    if not result["changes"]:
        click.echo(f"no change: {key} is {value} already (generation {generation})")
    elif dry_run:
        for warning in result["warnings"]:
            click.echo(f"warning: this node could not run it yet: {warning}")
        click.echo(f"dry run: nothing was changed (generation {generation})")
    else:
        click.echo(f"set {key}: generation {generation}")


def _in_force() -> dict[str, Any]:
    """The configuration in force on this node, as a JSON document with its defaults."""
    exported = call(state_dir(), "export")
    document: dict[str, Any] = from_yaml(exported["yaml"], "tutela export").model_dump(
        mode="json")
    return document


def _as_yaml(value: Any) -> str:
    """`value` as YAML: a scalar on its own (without the end-of-document marker)."""
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False)
    return text.removesuffix("...\n").rstrip("\n")
