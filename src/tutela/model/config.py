"""The cluster configuration as one immutable value: nodes, comm paths, resources, hierarchies.

This is what the LCD stores, what `tutela export` writes and `tutela apply` reads.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from tutela.arbiter.timing import WATCHDOG_SHORTEST_LEASE

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
"""Tags and node names: letters, digits, '_', '.', '-'; 1-63 characters."""

ACTIONS = ("restore", "remove", "quick_check", "recover")
FORMAT = "tutela/1"
METRICS_PORT = 9665
"""The metrics port when `nodes[].metrics_address` gives none: the one after
ha_cluster_exporter's 9664, so both can run on one node (docs/metrics.md)."""
API_PORT = 9443
"""The HTTPS API's port when `nodes[].api_address` gives none (docs/api.md)."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeWatchdog(Frozen):
    """A node's watchdog as the node found it (`tutela cluster create`, `tutela join` and
    tutelad's start record it; not written by hand: `tutela apply` keeps it)."""

    device: str
    present: bool
    min_timeout: float = Field(ge=0)
    """The shortest timeout it takes: 0 for the lab's emulated one (fractions of a second),
    whole seconds for a Linux device (softdog 1, iTCO 2)."""


class Maintenance(Frozen):
    """A node stopped by `tutela stop --leave-resources` with clustered hierarchies still
    in service (docs/failover.md, "Maintenance stop"): no other node takes those over until
    it starts again, or an administrator confirms a takeover with `tutela switchover`.
    Set and cleared by the node's stop and start, not by hand: `tutela apply` keeps it."""

    since: str
    """When it stopped (ISO UTC)."""
    hierarchies: tuple[Name, ...]
    """The roots of the clustered hierarchies it left in service, unprotected."""


class Node(Frozen):
    name: Name
    addresses: tuple[str, ...] = ()
    """This node's addresses with prefix (198.51.100.11/24), one per cluster network:
    a joining node gets a tcp comm path to it on every network they share."""
    failover: bool = True
    """False blocks failover away from this node (LifeKeeper's !nofailover!): when it dies,
    no other node takes its hierarchies over until an administrator confirms with
    `tutela switchover ROOT --to NODE`."""
    watchdog: NodeWatchdog | None = None
    """None: not reported yet (counted as a whole-second device for `lease_duration: auto`)."""
    maintenance: Maintenance | None = None
    """Set while the node is stopped for maintenance with hierarchies left in service."""
    metrics_address: str | None = None
    """HOST[:PORT] where this node's tutelad serves Prometheus metrics (docs/metrics.md):
    an IPv4 address of the node, or 0.0.0.0; port 9665 when left out. None: no metrics."""
    api_address: str | None = None
    """HOST[:PORT] where this node serves the HTTPS API (docs/api.md); port 9443 when left
    out. None: the API runs here only if `settings.api.enabled` (on 0.0.0.0)."""

    @field_validator("metrics_address")
    @classmethod
    def _metrics_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            metrics_endpoint(value)
        return value

    @field_validator("api_address")
    @classmethod
    def _api_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            metrics_endpoint(value, API_PORT)
        return value

    @field_validator("addresses")
    @classmethod
    def _interfaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            try:
                ipaddress.IPv4Interface(text)
            except ValueError:
                raise ValueError(f"{text!r} is not an IPv4 address with prefix, "
                                 "e.g. 198.51.100.11/24") from None
        return value


def metrics_endpoint(text: str, default_port: int = METRICS_PORT) -> tuple[str, int]:
    """The (address, port) of a `metrics_address` (or `api_address`, whose default port
    differs); ValueError with an example if bad."""
    host, colon, port = text.partition(":")
    try:
        address = str(ipaddress.IPv4Address(host))
        number = int(port) if colon else default_port
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValueError(f"{text!r} is not an IPv4 address with an optional port, e.g. "
                         f"198.51.100.11:{default_port} (0.0.0.0 for every address)")
    return address, number


