"""Parameter tables of a kit, for `tutela kit show` and `tutela resource create KIT --help`.

Built-in kits describe their parameters in their pydantic models; an OCF agent's come from
its meta-data (type, default, required, short description).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tutela.kits.base import Kit

KIT_HELP = "tutela.kit_help"
"""ctx.meta key: the kit named before --help."""


def parameter_rows(kit: Kit[Any]) -> list[dict[str, Any]]:
    """name, type, required, default (None when none) and description of each parameter."""
    from tutela.kits.ocf import CHECK_LEVEL, OcfKit

    if isinstance(kit, OcfKit):
        rows = [{"name": p.name, "type": p.type, "required": p.required,
                 "default": None if p.required or p.default in (None, "") else p.default,
                 "description": p.shortdesc or p.longdesc} for p in kit.meta.parameters]
        levels = ", ".join(map(str, kit.meta.check_levels() or [0]))
        rows.append({"name": CHECK_LEVEL, "type": "integer", "required": False,
                     "default": None, "description": "tutela: the depth of the monitor "
                     f"(OCF_CHECK_LEVEL); the agent advertises: {levels}"})
        return rows
    rows = []
    for name, field in kit.Params.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        rows.append({"name": name, "type": _type_name(field.annotation),
                     "required": field.is_required(),
                     "default": None if default is None else repr(default),
                     "description": field.description or ""})
    return rows


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def write_kit_help(name: str, formatter: click.HelpFormatter) -> None:
    """The parameters of kit `name` as a help section (or why there are none)."""
    from tutela.kits.registry import get_kit
    from tutela.model.errors import ConfigError

    try:
        kit = get_kit(name)
    except ConfigError as error:
        with formatter.section(f"Kit {name}"):
            formatter.write_text(str(error))
        return
    rows = parameter_rows(kit)
    with formatter.section(f"Parameters of {kit.name} (--param NAME=VALUE)"):
        formatter.write_text(kit.description)
        formatter.write_dl([
            (row["name"], f"[{row['type']}; "
             + ("required" if row["required"] else f"default: {row['default'] or 'none'}")
             + f"] {row['description']}") for row in rows])
    timeouts = ", ".join(f"{action} {seconds:g}s"
                         for action, seconds in kit.default_timeouts.items())
    with formatter.section("Default timeouts (--timeout ACTION=SECONDS)"):
        formatter.write_text(timeouts)


class KitHelp(click.Command):
    """`--help` after a KIT argument also lists that kit's parameters."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(arg in ("--help", "-h") for arg in args) and args and \
                not args[0].startswith("-"):
            ctx.meta[KIT_HELP] = args[0]
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if KIT_HELP in ctx.meta:
            write_kit_help(ctx.meta[KIT_HELP], formatter)
