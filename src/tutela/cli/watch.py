"""`tutela status --watch`: the status view redrawn in place every interval until Ctrl-C.

On a terminal rich's Live redraws it; otherwise (a pipe, a serial console logged to a file)
each view starts with the ANSI "home, clear screen" sequence, as watch(1) would send. The
view is what `tutela status` prints; while tutelad does not answer, it says so and keeps
trying (a daemon being restarted comes back into view). Ctrl-C ends it with exit 0.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path

import click

from tutela.cli import output
from tutela.cli.client import DaemonError, call, maintenance_note

CLEAR = "\x1b[H\x1b[2J"


class _ColourBuffer(io.StringIO):
    """Collects a view with its colours: click keeps them for a stream that is a terminal."""

    def isatty(self) -> bool:
        return True


def view(state_dir: Path, interval: float) -> str:
    """One view: a heading with the time, then what `tutela status` prints (or why not)."""
    heading = click.style(f"every {interval:g}s, Ctrl-C ends    "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')}", dim=True)
    buffer = _ColourBuffer()
    with contextlib.redirect_stdout(buffer):
        try:
            output.print_status(call(state_dir, "status"))
        except DaemonError as error:
            note = maintenance_note(state_dir) if error.kind == "not-running" else ""
            click.echo(click.style("error: ", fg="red", bold=True) + str(error) + note)
    return f"{heading}\n{buffer.getvalue()}"


def watch_status(state_dir: Path, interval: float) -> None:
    """Redraw the status view every `interval` seconds until Ctrl-C, then return."""
    with contextlib.suppress(KeyboardInterrupt):
        if sys.stdout.isatty():
            _live(state_dir, interval)
        else:
            _plain(state_dir, interval)


def _live(state_dir: Path, interval: float) -> None:
    from rich.live import Live  # a terminal only: 60 ms to import
    from rich.text import Text

    with Live(Text(""), console=output.console(), auto_refresh=False) as live:
        while True:
            live.update(Text.from_ansi(view(state_dir, interval)), refresh=True)
            time.sleep(interval)  # the redraw period, not a wait for something


def _plain(state_dir: Path, interval: float) -> None:
    while True:
        sys.stdout.write(CLEAR + click.unstyle(view(state_dir, interval)))
        sys.stdout.flush()
        time.sleep(interval)  # the redraw period, not a wait for something
