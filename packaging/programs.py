"""The definitions of every console script of [project.scripts] in pyproject.toml, from
which packaging/manpages.py and packaging/completions.py write their files: the click
command (or argparse parser) each program runs, so a page says what it accepts.

A new console script gets its page and completion here: a LifeKeeper or Serviceguard
command (tutela.compat.*) by itself, as the click command of its own name in its module;
any other must be added to OWN below, or `programs()` fails naming it.
"""

from __future__ import annotations

import argparse
import importlib
import tomllib
from collections.abc import Callable
from pathlib import Path

import click

from tutela.cli.main import cli as tutela_cli
from tutela.daemon.main import parser as tutelad_parser
from tutela.fence import port as fence_port
from tutela.witness.main import main as witness_cli

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
COMPAT_PACKAGE = "tutela.compat."
Definition = click.Command | argparse.ArgumentParser

OWN: dict[str, Callable[[], Definition]] = {
    "tutela": lambda: tutela_cli,
    "tutelad": tutelad_parser,
    "tutela-witness": lambda: witness_cli,
    "tutela-fence-port": fence_port._parser,  # the lab's fence has no public parser
}


def console_scripts() -> dict[str, str]:
    """[project.scripts]: program name -> "module:function"."""
    with PYPROJECT.open("rb") as file:
        return dict(tomllib.load(file)["project"]["scripts"])


def programs() -> dict[str, Definition]:
    """Every console script's definition, by program name."""
    found: dict[str, Definition] = {}
    for name, target in console_scripts().items():
        module = target.split(":")[0]
        if name in OWN:
            found[name] = OWN[name]()
        elif module.startswith(COMPAT_PACKAGE):
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command), f"{module}.{name} is no click command"
            found[name] = command
        else:
            raise SystemExit(f"packaging/programs.py: no definition of the console script "
                             f"{name} ({target}): add it to OWN")
    return found


def click_programs() -> dict[str, click.Command]:
    """The programs with click's shell completion."""
    return {name: definition for name, definition in programs().items()
            if isinstance(definition, click.Command)}
