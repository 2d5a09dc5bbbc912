"""Write the man page of every console script of [project.scripts] (tutela, tutelad,
tutela-witness, the LifeKeeper and Serviceguard commands, tutela-fence-port) from its CLI
definition (packaging/programs.py).

    python packaging/manpages.py OUTDIR

The click commands are walked command by command, the argparse parsers (tutelad,
tutela-fence-port) option by option, so a page says what the installed commands accept. One
page per program, section 8 (they administer the system); every subcommand is a subsection. The date
is $SOURCE_DATE_EPOCH's (reproducible builds), else today's.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import click
from programs import programs

SECTION = "8"


@dataclass
class Extras:
    """What a page says beyond the CLI definition: (title, roff body) sections."""

    sections: list[tuple[str, str]] = field(default_factory=list)


STATE = "The node's state directory: its configuration database (lcd.sqlite), control " \
        "socket, resource state and, when not run by systemd, tutelad.log."
EXTRAS = {
    "tutela": Extras([
        ("ENVIRONMENT", ".TP\n.B TUTELA_STATE_DIR\n" + STATE + " Default "
         "/var/lib/tutela; --state-dir before or after the command overrides it.\n"),
        ("FILES", ".TP\n.I /var/lib/tutela\n" + STATE + "\n"
         ".TP\n.I /etc/tutela/tutelad.env\nEnvironment of tutelad.service.\n"),
        ("SEE ALSO", r"\fBtutelad\fR(8), \fBtutela-witness\fR(8), \fBsystemctl\fR(1), "
         r"\fBjournalctl\fR(1); /usr/share/doc/tutela/README.md" + "\n"),
    ]),
    "tutelad": Extras([
        ("SIGNALS", ".TP\n.B SIGTERM, SIGINT\nStop in order: every hierarchy is taken out "
         "of service first (tutela stop --leave-resources keeps them running instead).\n"
         ".TP\n.B SIGHUP\nReopen the log file (after logrotate moved it).\n"),
        ("ENVIRONMENT", ".TP\n.B TUTELA_STATE_DIR\n" + STATE + " Default /var/lib/tutela.\n"
         ".TP\n.B TUTELA_WATCHDOG_DEVICE\nThe watchdog that fences this node (default "
         "/dev/watchdog).\n"
         ".TP\n.B TUTELA_REBOOT_COMMAND\nRun instead of an immediate reboot by the quorum-"
         "loss action fastboot.\n"
         ".TP\n.B NOTIFY_SOCKET\nSet by systemd (Type=notify): tutelad sends READY=1 once it "
         "serves its control socket and has re-adopted its resources, and a STATUS= line "
         "with the cluster state.\n"
         ".TP\n.B JOURNAL_STREAM\nSet by systemd: when it names tutelad's stderr, tutelad "
         "logs there, each line with its syslog priority, and not to tutelad.log.\n"),
        ("FILES", ".TP\n.I /lib/systemd/system/tutelad.service\nThe unit "
         "(systemctl enable --now tutelad).\n"
         ".TP\n.I /etc/tutela/tutelad.env\nIts environment (the variables above).\n"
         ".TP\n.I /var/lib/tutela/tutelad.log\nThe log when not run by systemd "
         "(journalctl -u tutelad otherwise).\n"),
        ("SEE ALSO", r"\fBtutela\fR(8), \fBtutela-witness\fR(8), \fBsystemd.service\fR(5)"
         "\n"),
    ]),
    "tutela-witness": Extras([
        ("ENVIRONMENT", ".TP\n.B TUTELA_WITNESS_STATE_DIR\nThe witness's state directory "
         "(default /var/lib/tutela-witness).\n"),
        ("FILES", ".TP\n.I /lib/systemd/system/tutela-witness.service\nThe unit "
         "(systemctl enable --now tutela-witness).\n"
         ".TP\n.I /etc/tutela/witness.env\nIts environment: LISTEN_OPTIONS.\n"),
        ("SEE ALSO", r"\fBtutela\fR(8), \fBtutelad\fR(8)" + "\n"),
    ]),
    "tutela-fence-port": Extras([
        ("SEE ALSO", r"\fBtutela\fR(8); /usr/share/doc/tutela/docs/leases.md (the fast "
         "profile's fence_command)\n"),
    ]),
}
COMPAT_EXTRAS = Extras([
    ("ENVIRONMENT", ".TP\n.B TUTELA_STATE_DIR\n" + STATE + " Default /var/lib/tutela.\n"),
    ("SEE ALSO", r"\fBtutela\fR(8); /usr/share/doc/tutela/docs/compat.md (the tutela "
     "command it runs, every difference from the original)\n"),
])
"""The LifeKeeper and Serviceguard commands' sections."""


