"""Builds the tutela ClusterConfig: the cluster file's nodes, paths, witness and timings.

One hierarchy per package (package_map); every value read gets a report line with its outcome.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from itertools import combinations
from pathlib import Path
from typing import Literal

from tutela.migrate.context import Context, safe_name
from tutela.migrate.dependency_map import record_dependencies
from tutela.migrate.lexer import Value, is_number
from tutela.migrate.networks import Networks, parse_address, subnet_network
from tutela.migrate.package_map import PackageMapper
from tutela.migrate.report import Ledger
from tutela.migrate.scripts import GeneratedScript
from tutela.migrate.sgmodel import Group, Outcome, SgCluster, SgNode, SgPackage
from tutela.model.config import (
    ClusterConfig,
    ClusterSettings,
    CommPath,
    Node,
    User,
    Witness,
)

DEFAULT_NAME = "sgcluster"
TWO_NODE_STEP = ("run tutela-witness on a third machine and list it under witnesses: without it "
                 "a two-node cluster cannot fail over when a node dies (majority quorum), and "
                 "settings.quorum: none risks split brain")
LOCK_LUN_CHECKS = ("check on every node that the path names the same LUN (the same "
                   "WWN: ls -l /dev/disk/by-id/ or lsblk -o NAME,WWN), that Serviceguard is "
                   "halted (cmhaltcl: nothing else may write the lock area), and that the "
                   "device's command timeout (/sys/block/DEV/device/timeout) is at most "
                   "disk_voter.io_limit (5 s)")
WITNESS_PORT = 7366  # tutela-witness's default port (comm paths use 7365)
"""Port assumed for a tutela-witness that replaces a Serviceguard quorum server (hacl-qs)."""
HEARTBEAT = ClusterSettings().heartbeat_interval
Role = Literal["admin", "operator", "guest"]
ROLES: dict[str, Role] = {"full_admin": "admin", "package_admin": "operator", "monitor": "guest"}
ANY_HOST = ("any_serviceguard_node", "cluster_member_node")
_SERIAL_LINUX = re.compile(r"^/dev/tty(S|USB|ACM|AMA)\d+$")


@dataclass
class Conversion:
    config: ClusterConfig
    scripts: list[GeneratedScript] = field(default_factory=list)
    hierarchies: int = 0
    roots: dict[str, str | None] = field(default_factory=dict)
    """Each package read, by name: its hierarchy's root, or None when it makes none."""
    disk_init: str = ""
    """The `tutela disk init` command that makes the cluster lock LUN the disk voter."""


def build(cluster: SgCluster | None, packages: list[SgPackage], ledger: Ledger,
          scripts_dir: Path) -> Conversion:
    networks = Networks([s.address.text for s in cluster.subnets] if cluster else [])
    ctx = Context(ledger, networks, scripts_dir)
    mapper = ClusterMapper(cluster, ctx)
    config = mapper.run(packages)
    results = [PackageMapper(p, ctx).run() for p in packages]
    record_dependencies(results, ctx)
    mapper.record_monitors()
    hierarchies = [r.hierarchy for r in results if r.hierarchy is not None]
    config = config.model_copy(update={
        "resources": tuple(res for r in results for res in r.resources),
        "hierarchies": tuple(hierarchies)})
    return Conversion(config, [s for r in results for s in r.scripts], len(hierarchies),
                      {r.name: r.root for r, p in zip(results, packages, strict=True)
                       if p.name is not None}, mapper.disk_init)


