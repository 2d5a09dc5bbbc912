"""The Serviceguard configuration as read: clusters and packages with the line of every value.

The parsers fill these plain records; mapping turns them into a tutela ClusterConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tutela.migrate.lexer import Function, Issue, Loc, Value


class Outcome(StrEnum):
    """What became of one input line."""

    MAPPED = "mapped"
    NOTHING = "nothing to do"
    """Carried no functionality tutela lacks: a default, or something tutela does anyway."""
    MANUAL = "not carried over"
    SHELL = "not interpreted"
    ERROR = "error"


@dataclass(frozen=True)
class Note:
    """One report line: a source line (or range), what it said, and what became of it."""

    loc: Loc
    subject: str
    outcome: Outcome
    detail: str
    step: str = ""
    """The manual step to take, if any; every note with a step is on the checklist."""


def note(value: Value, outcome: Outcome, detail: str, step: str = "") -> Note:
    return Note(value.loc, value.raw, outcome, detail, step)


@dataclass(frozen=True)
class Rule:
    """A fixed outcome for a parameter that needs no mapping logic."""

    outcome: Outcome
    detail: str
    step: str = ""

    def apply(self, value: Value) -> Note:
        return note(value, self.outcome, self.detail, self.step)


@dataclass
class Group:
    """Values that belong together (one filesystem, one service, one user), by parameter.

    Keys are the modular package's parameter names; legacy arrays are renamed to them.
    """

    values: dict[str, Value] = field(default_factory=dict)

    def get(self, key: str) -> Value | None:
        return self.values.get(key)

    def text(self, key: str, default: str = "") -> str:
        value = self.values.get(key)
        return default if value is None else value.text

    @property
    def first(self) -> Value:
        return min(self.values.values(), key=lambda v: (v.loc.line, v.loc.file))


@dataclass
class Interface:
    name: Value
    addresses: list[Value] = field(default_factory=list)
    """HEARTBEAT_IP and STATIONARY_IP values (the key tells which)."""


@dataclass
class SgNode:
    name: Value
    interfaces: list[Interface] = field(default_factory=list)
    serial: Value | None = None
    locks: dict[str, Value] = field(default_factory=dict)
    """Its own lines of the cluster lock (CLUSTER_LOCK_LUN, FIRST_CLUSTER_LOCK_PV), by key."""

    def heartbeat_addresses(self) -> list[Value]:
        return [a for i in self.interfaces for a in i.addresses if a.key == "heartbeat_ip"]


@dataclass
class Subnet:
    address: Value
    monitor: Value | None = None
    targets: list[Value] = field(default_factory=list)


@dataclass
class SgCluster:
    file: str
    name: Value | None = None
    nodes: list[SgNode] = field(default_factory=list)
    quorum: dict[str, Value] = field(default_factory=dict)
    """qs_host, qs_addr, qs_polling_interval, qs_timeout_extension."""
    locks: list[Value] = field(default_factory=list)
    timing: dict[str, Value] = field(default_factory=dict)
    """member_timeout, heartbeat_interval, node_timeout (microseconds)."""
    subnets: list[Subnet] = field(default_factory=list)
    users: list[Group] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


@dataclass
class SgPackage:
    """A failover, multi_node or system_multi_node package, modular or legacy."""

    kind: str
    """'modular' or 'legacy'."""
    file: str
    name: Value | None = None
    settings: dict[str, Value] = field(default_factory=dict)
    """Single-valued parameters: package_type, auto_run, failback_policy, ... (modular names)."""
    nodes: list[Value] = field(default_factory=list)
    monitored_subnets: list[Value] = field(default_factory=list)
    ip_subnets: list[Value] = field(default_factory=list)
    ips: list[Group] = field(default_factory=list)
    """ip_address, with the ip_subnet it belongs to."""
    filesystems: list[Group] = field(default_factory=list)
    volume_groups: list[Value] = field(default_factory=list)
    """vg values, and vgchange_cmd and the like (the key tells which)."""
    services: list[Group] = field(default_factory=list)
    scripts: list[Value] = field(default_factory=list)
    """external_pre_script and external_script, in file order."""
    functions: list[Function] = field(default_factory=list)
    """Legacy control script: customer_defined_run_cmds / customer_defined_halt_cmds."""
    helpers: list[Function] = field(default_factory=list)
    """Legacy control script: its other functions (copied if the customer commands call them)."""
    control_file: str = ""
    variables: dict[str, Value] = field(default_factory=dict)
    """Legacy control script: its other scalar variables, for the customer commands."""
    environment: list[Value] = field(default_factory=list)
    """pev_ parameters."""
    toolkit: list[Value] = field(default_factory=list)
    """Toolkit modules (module_name tkit/pgsql/pgsql, ecmt/mysql/mysql) and attributes
    (tkit/pgsql/pgsql/PGDATA); legacy: the settings of the toolkit's configuration file."""
    toolkit_file: str = ""
    """Legacy: the toolkit configuration file read (hapgsql.conf ...), if any."""
    dependencies: list[Group] = field(default_factory=list)
    users: list[Group] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)
    """Every value read, for a package that is not converted as a whole."""
    notes: list[Note] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    code: list[Loc] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.name.text if self.name is not None else f"(unnamed, {self.file})"

    def setting(self, key: str, default: str = "") -> str:
        value = self.settings.get(key)
        return default if value is None else value.text.strip().lower()


def add_to_group(groups: list[Group], value: Value, starter: str, key: str = "") -> None:
    """Serviceguard's positional groups: `starter` (or a repeated parameter) opens a new one."""
    key = key or value.key
    if value.key == starter or not groups or key in groups[-1].values:
        groups.append(Group())
    groups[-1].values[key] = value
