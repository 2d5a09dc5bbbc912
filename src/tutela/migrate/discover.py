"""Finds the Serviceguard files among the inputs: single files, or a whole $SGCONF directory.

Files are recognised by their content (CLUSTER_NAME, PACKAGE_NAME, control-script arrays).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tutela.migrate.lexer import read_keywords, read_shell
from tutela.migrate.package_legacy import ARRAYS, CUSTOMER_FUNCTIONS
from tutela.migrate.toolkit_map import toolkit_of_file

MAX_BYTES = 4 * 1024 * 1024
SKIPPED_DIRS = {
    "scripts": "Serviceguard's own scripts and toolkits, not configuration",
    "modules": "Serviceguard's module definitions, not configuration",
    "examples": "Serviceguard's examples",
    "log": "logs",
}
LEGACY_KEYS = frozenset({"run_script", "halt_script", "pkg_switching_enabled",
                         "net_switching_enabled"})
MODULAR_KEYS = frozenset({"module_name", "external_script", "external_pre_script",
                          "ip_address", "fs_name", "service_cmd", "vg"})
NOT_SERVICEGUARD = "not a Serviceguard cluster file, package file or control script"


@dataclass(frozen=True)
class SourceFile:
    path: Path
    display: str
    """The name used in the report: relative to the inputs' common directory."""
    text: str
    kind: str
    """cluster, modular, legacy, control or toolkit (a legacy toolkit's configuration
    file, such as hapgsql.conf)."""


@dataclass
class Inputs:
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Files found in a directory and left out, with the reason."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """Files named on the command line that could not be used, with the reason."""
    base: Path = Path()


def collect(paths: Sequence[Path]) -> Inputs:
    existing = [p.absolute() for p in paths if p.exists()]
    inputs = Inputs(base=_base(existing))
    for path in paths:
        if not path.exists():
            inputs.problems.append((str(path), "no such file or directory"))
        elif path.is_dir():
            _walk(path.absolute(), inputs)
        else:
            _add(path.absolute(), inputs, explicit=True)
    return inputs


def _base(paths: list[Path]) -> Path:
    directories = [p if p.is_dir() else p.parent for p in paths]
    return Path(os.path.commonpath(directories)) if directories else Path.cwd()


def display_name(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base)) or path.name
    except ValueError:
        return str(path)


def _walk(directory: Path, inputs: Inputs) -> None:
    def unreadable(error: OSError) -> None:  # os.walk would skip it silently otherwise
        name = display_name(Path(str(error.filename)), inputs.base)
        inputs.skipped.append((name, f"cannot read it: {error.strerror or error}"))

    for root, dirs, files in os.walk(directory, onerror=unreadable):
        here = Path(root)
        for name in sorted(dirs):
            if name.startswith(".") or name in SKIPPED_DIRS:
                if name in SKIPPED_DIRS:
                    inputs.skipped.append((display_name(here / name, inputs.base) + "/",
                                           SKIPPED_DIRS[name]))
                dirs.remove(name)
        dirs.sort()
        for name in sorted(files):
            if not name.startswith("."):
                _add(here / name, inputs, explicit=False)


def _add(path: Path, inputs: Inputs, explicit: bool) -> None:
    display = display_name(path, inputs.base)
    if any(f.path == path for f in inputs.files):
        return
    text, reason = read_text(path)
    kind = classify(text) if text is not None else ""
    if text is not None and not kind and toolkit_of_file(path.name) is not None:
        kind = "toolkit"
    if text is not None and kind:
        inputs.files.append(SourceFile(path, display, text, kind))
    else:
        target = inputs.problems if explicit else inputs.skipped
        target.append((display, reason or NOT_SERVICEGUARD))


def read_text(path: Path) -> tuple[str | None, str]:
    """The file's text, or None and why not (unreadable, too big, binary)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        return None, f"cannot read it: {error.strerror or error}"
    if len(data) > MAX_BYTES:
        return None, f"larger than {MAX_BYTES // (1024 * 1024)} MiB"
    if b"\0" in data:
        return None, ("a binary file (for cmclconfig, give the ASCII file cmgetconf writes)")
    return data.decode("utf-8", errors="replace"), ""


def classify(text: str) -> str:
    """cluster, modular, legacy, control, or '' for anything else."""
    values, _ = read_keywords(text, "")
    keys = {v.key for v in values}
    if "cluster_name" in keys:
        return "cluster"
    if "package_name" in keys:
        if keys & LEGACY_KEYS:
            return "legacy"
        if keys & MODULAR_KEYS:
            return "modular"
        first = next(v for v in values if v.key == "package_name")
        return "legacy" if first.raw.startswith("PACKAGE_NAME") else "modular"
    script = read_shell(text, "")
    if any(f.name in CUSTOMER_FUNCTIONS for f in script.functions) or any(
            a.index is not None and (a.key in ARRAYS or a.key == "vg")
            for a in script.assignments):
        return "control"
    return ""


def find_control(run_script: str, inputs: Inputs) -> SourceFile | None:
    """The control script a legacy package names: among the inputs, else on this machine."""
    wanted = Path(run_script.strip())
    controls = [f for f in inputs.files if f.kind == "control"]
    exact = next((f for f in controls if f.path == wanted), None)
    if exact is not None:
        return exact
    scored = [(_common_suffix(f.path, wanted), f) for f in controls]
    scored = [item for item in scored if item[0] > 0]
    if scored:
        return max(scored, key=lambda item: item[0])[1]
    if wanted.is_absolute() and wanted.is_file():
        text, _ = read_text(wanted)
        if text is not None:
            found = SourceFile(wanted, display_name(wanted, inputs.base), text, "control")
            inputs.files.append(found)
            return found
    return None


def _common_suffix(first: Path, second: Path) -> int:
    count = 0
    for a, b in zip(reversed(first.parts), reversed(second.parts), strict=False):
        if a != b:
            break
        count += 1
    return count