class CommPath(Frozen):
    kind: Literal["tcp", "udp", "tty"] = "tcp"
    nodes: tuple[Name, Name]
    addresses: tuple[str, str] | None = None
    """For tcp/udp: the address of each node on this path, in the order of `nodes`."""
    devices: tuple[str, str] | None = None
    """For tty: the serial device on each node, in the order of `nodes`."""
    priority: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _endpoints_match_kind(self) -> CommPath:
        if self.nodes[0] == self.nodes[1]:
            raise ValueError("a comm path joins two different nodes")
        if self.kind == "tty" and self.devices is None:
            raise ValueError("a tty path needs 'devices' (the serial device on each node)")
        if self.kind != "tty" and self.addresses is None:
            raise ValueError(f"a {self.kind} path needs 'addresses' (one per node)")
        return self


class Witness(Frozen):
    address: str
    """HOST:PORT of a tutela-witness."""


DISK_VOTER_PREFIX = "disk@"
DISK_VOTER_IO_LIMIT = 5.0
"""Seconds: the default bound on an I/O to the disk voter's device (docs/witness.md)."""
DISK_VOTER_OFFSET_ALIGN = 4096
"""The area starts on a 4 KiB boundary: O_DIRECT works there on 512 and 4096-byte disks."""


class DiskVoter(Frozen):
    """The third vote from a small area on a shared disk (Serviceguard's cluster lock LUN,
    Pacemaker's SBD): one sector per node, written and read with direct I/O (docs/witness.md,
    "A shared-disk voter"; docs/leases.md has the rules and the proof). Written by
    `tutela disk init`, which formats the area first."""

    device: str | None = None
    """The block device every node opens, unless `devices` names its own: a stable path
    (/dev/disk/by-id/...), never /dev/sdX, whose order may change at a reboot."""
    devices: dict[Name, str] = Field(default_factory=dict)
    """node -> its path to the same LUN, where it differs from `device` (Serviceguard's
    CLUSTER_LOCK_LUN is set per node)."""
    id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    """The area's cluster id (16 bytes, hex): a sector with another id is foreign."""
    slots: tuple[Name, ...] = Field(min_length=1)
    """Slot i (the sector at offset + i x sector_size) belongs to slots[i]: a node writes
    only its own; a node without a slot gets no vote from the disk. New nodes go at the end."""
    offset: int = Field(default=0, ge=0)
    """Where the area starts on the device, in bytes (a multiple of 4096)."""
    sector_size: Literal[512, 4096] = 512
    """Bytes per slot: the device's logical sector size or a multiple (4096 for 4Kn disks)."""
    io_limit: float = Field(default=DISK_VOTER_IO_LIMIT, gt=0, le=300)
    """Seconds no I/O to the device stays in flight beyond (its command timeout, with
    retries): a restarted tutelad waits this long before it writes its slot."""

    @property
    def voter_id(self) -> str:
        """Its id among the voters: 'disk@' and the area id's first 8 hex digits; node names
        cannot contain '@', so it never clashes with a node."""
        return f"{DISK_VOTER_PREFIX}{self.id[:8]}"

    def device_of(self, node: str) -> str | None:
        return self.devices.get(node, self.device)

    @model_validator(mode="after")
    def _placed(self) -> DiskVoter:
        if len(set(self.slots)) != len(self.slots):
            raise ValueError("a node has two slots in 'slots'; list each node once")
        if self.offset % DISK_VOTER_OFFSET_ALIGN:
            raise ValueError(f"offset {self.offset} is not a multiple of "
                             f"{DISK_VOTER_OFFSET_ALIGN}; round it down to "
                             f"{self.offset - self.offset % DISK_VOTER_OFFSET_ALIGN}")
        stray = sorted(set(self.devices) - set(self.slots))
        if stray:
            raise ValueError(f"devices names {', '.join(stray)}, which has no slot; add it "
                             "to 'slots' or remove it from 'devices'")
        pathless = [n for n in self.slots if not self.device_of(n)]
        if pathless:
            raise ValueError(f"no device for {', '.join(pathless)}: set 'device' (the path "
                             "on every node) or give each node its path under 'devices'")
        return self


class RecoveryPolicy(Frozen):
    attempts: int = Field(default=3, ge=0)
    """Local recoveries allowed within `window` before the resource is declared failed."""
    window: float = Field(default=300.0, gt=0)
    """Seconds over which recovery attempts are counted."""