class ClusterMapper:
    """The cluster file's part of the configuration; without one, nodes come from packages."""

    def __init__(self, cluster: SgCluster | None, ctx: Context) -> None:
        self.cluster = cluster
        self.ctx = ctx
        title = cluster.name.text if cluster and cluster.name else DEFAULT_NAME
        self.section = f"Cluster `{title}`"
        self.path_notes: dict[int, list[str]] = {}
        self.disk_init = ""

    def record(self, value: Value, outcome: Outcome, detail: str, step: str = "") -> None:
        self.ctx.ledger.record(self.section, value, outcome, detail, step)

    def run(self, packages: list[SgPackage]) -> ClusterConfig:
        if self.cluster is None:
            return self.without_cluster_file(packages)
        ledger, cluster = self.ctx.ledger, self.cluster
        ledger.issues(self.section, cluster.issues)
        for entry in cluster.notes:
            ledger.add(self.section, entry)
        self.subnets()
        nodes = self.nodes()
        witnesses = self.witnesses()
        self.locks(bool(witnesses))
        self.tie_breaker(bool(witnesses))
        config = ClusterConfig(
            name=self.name(), nodes=tuple(nodes), comm_paths=tuple(self.comm_paths()),
            witnesses=tuple(witnesses), settings=self.settings(), users=tuple(self.users()))
        self.record_addresses()
        return config

    def without_cluster_file(self, packages: list[SgPackage]) -> ClusterConfig:
        for name in (v.text.strip() for p in packages for v in p.nodes):
            if name and name != "*":
                self.ctx.add_node(name)
        self.ctx.ledger.section(self.section, f"No cluster file was given: the cluster is "
                                f"named `{DEFAULT_NAME}` and its nodes come from the packages' "
                                "node_name lines. Set `name:` to your cluster's name, or give "
                                "the cluster ASCII file (cmgetconf) too.")
        nodes = tuple(Node(name=n) for n in self.ctx.nodes.values())
        return ClusterConfig(name=DEFAULT_NAME, nodes=nodes)

    # --- identity -------------------------------------------------------------------------

    def name(self) -> str:
        assert self.cluster is not None
        value = self.cluster.name
        if value is None:
            self.ctx.ledger.section(self.section, f"The file has no CLUSTER_NAME: the cluster "
                                    f"is named `{DEFAULT_NAME}`; set `name:` to yours.")
            return DEFAULT_NAME
        name = safe_name(value.text, DEFAULT_NAME)
        self.record(value, Outcome.MAPPED, f"name: {name}", "" if name == value.text else
                    "renamed to fit tutela's names (letters, digits, _ . -); use it with "
                    "tutela init --cluster")
        return name

    def nodes(self) -> list[Node]:
        assert self.cluster is not None
        nodes = []
        for node in self.cluster.nodes:
            name = self.ctx.add_node(node.name.text)
            self.record(node.name, Outcome.MAPPED, f"nodes[{name}]", "" if name ==
                        node.name.text else "renamed to fit tutela's names; use it with "
                        "tutela init --node on that machine")
            nodes.append(Node(name=name, addresses=self.node_addresses(node)))
            self.interfaces(node)
        return nodes

    def node_addresses(self, node: SgNode) -> tuple[str, ...]:
        """Heartbeat addresses with the prefix of their network, e.g. 198.51.100.11/24."""
        found = (parse_address(v.text) for v in node.heartbeat_addresses())
        return tuple(f"{a}/{self.ctx.networks.heartbeat_network(a).prefixlen}"
                     for a in found if a is not None)

    def interfaces(self, node: SgNode) -> None:
        for interface in node.interfaces:
            if interface.addresses:
                self.record(interface.name, Outcome.NOTHING, "tutela finds interfaces by "
                            "their addresses")
            else:
                self.record(interface.name, Outcome.MANUAL, "a standby LAN: tutela does not "
                            "move addresses between a node's interfaces", "bond the "
                            "interfaces (mode active-backup) so the kernel does it")

    # --- heartbeat networks ---------------------------------------------------------------

    def comm_paths(self) -> list[CommPath]:
        """One tcp path per node pair and heartbeat subnet they share; then serial paths."""
        assert self.cluster is not None
        paths: list[CommPath] = []
        for first, second in combinations(self.cluster.nodes, 2):
            pair = (self.ctx.nodes[first.name.text], self.ctx.nodes[second.name.text])
            for mine, theirs in self.shared_subnets(first, second):
                priority = sum(1 for p in paths if p.nodes == pair) + 1
                paths.append(CommPath(nodes=pair, addresses=(mine.text, theirs.text),
                                      priority=priority))
                label = f"comm_paths[{'-'.join(pair)}] priority {priority}"
                for value in (mine, theirs):
                    self.path_notes.setdefault(id(value), []).append(label)
        return paths + self.serial_paths(paths)

    def shared_subnets(self, first: SgNode, second: SgNode) -> list[tuple[Value, Value]]:
        theirs: dict[IPv4Network, Value] = {}
        for value in second.heartbeat_addresses():
            address = parse_address(value.text)
            if address is not None:
                theirs.setdefault(self.ctx.networks.heartbeat_network(address), value)
        pairs = []
        for value in first.heartbeat_addresses():
            address = parse_address(value.text)
            if address is not None:
                match = theirs.get(self.ctx.networks.heartbeat_network(address))
                if match is not None:
                    pairs.append((value, match))
        return pairs

    def serial_paths(self, paths: list[CommPath]) -> list[CommPath]:
        assert self.cluster is not None
        serial = [n for n in self.cluster.nodes if n.serial is not None]
        if len(serial) != 2:
            for node in serial:
                assert node.serial is not None
                self.record(node.serial, Outcome.MANUAL, "a serial heartbeat joins exactly two "
                            "nodes", "add tty comm_paths by hand for the pairs you cable")
            return []
        pair = (self.ctx.nodes[serial[0].name.text], self.ctx.nodes[serial[1].name.text])
        devices = [n.serial for n in serial if n.serial is not None]
        priority = sum(1 for p in paths if p.nodes == pair) + 1
        for value in devices:
            linux = _SERIAL_LINUX.match(value.text)
            self.record(value, Outcome.MAPPED, f"comm_paths[{'-'.join(pair)}] tty priority "
                        f"{priority}", "" if linux else "use the Linux device name (e.g. "
                        "/dev/ttyS0) in comm_paths[].devices")
        return [CommPath(kind="tty", nodes=pair, devices=(devices[0].text, devices[1].text),
                         priority=priority)]

    def record_addresses(self) -> None:
        assert self.cluster is not None
        for node in self.cluster.nodes:
            for value in (a for i in node.interfaces for a in i.addresses):
                self.record_address(node, value)

    def record_address(self, node: SgNode, value: Value) -> None:
        name = self.ctx.nodes[node.name.text]
        if parse_address(value.text) is None:
            self.record(value, Outcome.ERROR, f"{value.text!r} is not an IPv4 address",
                        "correct it (tutela's comm paths use IPv4)")
        elif value.key == "stationary_ip":
            self.record(value, Outcome.NOTHING, "the node's own data address; the ip kit "
                        "finds the interface in a package address's subnet by it")
        elif id(value) in self.path_notes:
            self.record(value, Outcome.MAPPED, f"nodes[{name}].addresses; "
                        + ", ".join(self.path_notes[id(value)]))
        else:
            self.record(value, Outcome.MAPPED, f"nodes[{name}].addresses; no other node has a "
                        "heartbeat address in this subnet, so no comm path uses it")

    def subnets(self) -> None:
        assert self.cluster is not None
        for subnet in self.cluster.subnets:
            network, inferred = subnet_network(subnet.address.text)
            if network is None:
                self.record(subnet.address, Outcome.NOTHING, "not an IPv4 subnet; tutela's "
                            "addresses and paths here are IPv4")
                continue
            self.record(subnet.address, Outcome.MAPPED, f"network {network}" + (
                " (prefix inferred: Serviceguard keeps no netmask)" if inferred else "")
                + ", for package addresses and heartbeat paths")
            if subnet.monitor is not None and subnet.monitor.text.lower() == "on":
                self.ctx.polling[network] = [t.text for t in subnet.targets]

    def record_monitors(self) -> None:
        """IP_MONITOR and POLLING_TARGET, once the packages' addresses are known."""
        for subnet in self.cluster.subnets if self.cluster else []:
            network, _ = subnet_network(subnet.address.text)
            tags = self.ctx.used_networks.get(network, []) if network else []
            active = network in self.ctx.polling
            for value in [*([subnet.monitor] if subnet.monitor else []), *subnet.targets]:
                if active and tags:
                    self.record(value, Outcome.MAPPED, f"ping_list of {', '.join(tags)}: their "
                                "quick check pings the polling targets")
                elif active:
                    self.record(value, Outcome.NOTHING, "no package address in this subnet to "
                                "monitor")
                else:
                    self.record(value, Outcome.NOTHING, "IP monitoring is off for this subnet")

    # --- quorum and timing ----------------------------------------------------------------

    def witnesses(self) -> list[Witness]:
        assert self.cluster is not None
        quorum = self.cluster.quorum
        if "qs_addr" in quorum:
            self.record(quorum["qs_addr"], Outcome.MANUAL, "a second address of the same "
                        "quorum server: a witness has one address (as a second witness it "
                        "would get a second vote)", "make the witness host reachable from "
                        "every node on one address, e.g. over both networks by routing")
        if "qs_polling_interval" in quorum:
            self.record(quorum["qs_polling_interval"], Outcome.NOTHING, "voters are asked with "
                        "every lease renewal; there is no polling interval")
        host = quorum.get("qs_host")
        if host is None:
            return []
        address = f"{host.text}:{WITNESS_PORT}"
        self.record(host, Outcome.MAPPED, f"witnesses: {address} (one vote; quorum is a "
                    "majority of nodes plus witness)", f"run tutela-witness on {host.text} in "
                    f"place of the quorum server (port {WITNESS_PORT} assumed)")
        return [Witness(address=address)]

    def locks(self, has_witness: bool) -> None:
        """A lock LUN becomes the disk voter (by `tutela disk init`, which formats its area);
        a lock disk inside an LVM volume group needs a LUN of its own first."""
        assert self.cluster is not None
        count = len(self.cluster.nodes)
        if has_witness or count % 2:
            reason = ("the witness is configured" if has_witness
                      else f"with {count} nodes a majority needs no tie-breaker")
            for value in self.cluster.locks:
                self.record(value, Outcome.NOTHING, f"cluster lock (a disk tie-breaker): "
                            f"tutela needs no disk voter here: {reason}")
            return
        luns = {self.ctx.add_node(node.name.text): node.locks["cluster_lock_lun"]
                for node in self.cluster.nodes if "cluster_lock_lun" in node.locks}
        for value in self.cluster.locks:
            if value.key.startswith("second_"):
                self.record(value, Outcome.MANUAL, "a second cluster lock: tutela has one disk "
                            "voter", "for a cluster across two sites, run tutela-witness at "
                            "a third site instead")
            elif value.key == "cluster_lock_lun":
                self.disk_init = _disk_init_command(luns or {"": value})
                self.record(value, Outcome.MANUAL, "cluster lock LUN: becomes the disk voter, "
                            "the third vote (docs/witness.md); the document does not carry it, "
                            "as its area must be formatted first",
                            _disk_init_step(luns or {"": value}))
            else:
                self.record(value, Outcome.MANUAL, "cluster lock disk in an LVM volume group: "
                            "tutela's disk voter may not write there (LVM's data)",
                            "give the disk voter a small LUN (or partition) of its own that "
                            "every node sees, then: tutela disk init /dev/disk/by-id/LUN "
                            "(formats it after asking; docs/witness.md); or run tutela-witness "
                            "on a third machine and list it under witnesses")

    def tie_breaker(self, has_witness: bool) -> None:
        """Two nodes with neither a lock nor a quorum server: say what that means here."""
        assert self.cluster is not None
        if len(self.cluster.nodes) == 2 and not has_witness and not self.cluster.locks \
                and self.cluster.name is not None:
            self.record(self.cluster.name, Outcome.MANUAL, "two nodes and no tie-breaker "
                        "(no cluster lock, no quorum server)", TWO_NODE_STEP)

    def settings(self) -> ClusterSettings:
        assert self.cluster is not None
        timing = self.cluster.timing
        chosen = timing.get("member_timeout") or timing.get("node_timeout")
        if "heartbeat_interval" in timing:
            self.record(timing["heartbeat_interval"], Outcome.NOTHING, f"tutela sends "
                        f"heartbeats every {HEARTBEAT:g} s (they also renew ownership leases); "
                        "the node timeout sets the detection time")
        if "member_timeout" in timing and "node_timeout" in timing:
            self.record(timing["node_timeout"], Outcome.NOTHING, "superseded by MEMBER_TIMEOUT")
        if chosen is None:
            return ClusterSettings()
        seconds = _seconds(chosen.text)
        if seconds is None:
            self.record(chosen, Outcome.ERROR, f"{chosen.text!r} is not a positive number of "
                        "microseconds; tutela's default timing is kept", "correct it")
            return ClusterSettings()
        misses = max(1, math.ceil(round(seconds / HEARTBEAT, 6)))
        self.record(chosen, Outcome.MAPPED, f"settings.heartbeat_misses: {misses}: a node "
                    f"is declared dead after {misses} missed heartbeats of {HEARTBEAT:g} s = "
                    f"{misses * HEARTBEAT:g} s, as after {seconds:g} s in Serviceguard "
                    f"(tutela's default is {HEARTBEAT:g} s x 5 = 1 s; lower heartbeat_misses "
                    "once you know the network and load allow it)")
        return ClusterSettings(heartbeat_misses=misses)

    # --- users ----------------------------------------------------------------------------

    def users(self) -> list[User]:
        assert self.cluster is not None
        users = []
        for group in self.cluster.users:
            user = self.user(group)
            if user is not None:
                users.append(user)
        return users

    def user(self, group: Group) -> User | None:
        values = sorted(group.values.values(), key=lambda v: v.loc.line)
        name, host = group.text("user_name").strip(), group.text("user_host").strip()
        role = ROLES.get(group.text("user_role").strip().lower())
        if not name or role is None:
            for value in values:
                self.record(value, Outcome.ERROR, "incomplete USER_NAME / USER_HOST / "
                            "USER_ROLE entry (the role must be FULL_ADMIN, PACKAGE_ADMIN or "
                            "MONITOR)", "complete it and run the import again")
            return None
        user_name = "*" if name.lower() == "any_user" else name
        user_host = "*" if not host or host.lower() in ANY_HOST else host
        for value in values:
            self.record(value, Outcome.MAPPED, f"users: {user_name} as {role} from host "
                        f"{user_host}" + (" (tutela checks the client's host; '*' is any)"
                                          if value.key == "user_host" else ""))
        return User(name=user_name, role=role, host=user_host)


def _seconds(text: str) -> float | None:
    text = text.strip()
    return int(text) / 1_000_000 if is_number(text) and int(text) > 0 else None


def _disk_init_command(luns: dict[str, Value]) -> str:
    """The one command that makes the lock LUN the disk voter, each node's path in it."""
    paths = sorted({value.text for value in luns.values()})
    common = max(paths, key=lambda p: sum(v.text == p for v in luns.values()))
    others = " ".join(f"--node-device {node}={value.text}"
                      for node, value in sorted(luns.items()) if value.text != common)
    return f"tutela disk init {common}" + (f" {others}" if others else "")


def _disk_init_step(luns: dict[str, Value]) -> str:
    """The disk init command with what to check before it."""
    paths = sorted({value.text for value in luns.values()})
    command = _disk_init_command(luns)
    unstable = [p for p in paths if not p.startswith("/dev/disk/by-")]
    advice = (f"; name it by a stable path (/dev/disk/by-id/...), not {', '.join(unstable)}, "
              "whose name may change at a reboot" if unstable else "")
    return (f"{LOCK_LUN_CHECKS}{advice}; then, once the tutela cluster runs, on one node: "
            f"{command} (it formats the area after asking)")
