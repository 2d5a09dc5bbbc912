"""Reads a legacy package: its package file (PACKAGE_NAME, RUN_SCRIPT, ...) and control script.

The control script is read as data: indexed arrays, scalars and the customer_defined_* bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from tutela.migrate.lexer import Issue, ShellScript, Value
from tutela.migrate.package_modular import (
    EMS,
    PREFIX_RULES,
    RULES,
    VERITAS,
    VERITAS_SETTING,
    PackageParser,
)
from tutela.migrate.sgmodel import Group, Note, Outcome, Rule, SgPackage, note

CUSTOMER_FUNCTIONS = ("customer_defined_run_cmds", "customer_defined_halt_cmds")

ARRAYS: dict[str, tuple[str, str]] = {
    "lv": ("filesystems", "fs_name"),
    "fs": ("filesystems", "fs_directory"),
    "fs_type": ("filesystems", "fs_type"),
    "fs_mount_opt": ("filesystems", "fs_mount_opt"),
    "fs_umount_opt": ("filesystems", "fs_umount_opt"),
    "fs_fsck_opt": ("filesystems", "fs_fsck_opt"),
    "ip": ("ips", "ip_address"),
    "subnet": ("ips", "ip_subnet"),
    "service_name": ("services", "service_name"),
    "service_cmd": ("services", "service_cmd"),
    "service_restart": ("services", "service_restart"),
}
"""Control-script arrays and the modular parameter each element becomes."""

SCRIPT_ALIASES = {"fs_umount_count": "fs_umount_retry_count", "vxvol": "vxvol_cmd"}
SCRIPT_RULES: dict[str, Rule] = {
    "ha_nfs_script_extension": Rule(Outcome.NOTHING, "the NFS toolkit's hook; see the "
                                    "toolkit lines"),
    "concurrent_diskgroup_operations": VERITAS_SETTING,
}
EMPTY = Rule(Outcome.NOTHING, "empty template entry")
EXPORT = Rule(Outcome.NOTHING, "the generated scripts export the variables they copy")


class LegacyParser(PackageParser):
    kind: ClassVar[str] = "legacy"
    ALIASES: ClassVar[dict[str, str]] = {
        "pkg_switching_enabled": "auto_run",
        "net_switching_enabled": "local_lan_failover_allowed",
        "subnet": "monitored_subnet",
    }

    def handler(self, key: str) -> Callable[[str, Value], None] | None:
        if key in ("run_script", "halt_script"):
            return self.setting
        return super().handler(key)


def parse_legacy(text: str, file: str) -> SgPackage:
    """The package file alone; add its control script with merge_control_script."""
    return LegacyParser(file).parse(text)


def merge_control_script(package: SgPackage, script: ShellScript, file: str) -> None:
    """Add what the control script holds as data; the rest is listed as not interpreted."""
    package.control_file = file
    package.issues.extend(script.issues)
    package.code.extend(script.code)
    package.notes += [EXPORT.apply(value) for value in script.exports]
    for function in script.functions:
        if function.name not in CUSTOMER_FUNCTIONS:
            package.helpers.append(function)
            continue
        earlier = next((f for f in package.functions if f.name == function.name), None)
        if earlier is not None:  # as in the shell, the later definition wins
            package.functions.remove(earlier)
            package.notes.append(Note(earlier.loc, f"function {earlier.name}", Outcome.NOTHING,
                                      f"defined again at line {function.loc.line}, which is used"))
        package.functions.append(function)
    arrays: dict[tuple[str, int], Group] = {}
    for value in script.assignments:
        if value.index is None:
            _scalar(package, value)
        elif value.key in ARRAYS:
            _element(package, arrays, value)
        else:
            _other_array(package, value)
    _add_groups(package, arrays)


def _scalar(package: SgPackage, value: Value) -> None:
    key = SCRIPT_ALIASES.get(value.key, value.key)
    if key == "vgchange":
        package.volume_groups.append(value)
    elif key in RULES or key in SCRIPT_RULES:
        package.notes.append((RULES.get(key) or SCRIPT_RULES[key]).apply(value))
    elif any(key.startswith(prefix) for prefix, _ in PREFIX_RULES):
        package.notes.append(next(r for p, r in PREFIX_RULES if key.startswith(p)).apply(value))
    else:
        earlier = package.variables.get(key)
        if earlier is not None:
            package.notes.append(note(earlier, Outcome.NOTHING,
                                      f"set again at line {value.loc.line}"))
        package.variables[key] = value


def _element(package: SgPackage, arrays: dict[tuple[str, int], Group], value: Value) -> None:
    section, key = ARRAYS[value.key]
    group = arrays.setdefault((section, value.index or 0), Group())
    earlier = group.values.get(key)
    if earlier is not None:
        package.notes.append(note(earlier, Outcome.NOTHING, f"set again at line "
                                                            f"{value.loc.line}"))
    group.values[key] = value


def _other_array(package: SgPackage, value: Value) -> None:
    if value.key == "vg":
        package.volume_groups.append(value)
    elif not value.text.strip():
        package.notes.append(EMPTY.apply(value))
    elif value.key in ("cvm_dg", "vxvm_dg"):
        package.notes.append(VERITAS.apply(value))
    elif value.key == "deferred_resource_name":
        package.notes.append(EMS.apply(value))
    else:
        package.notes.append(note(value, Outcome.MANUAL, "a control-script array this "
                                  "importer does not know", "check whether it matters on "
                                  "tutela"))


def _add_groups(package: SgPackage, arrays: dict[tuple[str, int], Group]) -> None:
    """Array elements in index order; services join their package-file entry by name."""
    for (section, _), group in sorted(arrays.items(), key=lambda item: item[0]):
        if section == "services":
            _merge_service(package, group)
        else:
            getattr(package, section).append(group)


def _merge_service(package: SgPackage, group: Group) -> None:
    name = group.text("service_name").strip()
    match = next((g for g in package.services if name and g.text("service_name").strip() ==
                  name and "service_cmd" not in g.values), None)
    if match is None:
        if name and "service_cmd" in group.values:
            package.issues.append(Issue(group.first.loc, f"service {name!r} is not listed in "
                                        "the package file (SERVICE_NAME); converted anyway"))
        package.services.append(group)
        return
    for name_in_script, value in group.values.items():
        key = "control_service_name" if name_in_script == "service_name" else name_in_script
        earlier = match.values.get(key)
        if earlier is not None:
            package.notes.append(note(earlier, Outcome.NOTHING, f"the control script sets it "
                                      f"({value.loc}), which is used"))
        match.values[key] = value