class Resource(Frozen):
    tag: Name
    kit: str
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: tuple[Name, ...] = ()
    """Tags of the children this resource needs (restored before it, removed after it)."""
    check_interval: float = Field(default=5.0, gt=0)
    """Seconds between quick checks; local protection is off with `protected: false`."""
    protected: bool = True
    recovery: RecoveryPolicy = RecoveryPolicy()
    timeouts: dict[str, float] = Field(default_factory=dict)
    """Per-action timeout overrides in seconds (restore, remove, quick_check, recover)."""

    @field_validator("timeouts")
    @classmethod
    def _known_actions(cls, value: dict[str, float]) -> dict[str, float]:
        for action, seconds in value.items():
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
            if seconds <= 0:
                raise ValueError(f"timeout for {action} must be positive")
        return value

    @field_validator("depends_on")
    @classmethod
    def _no_duplicate_children(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a child is listed twice")
        return value


class Equivalency(Frozen):
    node: Name
    priority: int = Field(ge=1)
    """1 is the highest priority."""


class HierarchyDependency(Frozen):
    """This hierarchy needs another one up (Serviceguard's dependency_name /
    dependency_condition up / dependency_location): restored only where (or when) it is
    up, taken out of service when it goes down (docs/failover.md, "Dependencies")."""

    hierarchy: Name
    """The root tag of the hierarchy needed."""
    location: Literal["same_node", "any_node", "different_node"] = "same_node"
    """same_node: up on the node that runs this one; any_node: up somewhere; different_node:
    up on a node other than the one that runs this one."""


class HierarchySettings(Frozen):
    root: Name
    equivalencies: tuple[Equivalency, ...] = ()
    multi_node: bool = False
    """Runs on every node of its equivalencies at once (Serviceguard's multi_node package,
    Pacemaker's clone), each instance recovered locally, no ownership lease."""
    min_instances: int | None = Field(default=None, ge=1)
    """multi_node: fewer instances in service than this counts as down for the hierarchies
    that depend on it (Pacemaker's clone-min); unset: one."""
    max_instances: int | None = Field(default=None, ge=1)
    """multi_node: at most this many instances, on the alive nodes of highest priority
    (Pacemaker's clone-max); unset: every node of its equivalencies."""
    dependencies: tuple[HierarchyDependency, ...] = ()
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    failover: bool = True
    """False blocks automatic failover of this hierarchy (Serviceguard's global switching)."""
    start_policy: Literal["last", "priority"] = "last"
    target: Literal["in_service", "out_of_service"] = "out_of_service"
    """For a hierarchy with equivalencies: whether the cluster keeps it in service somewhere
    (`tutela restore` / `tutela remove` set it; the owner is decided by leases)."""

    @property
    def clustered(self) -> bool:
        """Runs under an ownership lease on one of several nodes (it has equivalencies and
        is not multi_node)."""
        return bool(self.equivalencies) and not self.multi_node

    @model_validator(mode="after")
    def _instances_fit(self) -> HierarchySettings:
        counts = {"min_instances": self.min_instances, "max_instances": self.max_instances}
        for field, count in counts.items():
            if count is not None and not self.multi_node:
                raise ValueError(f"{field} needs multi_node: true (remove {field}, or set "
                                 "multi_node: true)")
        if self.min_instances and self.max_instances and self.min_instances > self.max_instances:
            raise ValueError(f"min_instances ({self.min_instances}) is above max_instances "
                             f"({self.max_instances}); lower min_instances")
        return self

    @field_validator("dependencies")
    @classmethod
    def _one_dependency_each(cls, value: tuple[HierarchyDependency, ...]
                             ) -> tuple[HierarchyDependency, ...]:
        needed = [d.hierarchy for d in value]
        if len(set(needed)) != len(needed):
            raise ValueError("a hierarchy is listed twice; keep one entry per hierarchy")
        return value

    def priority_of(self, node: str) -> int | None:
        return next((e.priority for e in self.equivalencies if e.node == node), None)

    @field_validator("equivalencies")
    @classmethod
    def _unique(cls, value: tuple[Equivalency, ...]) -> tuple[Equivalency, ...]:
        priorities = [e.priority for e in value]
        if len(set(priorities)) != len(priorities):
            raise ValueError("priorities must be unique within a hierarchy")
        nodes = [e.node for e in value]
        if len(set(nodes)) != len(nodes):
            raise ValueError("a node is listed twice")
        return value


class User(Frozen):
    name: str
    role: Literal["admin", "operator", "guest"]
    host: str = "*"
    hierarchies: tuple[Name, ...] = ()
    """The roots this user's role is limited to (Serviceguard's per-package PACKAGE_ADMIN);
    empty: every hierarchy (docs/api.md, "Roles")."""


class ApiToken(Frozen):
    """An HTTPS API token's record, kept in the replicated configuration so that a token
    works on every node (docs/api.md, "Authentication"). The secret itself is shown once
    and never kept: only its SHA-256."""

    id: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")]
    name: str = Field(min_length=1, max_length=64)
    """Whose it is or what for (the journal records its requests as token:NAME)."""
    role: Literal["admin", "operator", "guest"]
    hierarchies: tuple[Name, ...] = ()
    created: float
    expires: float
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ApiGroups(Frozen):
    """The system groups whose members get each role through PAM (docs/api.md)."""

    admin: str = "tutela-admin"
    operator: str = "tutela-operator"
    guest: str = "tutela-guest"


class ApiSettings(Frozen):
    """The HTTPS API and GUI on every node (docs/api.md); off until enabled."""

    enabled: bool = False
    """True: every node serves it, on its `api_address` or else 0.0.0.0:`port`; False: only
    the nodes with an `api_address` do."""
    port: int = Field(default=API_PORT, ge=1, le=65535)
    groups: ApiGroups = ApiGroups()
    session_timeout: float = Field(default=3600.0, ge=60, le=7 * 86400)
    """Seconds a login session lasts (from the login; log in again after)."""


class FailoverDamping(Frozen):
    """Hold-down after repeated failovers of one hierarchy (a flapping link or node): after
    `failovers` automatic failovers within `window` seconds, no node takes it over
    automatically for `hold` seconds after the last (docs/failover.md)."""

    failovers: int = Field(default=3, ge=1)
    window: float = Field(default=600.0, gt=0)
    hold: float = Field(default=300.0, ge=0)
    """0 turns damping off."""


class EtcdSettings(Frozen):
    """The etcd cluster that grants ownership leases with `arbiter: etcd` (docs/arbiter.md)."""

    endpoints: tuple[str, ...] = Field(min_length=1)
    """Client URLs of the etcd members, e.g. https://198.51.100.21:2379; tried in turn."""
    ca: str | None = None
    """PEM file of the CA that signed the members' certificates (https endpoints); none:
    the system's CAs."""
    cert: str | None = None
    """PEM client certificate, for members that require one (with `key`)."""
    key: str | None = None
    prefix: str = Field(default="/tutela", pattern=r"^/[A-Za-z0-9_./-]*$")
    """Keys live under <prefix>/<cluster name>/owner/<root tag>."""

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not re.fullmatch(r"https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an etcd client URL; write "
                                 "http://HOST:PORT or https://HOST:PORT, without a path")
        return value

    @model_validator(mode="after")
    def _cert_with_key(self) -> EtcdSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: set both (client certificate and "
                             "its private key) or neither")
        return self


def _lease_duration(value: Any) -> float | str:
    """One clear message instead of one per member of the union."""
    if value == "auto":
        return "auto"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be 'auto' or seconds above 0 (got {value!r}); 'auto' fits "
                         "every node's watchdog")
    return seconds