def escape(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, no line taken for a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.splitlines())


def paragraphs(text: str) -> str:
    """Help text as roff paragraphs; click's \\b paragraphs keep their line breaks."""
    out = []
    for block in inspect.cleandoc(text).split("\n\n"):
        if block.startswith("\b\n"):
            out.append(".PP\n.nf\n" + escape(block[2:]) + "\n.fi")
        else:
            out.append(".PP\n" + escape(" ".join(block.split())))
    return "\n".join(out) + "\n"


def header(name: str, help_text: str, date: str) -> str:
    return (f'.TH {name.upper()} {SECTION} "{date}" "tutela {version("tutela")}" '
            f'"tutela manual"\n.SH NAME\n{escape(name)} \\- {escape(summary(name, help_text))}\n')


def summary(name: str, help_text: str) -> str:
    """The NAME line: the help's first sentence, without a leading "NAME: "."""
    first = " ".join(inspect.cleandoc(help_text).split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".").removeprefix(f"{name}: ")


def option_items(records: list[tuple[str, str]]) -> str:
    return "".join(f".TP\n.B {escape(opts)}\n{escape(' '.join(help_.split()))}\n"
                   for opts, help_ in records)


def click_page(name: str, command: click.Command, date: str) -> str:
    """A program's page; a group's subcommands in its COMMANDS section."""
    ctx = click.Context(command, info_name=name)
    help_text = command.help or ""
    out = [header(name, help_text, date),
           ".SH SYNOPSIS\n", f".B {escape(name)}\n",
           escape(" ".join(command.collect_usage_pieces(ctx))) + "\n",
           ".SH DESCRIPTION\n", paragraphs(help_text),
           ".SH OPTIONS\n", option_items(_records(command, ctx))]
    if isinstance(command, click.Group):
        out += [".SH COMMANDS\n", *_commands(command, ctx)]
    return "".join(out) + _extras(name)


def _records(command: click.Command, ctx: click.Context) -> list[tuple[str, str]]:
    return [record for param in command.get_params(ctx)
            if (record := param.get_help_record(ctx)) is not None]


def _commands(group: click.Group, ctx: click.Context) -> list[str]:
    """Every visible subcommand, depth first, as a subsection titled with its full path."""
    out = []
    for sub_name in group.list_commands(ctx):
        command = group.get_command(ctx, sub_name)
        if command is None or command.hidden:
            continue
        sub_ctx = click.Context(command, info_name=sub_name, parent=ctx)
        path = sub_ctx.command_path
        out.append(f'.SS "{escape(path)}"\n.B {escape(path)}\n'
                   + escape(" ".join(command.collect_usage_pieces(sub_ctx))) + "\n"
                   + paragraphs(command.help or command.short_help or ""))
        records = [r for r in _records(command, sub_ctx) if not r[0].endswith("--help")]
        if records:
            out.append(".RS\n" + option_items(records) + ".RE\n")
        if isinstance(command, click.Group):
            out += _commands(command, sub_ctx)
    return out


def argparse_page(name: str, parser: argparse.ArgumentParser, date: str) -> str:
    description = parser.description or ""
    records = []
    for action in parser._actions:  # argparse has no public list of its options
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        opts = ", ".join(action.option_strings)
        if action.nargs != 0:
            opts += " " + (action.metavar or "{" + ",".join(action.choices) + "}"
                           if action.choices else action.metavar or action.dest.upper())
        help_ = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0:
            help_ += f" [default: {action.default}]"
        records.append((opts, help_))
    usage = parser.format_usage().removeprefix("usage: ").strip()
    return "".join([header(name, description, date),
                    ".SH SYNOPSIS\n", escape(" ".join(usage.split())) + "\n",
                    ".SH DESCRIPTION\n", paragraphs(description),
                    ".SH OPTIONS\n", option_items(records), _extras(name)])


def _extras(name: str) -> str:
    return "".join(f".SH {title}\n{body}"
                   for title, body in EXTRAS.get(name, COMPAT_EXTRAS).sections)


def build_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch
            else datetime.datetime.now(datetime.UTC))
    return when.strftime("%Y-%m-%d")


def write_pages(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    date = build_date()
    pages = {name: click_page(name, definition, date) if isinstance(definition, click.Command)
             else argparse_page(name, definition, date)
             for name, definition in programs().items()}
    written = []
    for name, text in pages.items():
        path = outdir / f"{name}.{SECTION}"
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_page in write_pages(Path(sys.argv[1])):
        print(written_page)
