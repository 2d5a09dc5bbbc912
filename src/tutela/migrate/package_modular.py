"""Reads a modular package file (cmmakepkg or cmgetconf -p output, every sg/ module).

Legacy package files share the KEYWORD value form; package_legacy adds their own parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from tutela.migrate.cluster import unknown
from tutela.migrate.lexer import Issue, Value, read_keywords
from tutela.migrate.sgmodel import Note, Outcome, Rule, SgPackage, add_to_group

SETTINGS = ("package_type", "auto_run", "failover_policy", "failback_policy",
            "run_script_timeout", "halt_script_timeout")
FILESYSTEM = ("fs_name", "fs_directory", "fs_type", "fs_mount_opt", "fs_umount_opt",
              "fs_fsck_opt", "fs_server")
SERVICE = ("service_name", "service_cmd", "service_restart", "service_fail_fast_enabled",
           "service_halt_timeout")
DEPENDENCY = ("dependency_name", "dependency_condition", "dependency_location")
USER = ("user_name", "user_host", "user_role")
STORAGE = ("vg", "vgchange_cmd")

LOGGING = "tutela logs every action with its output and reason: tutela log"
VERITAS = Rule(Outcome.MANUAL, "Veritas volume management (VxVM/CVM) is not supported",
               "use LVM or plain partitions on the shared disks")
VERITAS_SETTING = Rule(Outcome.NOTHING, "a Veritas setting: it matters only with disk "
                       "groups (vxvm_dg, cvm_dg), which are reported on their own lines")
EMS = Rule(Outcome.MANUAL, "monitored resources (EMS, generic resources) have no tutela "
           "equivalent", "write a generic resource whose quick_check script tests the "
           "condition")

RULES: dict[str, Rule] = {
    "module_version": Rule(Outcome.NOTHING, "module list; each parameter is converted on "
                           "its own line"),
    "package_description": Rule(Outcome.NOTHING, "tutela has no description field; it is "
                                "kept in this report"),
    "script_log_file": Rule(Outcome.NOTHING, LOGGING),
    "log_level": Rule(Outcome.NOTHING, LOGGING),
    "operation_sequence": Rule(Outcome.NOTHING, "the order is the hierarchy's dependency "
                               "chain"),
    "successor_halt_timeout": Rule(Outcome.NOTHING, "applies to package dependencies, "
                                   "which are reported on their own lines"),
    "concurrent_vgchange_operations": Rule(Outcome.NOTHING, "volume groups are reported on "
                                           "their own lines"),
    "enable_threaded_vgchange": Rule(Outcome.NOTHING, "volume groups are reported on their "
                                     "own lines"),
    "concurrent_fsck_operations": Rule(Outcome.NOTHING, "filesystems are checked one by "
                                       "one, in their dependency order"),
    "concurrent_mount_and_umount_operations": Rule(Outcome.NOTHING, "filesystems are "
                                                   "mounted in their dependency order"),
    "fs_mount_retry_count": Rule(Outcome.NOTHING, "a failed mount fails the restore; local "
                                 "recovery retries it"),
    "fs_umount_retry_count": Rule(Outcome.NOTHING, "the filesystem kit retries TERM/KILL "
                                  "and unmount kill_retries times (default 3)"),
    "deactivation_retry_count": Rule(Outcome.NOTHING, "volume groups are reported on their "
                                     "own lines"),
    "kill_processes_accessing_raw_devices": Rule(
        Outcome.MANUAL, "tutela stops processes that use a mounted filesystem, not raw "
        "devices", "stop raw-device users from a generic resource's remove script"),
    "vxvol_cmd": VERITAS_SETTING,
    "cvm_activation_cmd": VERITAS_SETTING,
    "vxvm_dg_retry": VERITAS_SETTING,
    "disk_group": VERITAS,
    "storage_group": VERITAS,
    "email_id": Rule(Outcome.MANUAL, "tutela sends no mail", "watch 'tutela log' or poll "
                     "'tutela status --json' from your monitoring"),
    "cluster_interconnect_subnet": Rule(Outcome.MANUAL, "RAC interconnect monitoring is "
                                        "not supported", "monitor it outside tutela"),
    "ip_subnet_node": Rule(Outcome.MANUAL, "cross-subnet failover: tutela puts an address "
                           "on the interface in its subnet on every node",
                           "give every node of the equivalency an interface in that subnet"),
}
PREFIX_RULES: tuple[tuple[str, Rule], ...] = (
    ("generic_resource_", EMS), ("resource_", EMS), ("cvm_", VERITAS), ("vxvm_", VERITAS),
    ("weight_", Rule(Outcome.MANUAL, "no package weights: tutela places a hierarchy by its "
                     "equivalency priorities only")),
)
def decide(value: Value, when: dict[str, Rule], otherwise: Rule) -> Note:
    return when.get(value.text.strip().lower(), otherwise).apply(value)


def _yes_no(default: Rule, yes: Rule) -> Callable[[Value], Note]:
    return lambda value: decide(value, {"no": default, "": default}, yes)


DECIDE: dict[str, Callable[[Value], Note]] = {
    "node_fail_fast_enabled": _yes_no(
        Rule(Outcome.NOTHING, "no reboot on package failure, as in tutela"),
        Rule(Outcome.MANUAL, "tutela does not reboot a node when a hierarchy fails",
             "if you relied on it, set settings.quorum_loss_action: fastboot (it acts on "
             "quorum loss, not on resource failure)")),
    "local_lan_failover_allowed": _yes_no(
        Rule(Outcome.NOTHING, "no local LAN failover, as in tutela"),
        Rule(Outcome.MANUAL, "tutela does not move addresses between a node's LANs",
             "bond the interfaces (mode active-backup) so the kernel does it")),
    "priority": lambda value: decide(
        value, {"no_priority": Rule(Outcome.NOTHING, "no package priority, as in tutela")},
        Rule(Outcome.MANUAL, "tutela has no package priorities (no preemption)",
             "place hierarchies with equivalency priorities")),
    "monitored_subnet_access": lambda value: decide(
        value, {"full": Rule(Outcome.NOTHING, "every node is on the subnet")},
        Rule(Outcome.MANUAL, "cross-subnet configuration", "give every node of the "
             "equivalency an interface in the subnet")),
}


class PackageParser:
    """Turns KEYWORD value lines into an SgPackage; subclasses add parameters."""

    kind: ClassVar[str] = "modular"
    ALIASES: ClassVar[dict[str, str]] = {}
    """Older parameter names and the modular name they are stored under."""

    def __init__(self, file: str) -> None:
        self.package = SgPackage(self.kind, file)
        self.subnet: Value | None = None

    def parse(self, text: str) -> SgPackage:
        values, issues = read_keywords(text, self.package.file)
        self.package.issues.extend(issues)
        for value in values:
            self.feed(value)
        return self.package

    def feed(self, value: Value) -> None:
        self.package.values.append(value)
        key = self.ALIASES.get(value.key, value.key)
        handler = self.handler(key)
        if handler is not None:
            handler(key, value)
        else:
            self.package.notes.append(self.fixed(key, value))

    def handler(self, key: str) -> Callable[[str, Value], None] | None:
        if key in SETTINGS:
            return self.setting
        if key == "module_name":
            return self.module
        if "/" in key:  # a toolkit attribute: tkit/pgsql/pgsql/PGDATA
            return self.toolkit_value
        return {
            "package_name": self.package_name, "node_name": self.node_name,
            "monitored_subnet": self.monitored_subnet, "ip_subnet": self.ip_subnet,
            "ip_address": self.ip_address, "external_pre_script": self.script,
            "external_script": self.script,
            **{k: self.grouped("filesystems", "fs_name") for k in FILESYSTEM},
            **{k: self.grouped("services", "service_name") for k in SERVICE},
            **{k: self.grouped("dependencies", "dependency_name") for k in DEPENDENCY},
            **{k: self.grouped("users", "user_name") for k in USER},
            **{k: self.storage for k in STORAGE},
        }.get(key, self.environment if key.startswith("pev_") else None)

    def fixed(self, key: str, value: Value) -> Note:
        """The outcome of a parameter that needs no mapping logic."""
        if key in DECIDE:
            return DECIDE[key](value)
        if key in RULES:
            return RULES[key].apply(value)
        rule = next((r for prefix, r in PREFIX_RULES if key.startswith(prefix)), None)
        return rule.apply(value) if rule is not None else unknown(value)

    def issue(self, value: Value, message: str) -> None:
        self.package.issues.append(Issue(value.loc, message))

    def package_name(self, _: str, value: Value) -> None:
        if self.package.name is not None:
            self.issue(value, f"a second package_name (first at line "
                              f"{self.package.name.loc.line}); this line is ignored")
        else:
            self.package.name = value

    def setting(self, key: str, value: Value) -> None:
        first = self.package.settings.get(key)
        if first is not None:
            self.issue(value, f"{value.key} given again (first at line {first.loc.line}); "
                              "this line is ignored")
        else:
            self.package.settings[key] = value

    def node_name(self, _: str, value: Value) -> None:
        self.package.nodes.append(value)

    def monitored_subnet(self, _: str, value: Value) -> None:
        self.package.monitored_subnets.append(value)

    def ip_subnet(self, _: str, value: Value) -> None:
        self.subnet = value
        self.package.ip_subnets.append(value)

    def ip_address(self, _: str, value: Value) -> None:
        add_to_group(self.package.ips, value, "ip_address")
        if self.subnet is not None:
            self.package.ips[-1].values["ip_subnet"] = self.subnet

    def script(self, _: str, value: Value) -> None:
        self.package.scripts.append(value)

    def storage(self, _: str, value: Value) -> None:
        self.package.volume_groups.append(value)

    def module(self, _: str, value: Value) -> None:
        """Serviceguard's own modules (sg/...) need nothing; a toolkit's is mapped with its
        attributes (toolkit_map)."""
        if value.text.strip().lower().startswith("sg/"):
            self.package.notes.append(RULES["module_version"].apply(value))
        else:
            self.package.toolkit.append(value)

    def toolkit_value(self, _: str, value: Value) -> None:
        self.package.toolkit.append(value)

    def environment(self, _: str, value: Value) -> None:
        self.package.environment.append(value)

    def grouped(self, section: str, starter: str) -> Callable[[str, Value], None]:
        def add(key: str, value: Value) -> None:
            add_to_group(getattr(self.package, section), value, starter, key)
        return add


def parse_modular(text: str, file: str) -> SgPackage:
    return PackageParser(file).parse(text)