class ClusterSettings(Frozen):
    port: int = Field(default=7365, ge=1, le=65535)
    """TCP port of the comm paths (LifeKeeper's 7365)."""
    heartbeat_interval: float = Field(default=0.2, gt=0)
    heartbeat_misses: int = Field(default=5, ge=1)
    lease_duration: Annotated[float | Literal["auto"], BeforeValidator(_lease_duration)] = "auto"
    """Seconds, or 'auto': the shortest lease every node's watchdog can fence in time
    (1 s with the lab's emulated watchdogs, 1.61 s with whole-second ones; docs/failover.md,
    "Lease and watchdog")."""
    quorum: Literal["majority", "none"] = "majority"
    quorum_loss_action: Literal["fastkill", "fastboot", "osu"] = "fastkill"
    fencing: Literal["watchdog", "agent", "none"] = "watchdog"
    fence_command: str | None = None
    """With fencing 'agent': run by the node taking a hierarchy over, with {node} replaced
    by the node that ran it; exit 0 means that node is powered off (e.g. an IPMI command,
    or 'tutela lab fence {node}' in the lab)."""
    failover_damping: FailoverDamping = FailoverDamping()
    arbiter: Literal["majority", "etcd"] = "majority"
    """Who grants the hierarchies' ownership leases: 'majority' the embedded voters (nodes,
    witnesses, disk voter; docs/leases.md), 'etcd' the etcd cluster of `etcd`
    (docs/arbiter.md). Taken when tutelad starts."""
    etcd: EtcdSettings | None = None
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _agent_has_command(self) -> ClusterSettings:
        if self.fencing == "agent" and not self.fence_command:
            raise ValueError("fencing 'agent' needs fence_command, e.g. "
                             "'tutela lab fence {node}'")
        return self

    @model_validator(mode="after")
    def _short_lease_is_fenced(self) -> ClusterSettings:
        """A lease shorter than any watchdog can fence (the fast profile) is safe only with
        a fence agent cutting the old owner off (docs/leases.md, "Fast profile")."""
        lease = self.lease_duration
        if lease != "auto" and float(lease) < WATCHDOG_SHORTEST_LEASE and (
                self.fencing != "agent"):
            raise ValueError(
                f"settings.lease_duration {float(lease):g}s is shorter than any watchdog can "
                f"fence ({WATCHDOG_SHORTEST_LEASE:g}s at the least) and settings.fencing is "
                f"'{self.fencing}': set settings.fencing to 'agent' with a fence_command that "
                "cuts the old owner off (the fast profile: 'tutela-fence-port {node}' in the "
                "lab, a switch's fence agent such as fence_ifmib on real hardware), or "
                "lease_duration to 'auto'")
        return self

    @model_validator(mode="after")
    def _etcd_arbiter_has_endpoints(self) -> ClusterSettings:
        if self.arbiter == "etcd" and self.etcd is None:
            raise ValueError("arbiter 'etcd' needs settings.etcd, e.g. "
                             "etcd: {endpoints: [https://198.51.100.21:2379]}")
        return self


