"""Imports HP Serviceguard clusters and packages into one tutela configuration, line by line.

convert() reads and maps (it never runs what it reads); write_scripts() and check() finish it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tutela.lcd.document import to_yaml
from tutela.lcd.validate import validate_config
from tutela.migrate.cluster import parse_cluster
from tutela.migrate.discover import Inputs, SourceFile, collect, find_control
from tutela.migrate.lexer import read_shell
from tutela.migrate.mapping import build
from tutela.migrate.package_legacy import merge_control_script, parse_legacy
from tutela.migrate.package_modular import parse_modular
from tutela.migrate.report import Ledger
from tutela.migrate.runbook import Origin
from tutela.migrate.scripts import WRAPPER_MODE, GeneratedScript
from tutela.migrate.sgmodel import Outcome, SgCluster, SgPackage
from tutela.model.config import ClusterConfig
from tutela.model.errors import ConfigError

__all__ = ["Migration", "MigrationError", "check", "convert", "write_scripts"]

UNCLAIMED = {
    "control": ("a control script that no package file names as RUN_SCRIPT",
                "give its package file too"),
    "toolkit": ("a toolkit configuration file that no legacy package's TKIT_DIR (or control "
                "script directory) holds", "give the package file and control script that "
                "use it too"),
}
"""Files read only with their package: what the report says when it is missing."""


class MigrationError(Exception):
    """The generated configuration does not validate: a bug in the importer, not the input."""


@dataclass
class Migration:
    config: ClusterConfig
    ledger: Ledger
    scripts: list[GeneratedScript] = field(default_factory=list)
    scripts_dir: Path = Path()
    converted: bool = False
    """Whether anything was converted: a cluster file or at least one package."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """Inputs named on the command line that could not be used, with the reason."""
    origin: Origin = field(default_factory=lambda: Origin(""))
    """The Serviceguard names the cutover runbook needs."""

    def yaml(self) -> str:
        return to_yaml(self.config)


def convert(paths: Sequence[Path], scripts_dir: Path) -> Migration:
    """Read every input, map it, and account for every line; nothing is written yet."""
    inputs = collect(paths)
    ledger = Ledger()
    for source in inputs.files:
        ledger.add_file(source.display, source.text)
    cluster = _cluster(inputs, ledger)
    packages = _packages(inputs, ledger)
    conversion = build(cluster, packages, ledger, scripts_dir.absolute())
    ledger.skipped = inputs.problems + _called_scripts(inputs.skipped, packages)
    ledger.account_rest()
    migration = Migration(conversion.config, ledger, conversion.scripts, scripts_dir.absolute(),
                          cluster is not None or bool(packages), inputs.problems,
                          Origin(cluster.name.text if cluster and cluster.name else "",
                                 conversion.roots, conversion.disk_init))
    ledger.summary = _summary(inputs, migration, conversion.hierarchies)
    return migration


def write_scripts(migration: Migration) -> list[Path]:
    """Write the wrapper scripts (mode 755) the generic resources call, and the
    configuration files written for kits (mode 644)."""
    written = []
    if migration.scripts:
        migration.scripts_dir.mkdir(parents=True, exist_ok=True)
    for script in migration.scripts:
        path = script.path(migration.scripts_dir)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(script.text)
        temporary.chmod(script.mode)
        os.replace(temporary, path)
        written.append(path)
    return written


def check(migration: Migration) -> None:
    """Validate the result as `tutela apply` would (after write_scripts, which it needs)."""
    try:
        validate_config(migration.config)
    except ConfigError as error:
        raise MigrationError(f"the generated configuration does not validate ({error}); "
                             "please report this with the input files") from None


def _cluster(inputs: Inputs, ledger: Ledger) -> SgCluster | None:
    files = [f for f in inputs.files if f.kind == "cluster"]
    for extra in files[1:]:
        ledger.whole_file(f"File `{extra.display}`", extra.display, Outcome.MANUAL,
                          f"a second cluster file: only {files[0].display} is converted",
                          "convert one cluster at a time")
    return parse_cluster(files[0].text, files[0].display) if files else None


def _packages(inputs: Inputs, ledger: Ledger) -> list[SgPackage]:
    packages: list[SgPackage] = []
    claimed: set[str] = set()
    for source in list(inputs.files):
        if source.kind not in ("modular", "legacy"):
            continue
        package = _package(source, inputs, ledger, claimed)
        first = next((p for p in packages if package.name and p.name
                      and p.name.text == package.name.text), None)
        if first is not None:
            for file in (package.file, package.control_file):
                if file:
                    ledger.whole_file(f"File `{file}`", file, Outcome.MANUAL, f"package "
                                      f"{first.title} is defined again (first in {first.file})",
                                      "give each package once")
        else:
            packages.append(package)
    for source in inputs.files:
        if source.kind in UNCLAIMED and source.display not in claimed:
            section = f"File `{source.display}`"
            ledger.issues(section, read_shell(source.text, source.display).issues)
            ledger.whole_file(section, source.display, Outcome.MANUAL, *UNCLAIMED[source.kind])
    return packages


def _package(source: SourceFile, inputs: Inputs, ledger: Ledger,
             claimed: set[str]) -> SgPackage:
    if source.kind == "modular":
        return parse_modular(source.text, source.display)
    package = parse_legacy(source.text, source.display)
    run_script = package.settings.get("run_script")
    control = find_control(run_script.text, inputs) if run_script else None
    if control is not None and control.display not in claimed:
        if control.display not in ledger.files:
            ledger.add_file(control.display, control.text)
        ledger.place_after(control.display, source.display)
        claimed.add(control.display)
        merge_control_script(package, read_shell(control.text, control.display),
                             control.display)
        _add_toolkit_file(package, control, inputs, ledger, claimed)
    return package


def _add_toolkit_file(package: SgPackage, control: SourceFile, inputs: Inputs,
                      ledger: Ledger, claimed: set[str]) -> None:
    """The toolkit configuration file (hapgsql.conf ...) of a legacy package: the one in
    its TKIT_DIR, else the one beside its control script; read as data."""
    tkit_dir = package.variables.get("tkit_dir")
    wanted = Path(tkit_dir.text.strip()) if tkit_dir is not None else control.path.parent
    found = [f for f in inputs.files if f.kind == "toolkit" and f.display not in claimed
             and (f.path.parent == wanted or f.path.parent.name == wanted.name)]
    if not found:
        return
    source = found[0]
    claimed.add(source.display)
    ledger.place_after(source.display, control.display)
    script = read_shell(source.text, source.display)
    package.toolkit_file = source.display
    package.toolkit.extend(script.assignments)
    package.issues.extend(script.issues)
    package.code.extend(script.code)


def _called_scripts(skipped: list[tuple[str, str]],
                    packages: list[SgPackage]) -> list[tuple[str, str]]:
    """Say so when a file left out is a script a package calls: it runs, it is not read."""
    callers = {v.text.rsplit("/", 1)[-1]: v for p in packages for v in p.scripts}
    named = []
    for name, reason in skipped:
        caller = callers.get(name.rsplit("/", 1)[-1])
        named.append((name, reason if caller is None else
                      f"the {caller.key} of {caller.loc}: the generated wrapper calls it; "
                      "copy it to the same path on every node"))
    return named


def _summary(inputs: Inputs, migration: Migration, hierarchies: int) -> list[str]:
    config = migration.config
    kits = Counter(r.kit for r in config.resources)
    by_kit = ", ".join(f"{count} {kit}" for kit, count in sorted(kits.items()))
    kinds = {f.display: f.kind for f in inputs.files}
    read = ", ".join(f"`{name}` ({kinds.get(name, 'control')})"
                     for name in migration.ledger.files) or "nothing"
    lines = [f"Read: {read}.", "",
             f"Wrote cluster `{config.name}`: nodes {len(config.nodes)}, "
             f"comm paths {len(config.comm_paths)}, witnesses {len(config.witnesses)}, "
             f"hierarchies {hierarchies}, resources {len(config.resources)}"
             + (f" ({by_kit})" if by_kit else "") + f", users {len(config.users)}."]
    wrappers = [s for s in migration.scripts if s.mode == WRAPPER_MODE]
    configurations = [s.name for s in migration.scripts if s.mode != WRAPPER_MODE]
    if wrappers:
        lines += ["", f"Wrapper scripts for the generic resources: {len(wrappers)} "
                  f"in `{migration.scripts_dir}`."]
    if configurations:
        lines += ["", f"Configuration files for kits: {', '.join(configurations)} in "
                  f"`{migration.scripts_dir}`."]
    return lines