KIND_PATTERN = r"^(\*|[a-z]+\.(\*|[a-z]+))$"
"""A notification's `kinds` entry: '*', an event kind (lease.won) or a prefix (lease.*);
that it names a kind of docs/events.md is checked with the whole configuration
(tutela.lcd.notifications), the model knowing no event kinds."""


CHANNEL_FIELDS: Mapping[str, tuple[str, ...]] = {
    "webhook": ("url", "secret"),
    "script": ("command",),
    "snmp": ("host", "version", "community", "user", "auth_protocol", "auth_key",
             "priv_protocol", "priv_key", "engine_id"),
    "mail": ("host", "tls", "user", "password", "sender", "to", "ca_file"),
}
"""The fields each kind of notification uses; the others are refused on it."""
CHANNEL_NEEDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "webhook": (("url", "url: https://hooks.example.net/tutela"),),
    "script": (("command", "command: /etc/tutela/events.sh"),),
    "snmp": (("host", "host: 198.51.100.250 (port 162) or 198.51.100.250:1162"),),
    "mail": (("host", "host: smtp.example.net (port 587 with STARTTLS)"),
             ("to", "to: [oncall@example.net]")),
}
SNMP_NEEDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "2c": (("community", "community: tr4ps"),),
    "3": (("user", "user: tutela"), ("auth_key", "auth_key: 'at least 8 characters'"),
          ("priv_key", "priv_key: 'at least 8 characters'")),
}
"""What an SNMP target needs by its version: v3 is always authPriv."""
SNMP_VERSION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "2c": ("community",),
    "3": ("user", "auth_protocol", "auth_key", "priv_protocol", "priv_key", "engine_id")}
ENGINE_ID_PATTERN = r"^(0x)?([0-9A-Fa-f]{2}){5,32}$"


def _a(kind: str) -> str:
    """'a webhook', 'an snmp' (said ess-en-em-pee)."""
    return f"an {kind}" if kind == "snmp" else f"a {kind}"


class Notification(Frozen):
    """A target told of the event journal's records (docs/notifications.md)."""

    name: Name
    kind: Literal["webhook", "script", "snmp", "mail"]
    """The channel (docs/notifications.md)."""
    url: str | None = None
    """webhook: where the record is POSTed (http:// or https://)."""
    secret: str | None = None
    """webhook: the HMAC-SHA256 key of the X-Tutela-Signature header; none: unsigned."""
    command: str | None = None
    """script: the program and its arguments (split as a shell would, not run by one)."""
    host: str | None = None
    """snmp: the trap receiver, mail: the SMTP server; HOST or HOST:PORT (port 162; 587
    with STARTTLS, 465 with implicit TLS, 25 without TLS)."""
    version: Annotated[Literal["2c", "3"], BeforeValidator(str)] = "2c"
    """snmp: SNMPv2c (community) or SNMPv3 (user, authPriv)."""
    community: str | None = None
    """snmp v2c: the community string."""
    user: str | None = None
    """snmp v3: the USM user; mail: the SMTP login (none: no authentication)."""
    auth_protocol: Literal["SHA", "SHA224", "SHA256", "SHA384", "SHA512"] = "SHA"
    auth_key: str | None = None
    """snmp v3: the authentication passphrase (at least 8 characters)."""
    priv_protocol: Literal["AES", "AES192", "AES256"] = "AES"
    priv_key: str | None = None
    """snmp v3: the privacy (encryption) passphrase (at least 8 characters)."""
    engine_id: str | None = None
    """snmp v3: the sending node's engine ID in hex; none: derived from the node's name
    (docs/notifications.md)."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """mail: STARTTLS on a plain connection, TLS from the start (smtps), or none."""
    password: str | None = None
    """mail: the SMTP password of `user` (AUTH PLAIN or LOGIN, over TLS only)."""
    sender: str | None = None
    """mail: the From address; none: tutela@ and the node's host name."""
    to: tuple[str, ...] = ()
    """mail: the recipients."""
    ca_file: str | None = None
    """mail: the CA certificates (PEM) the server's certificate is checked against; none:
    the system's."""
    kinds: tuple[Annotated[str, Field(pattern=KIND_PATTERN)], ...] = ("*",)
    """The event kinds sent: '*', a kind (lease.won) or a prefix (lease.*)."""
    min_severity: Literal["info", "warning", "error"] = "info"
    timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds one delivery may take (the POST's answer, the script's run, the mail's
    dialogue; a trap is sent without an answer)."""
    retries: int = Field(default=5, ge=0, le=20)
    """Deliveries tried again after a failure, 1, 2, 4... (at most 60) seconds apart."""

    @model_validator(mode="after")
    def _fits_kind(self) -> Notification:
        needs = CHANNEL_NEEDS[self.kind]
        if self.kind == "snmp":
            needs += SNMP_NEEDS[self.version]
        for needed, example in needs:
            if not getattr(self, needed):
                raise ValueError(f"{_a(self.kind)} notification needs '{needed}', e.g. "
                                 f"{example}")
        allowed = CHANNEL_FIELDS[self.kind]
        stray = [f for kind, fields in CHANNEL_FIELDS.items() for f in fields
                 if kind != self.kind and f not in allowed and self._given(f)]
        if stray:
            raise ValueError(f"{', '.join(dict.fromkeys(stray))} is not used by "
                             f"{_a(self.kind)} notification; remove it")
        if self.url is not None and not re.match(r"^https?://[^/\s]+", self.url):
            raise ValueError(f"url {self.url!r} is not an http:// or https:// URL, e.g. "
                             "https://hooks.example.net/tutela")
        self._check_channel_values()
        return self

    def _given(self, field: str) -> bool:
        """Whether `field` has a value other than its default (an export writes every
        field, the defaults of the other kinds' fields too)."""
        return bool(getattr(self, field) != type(self).model_fields[field].default)

    def _check_channel_values(self) -> None:
        if self.host is not None and not re.fullmatch(r"[\w.-]+(:\d{1,5})?", self.host):
            raise ValueError(f"host {self.host!r} is not HOST or HOST:PORT, e.g. "
                             "198.51.100.250:162")
        other = "3" if self.version == "2c" else "2c"
        wrong_version = [f for f in SNMP_VERSION_FIELDS[other]
                         if self.kind == "snmp" and self._given(f)]
        if wrong_version:
            raise ValueError(f"{', '.join(wrong_version)} is not used by SNMP version "
                             f"{self.version}; remove it or set version {other}")
        short = [f for f in ("auth_key", "priv_key") if 0 < len(getattr(self, f) or "") < 8]
        if short:
            raise ValueError(f"{', '.join(short)} has fewer than 8 characters (SNMPv3 "
                             "passphrases have at least 8)")
        if self.engine_id is not None and not re.fullmatch(ENGINE_ID_PATTERN, self.engine_id):
            raise ValueError(f"engine_id {self.engine_id!r} is not 5 to 32 octets in hex, "
                             "e.g. 0x80007ED904746e6f646531")
        if self.password and not self.user:
            raise ValueError("password without user: give the SMTP login as 'user'")
        if self.password and self.tls == "none":
            raise ValueError("a password is never sent without TLS: set tls starttls or "
                             "implicit")
        bad = [a for a in (*self.to, *([self.sender] if self.sender else []))
               if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", a)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a mail address, e.g. oncall@example.net")


class ClusterConfig(Frozen):
    """The whole declarative configuration of a cluster."""

    format: Literal["tutela/1"] = "tutela/1"
    name: Name
    settings: ClusterSettings = ClusterSettings()
    nodes: tuple[Node, ...] = ()
    comm_paths: tuple[CommPath, ...] = ()
    witnesses: tuple[Witness, ...] = ()
    disk_voter: DiskVoter | None = None
    resources: tuple[Resource, ...] = ()
    hierarchies: tuple[HierarchySettings, ...] = ()
    users: tuple[User, ...] = ()
    notifications: tuple[Notification, ...] = ()
    api_tokens: tuple[ApiToken, ...] = ()
    """Made and revoked by 'tutela api token'; left out of 'tutela export'."""

    @field_validator("api_tokens")
    @classmethod
    def _unique_token_ids(cls, value: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        ids = [t.id for t in value]
        if len(set(ids)) != len(ids):
            raise ValueError("a token id is listed twice; keep one entry per id")
        return value

    def resource(self, tag: str) -> Resource | None:
        return self._resources_by_tag.get(tag)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def hierarchy_settings(self, root: str) -> HierarchySettings:
        found = self._hierarchies_by_root.get(root)
        return found if found is not None else HierarchySettings(root=root)

    # Lookups by name, built once per (immutable) configuration: the daemon asks for every
    # hierarchy's settings several times a second.
    @functools.cached_property
    def _resources_by_tag(self) -> dict[str, Resource]:
        return {r.tag: r for r in self.resources}

    @functools.cached_property
    def _hierarchies_by_root(self) -> dict[str, HierarchySettings]:
        return {h.root: h for h in self.hierarchies}


def is_valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


COLLECTION_EXAMPLES: dict[str, str] = {
    "settings": "settings: {heartbeat_interval: 0.2, quorum: majority}",
    "settings.failover_damping": "failover_damping: {failovers: 3, window: 600, hold: 300}",
    "settings.api": "api: {enabled: true, port: 9443}",
    "settings.etcd": "etcd: {endpoints: [https://198.51.100.21:2379], ca: /etc/tutela/etcd-ca.pem}",
    "settings.etcd.endpoints": "endpoints: [https://198.51.100.21:2379, https://198.51.100.22:2379]",
    "settings.api.groups": "groups: {admin: tutela-admin, operator: tutela-operator, "
                           "guest: tutela-guest}",
    "users.hierarchies": "hierarchies: [app, db]",
    "api_tokens": "api_tokens: [{id: 0f1e2d3c4b5a, name: nightly, role: operator, "
                  "created: 1796000000, expires: 1798592000, digest: <64 hex digits>}] "
                  "(made by 'tutela api token create', revoked by 'tutela api token revoke')",
    "api_tokens.hierarchies": "hierarchies: [app, db]",
    "nodes": "nodes: [{name: node1, addresses: [198.51.100.11/24]}]",
    "nodes.addresses": "addresses: [198.51.100.11/24, 203.0.113.11/24]",
    "nodes.maintenance": "maintenance: {since: '2026-12-07T03:00:00+00:00', "
                         "hierarchies: [app]} (set by 'tutela stop --leave-resources')",
    "nodes.maintenance.hierarchies": "hierarchies: [app, db]",
    "nodes.watchdog": "watchdog: {device: /dev/watchdog, present: true, min_timeout: 1}",
    "comm_paths": "comm_paths: [{nodes: [node1, node2], "
                  "addresses: [198.51.100.11, 198.51.100.12]}]",
    "comm_paths.nodes": "nodes: [node1, node2]",
    "comm_paths.addresses": "addresses: [198.51.100.11, 198.51.100.12] (in the order of nodes)",
    "comm_paths.devices": "devices: [/dev/ttyS0, /dev/ttyS0] (in the order of nodes)",
    "witnesses": "witnesses: [{address: '198.51.100.250:7366'}]",
    "disk_voter": "disk_voter: {device: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4, id: "
                  "9f2c..., slots: [node1, node2]} (written by 'tutela disk init')",
    "disk_voter.devices": "devices: {node2: /dev/disk/by-id/scsi-36001405...}",
    "disk_voter.slots": "slots: [node1, node2]",
    "resources": "resources: [{tag: vip, kit: ip, params: {address: 198.51.100.100/24}}]",
    "resources.params": "params: {address: 198.51.100.100/24}",
    "resources.depends_on": "depends_on: [vip, data]",
    "resources.recovery": "recovery: {attempts: 3, window: 300}",
    "resources.timeouts": "timeouts: {restore: 60, remove: 30}",
    "hierarchies": "hierarchies: [{root: web, equivalencies: [{node: node1, priority: 1}]}]",
    "hierarchies.equivalencies": "equivalencies: [{node: node1, priority: 1}, "
                                 "{node: node2, priority: 2}]",
    "hierarchies.dependencies": "dependencies: [{hierarchy: db, location: same_node}]",
    "users": "users: [{name: alice, role: admin}]",
    "notifications": "notifications: [{name: ops, kind: webhook, url: "
                     "'https://hooks.example.net/tutela', secret: S3cr3t, kinds: ['node.*', "
                     "'lease.*'], min_severity: warning}]",
    "notifications.kinds": "kinds: ['node.down', 'lease.*', 'restore.*']",
    "notifications.to": "to: [oncall@example.net, ops@example.net]",
}
"""Error texts: an example of each list or mapping field, by its path without list indices,
shown when a configuration gives that field something else (a list where a mapping goes)."""


_LIST_ERRORS = frozenset({"tuple_type", "list_type", "set_type", "frozen_set_type"})
_MAPPING_ERRORS = frozenset({"dict_type", "model_type", "model_attributes_type"})


def collection_message(error: Mapping[str, Any]) -> str | None:
    """Error texts: a pydantic error on a list or mapping field given something else (or a
    list of the wrong length) in plain words, e.g. "expected a list, got 'vip'"; None for
    any other error."""
    location = error["loc"]
    item = bool(location) and isinstance(location[-1], int)
    if error["type"] in _LIST_ERRORS:
        return f"expected a list, got {_described(error['input'])}"
    if error["type"] in _MAPPING_ERRORS:
        what = "each entry to be a mapping" if item else "a mapping"
        return f"expected {what}, got {_described(error['input'])}"
    if error["type"] == "too_long":
        return (f"expected at most {error['ctx']['max_length']} items, got "
                f"{error['ctx']['actual_length']}")
    if error["type"] == "too_short" or (error["type"] == "missing" and item):
        return f"too few items: {_described(error['input'])}"
    return None


def _described(value: Any) -> str:
    """What a wrongly typed value is, in the words of YAML."""
    if isinstance(value, dict):
        keys = [str(key) for key in value]
        return f"a mapping ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if value is None:
        return "nothing"
    return f"{value!r}"
