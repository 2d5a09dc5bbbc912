"""The cluster as Serviceguard and LifeKeeper show it, from one `tutela status` answer and
the configuration in force: packages (hierarchies) with their nodes, and the formats of
`cmviewcl` (table and `-f line`) and `lcdstatus` (detailed, `-q`, `-e`). Pure: no I/O.

Where a value has no counterpart in tutela, docs/compat.md says what is shown instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tutela.cli.client import runs_on
from tutela.model.config import ClusterConfig

IN_SERVICE = ("ISP", "ISU")
FAILOVER_POLICY = {"priority": "configured_node", "last": "last_node"}
"""tutela's start_policy as Serviceguard's failover_policy; `last` has no Serviceguard
name (it starts where the hierarchy last ran)."""
FAILBACK_POLICY = {"intelligent": "manual", "automatic": "automatic"}


@dataclass(frozen=True)
class PackageNode:
    """A node a package may run on (an equivalency), as Node_Switching_Parameters shows."""

    name: str
    priority: int
    status: str
    """up or down: whether the node is alive."""
    current: bool
    """The package runs there."""

    @property
    def node_type(self) -> str:
        return "Primary" if self.priority == 1 else "Alternate"


@dataclass(frozen=True)
class Package:
    name: str
    status: str
    """up (in service on a node) or down."""
    state: str
    """running; maintenance (left running, unprotected, by a node stopped for maintenance);
    failed (its root is OSF somewhere and it runs nowhere); or halted."""
    autorun: str
    """enabled or disabled: the hierarchy's `failover` (Serviceguard's global switching)."""
    owner: str | None
    nodes: tuple[PackageNode, ...]
    failover_policy: str
    failback_policy: str


@dataclass(frozen=True)
class ClusterNode:
    name: str
    status: str
    """up (ALIVE) or down."""
    state: str
    """running, halted (stopped for maintenance) or unknown (not heard)."""


@dataclass(frozen=True)
class ClusterView:
    name: str
    local: str
    nodes: tuple[ClusterNode, ...]
    packages: tuple[Package, ...]

    def package(self, name: str) -> Package | None:
        return next((p for p in self.packages if p.name == name), None)

    def node(self, name: str) -> ClusterNode | None:
        return next((n for n in self.nodes if n.name == name), None)


def cluster_view(status: dict[str, Any], config: ClusterConfig) -> ClusterView:
    """Packages and nodes from a `tutela status` answer and the configuration in force;
    nodes in the configuration's order (status has this node first)."""
    order = [n.name for n in config.nodes]
    nodes = tuple(_cluster_node(n) for n in sorted(
        status["nodes"], key=lambda n: order.index(n["name"]) if n["name"] in order
        else len(order)))
    alive = {n.name for n in nodes if n.status == "up"}
    packages = tuple(_package(h, status, config, alive) for h in status["hierarchies"])
    return ClusterView(str(status["cluster"]), str(status["node"]), nodes, packages)


def _cluster_node(node: dict[str, Any]) -> ClusterNode:
    if node["state"] == "ALIVE":
        return ClusterNode(node["name"], "up", "running")
    return ClusterNode(node["name"], "down", "halted" if node.get("maintenance") else "unknown")


def _package(hierarchy: dict[str, Any], status: dict[str, Any], config: ClusterConfig,
             alive: set[str]) -> Package:
    root = str(hierarchy["root"])
    settings = config.hierarchy_settings(root)
    owner = runs_on(status, root)
    state = _package_state(hierarchy, owner)
    if owner is None and (left := _left_in_maintenance(status, root)) is not None:
        owner, state = left, "maintenance"
    equivalencies = sorted(settings.equivalencies, key=lambda e: e.priority)
    places = [(e.node, e.priority) for e in equivalencies] or [(str(status["node"]), 1)]
    nodes = tuple(PackageNode(n, p, "up" if n in alive else "down", n == owner)
                  for n, p in places)
    return Package(root, "up" if owner else "down", state,
                   "enabled" if settings.failover else "disabled", owner, nodes,
                   FAILOVER_POLICY[settings.start_policy],
                   FAILBACK_POLICY[settings.switchback])


def _left_in_maintenance(status: dict[str, Any], root: str) -> str | None:
    """The node stopped for maintenance (tutela stop --leave-resources, lkstop -f) that
    left `root` running there, unprotected: Serviceguard's package maintenance, where a
    package runs unmonitored."""
    return next((str(n["name"]) for n in status["nodes"] if n.get("maintenance")
                 and root in n["maintenance"]["hierarchies"]), None)


def _package_state(hierarchy: dict[str, Any], owner: str | None) -> str:
    if owner is not None:
        return "running"
    root = hierarchy["resources"][0]
    states = [root["state"], *(there["state"] for there in root["elsewhere"].values())]
    return "failed" if "OSF" in states else "halted"


# --- cmviewcl -------------------------------------------------------------------------------

CLUSTER_COLUMNS = (15, 13)
NODE_COLUMNS = (15, 13, 13)
PACKAGE_COLUMNS = (15, 17, 17, 12, 12)
SWITCHING_COLUMNS = (13, 13, 13, 15)
"""Column widths of HP's published `cmviewcl` examples; every field is one word, so
scripts that split on blanks (awk) read the same fields."""


def _row(indent: int, widths: Sequence[int], values: Sequence[str]) -> str:
    cells = [value.ljust(width) for width, value in zip(widths, values, strict=False)]
    return (" " * indent + "".join(cells) + "".join(values[len(widths):])).rstrip()


def cmviewcl_table(view: ClusterView, verbose: bool, level: str | None,
                   nodes: Sequence[str], packages: Sequence[str]) -> str:
    """`cmviewcl [-v] [-l package|node] [-n NODE]... [-p PKG]...` in the table format:
    each node with the packages it runs, then the packages that run nowhere."""
    if packages and level is None:
        level = "package"  # -p alone: the packages, as `cmviewcl -l package -p PKG`
    shown_nodes = [n for n in view.nodes if not nodes or n.name in nodes]
    shown = [p for p in view.packages if not packages or p.name in packages]
    lines: list[str] = []
    if level is None:
        lines += [_row(0, CLUSTER_COLUMNS, ["CLUSTER", "STATUS"]),
                  _row(0, CLUSTER_COLUMNS, [view.name, "up"]), ""]
    for node in shown_nodes if level != "package" else []:
        lines += [_row(2, NODE_COLUMNS, ["NODE", "STATUS", "STATE"]),
                  _row(2, NODE_COLUMNS, [node.name, node.status, node.state]), ""]
        if level is None:
            lines += _packages_table([p for p in shown if p.owner == node.name], verbose)
    if level == "package":
        lines += _packages_table([p for p in shown if p.owner is not None], verbose)
    unowned = [p for p in shown if p.owner is None]
    if unowned and level != "node":
        lines += ["UNOWNED_PACKAGES", "", *_packages_table(unowned, verbose)]
    return "\n".join(lines).rstrip("\n") + "\n"


def _packages_table(packages: Iterable[Package], verbose: bool) -> list[str]:
    lines: list[str] = []
    for package in packages:
        lines += [_row(4, PACKAGE_COLUMNS, ["PACKAGE", "STATUS", "STATE", "AUTO_RUN", "NODE"]),
                  _row(4, PACKAGE_COLUMNS, [package.name, package.status, package.state,
                                            package.autorun, package.owner or "unowned"]), ""]
        if verbose:
            lines += _package_details(package)
    return lines


def _package_details(package: Package) -> list[str]:
    lines = ["      Policy_Parameters:",
             _row(6, (16,), ["POLICY_NAME", "CONFIGURED_VALUE"]),
             _row(6, (16,), ["Failover", package.failover_policy]),
             _row(6, (16,), ["Failback", package.failback_policy]), "",
             "      Node_Switching_Parameters:",
             _row(6, SWITCHING_COLUMNS, ["NODE_TYPE", "STATUS", "SWITCHING", "NAME"])]
    lines += [_row(6, SWITCHING_COLUMNS, [n.node_type, n.status, "enabled", n.name,
                                          "(current)" if n.current else ""])
              for n in package.nodes]
    return [*lines, ""]


def cmviewcl_line(view: ClusterView, verbose: bool, level: str | None,
                  nodes: Sequence[str], packages: Sequence[str]) -> str:
    """`cmviewcl -f line`: one `[prefix|]attribute=value` per line; the prefix leaves out
    what the command line names (one -p PKG: no `package:PKG|`), as cmviewcl(5) says."""
    lines: list[str] = []
    if level is None and not packages and not nodes:
        lines += [f"name={view.name}", "status=up"]
    if level != "package" and not packages:
        one = nodes[0] if len(nodes) == 1 else None
        for node in (n for n in view.nodes if not nodes or n.name in nodes):
            prefix = "" if node.name == one else f"node:{node.name}|"
            lines += [f"{prefix}name={node.name}", f"{prefix}status={node.status}",
                      f"{prefix}state={node.state}"]
    if level != "node":
        one = packages[0] if len(packages) == 1 else None
        for package in (p for p in view.packages if not packages or p.name in packages):
            prefix = "" if package.name == one else f"package:{package.name}|"
            lines += _package_lines(package, prefix, verbose)
    return "".join(f"{line}\n" for line in lines)


def _package_lines(package: Package, prefix: str, verbose: bool) -> list[str]:
    lines = [f"{prefix}name={package.name}", f"{prefix}status={package.status}",
             f"{prefix}state={package.state}", f"{prefix}autorun={package.autorun}",
             f"{prefix}owner={package.owner or ''}"]
    if not verbose:
        return lines
    lines += [f"{prefix}failover_policy={package.failover_policy}",
              f"{prefix}failback_policy={package.failback_policy}"]
    for node in package.nodes:
        at = f"{prefix}node:{node.name}|"
        lines += [f"{at}name={node.name}", f"{at}status={node.status}",
                  f"{at}switching=enabled", f"{at}order={node.priority}",
                  f"{at}is_current={'yes' if node.current else 'no'}"]
    return lines


# --- lcdstatus ------------------------------------------------------------------------------

APP_OF_KIT = {"ip": "comm", "filesystem": "filesys"}
"""LifeKeeper's app= of a resource (its class); every other kit shows app=gen."""


def resource_id(resource: dict[str, Any]) -> str:
    """LifeKeeper's ID column: the address of an ip resource, the mount point of a
    filesystem, else the tag."""
    params = resource["params"]
    if resource["kit"] == "ip":
        return str(params.get("address", resource["tag"])).split("/")[0]
    if resource["kit"] == "filesystem":
        return str(params.get("mountpoint", resource["tag"]))
    return str(resource["tag"])


def _depths(hierarchy: dict[str, Any]) -> dict[str, int]:
    """How deep each resource lies below the root (a shared child: its first place)."""
    depths = {hierarchy["root"]: 0}
    for resource in hierarchy["resources"]:
        for child in resource["depends_on"]:
            depths.setdefault(child, depths[resource["tag"]] + 1)
    return depths


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(len(rows[0]) - 1)]
    return [_row(0, widths, row) for row in rows]


def lcdstatus_short(status: dict[str, Any], config: ClusterConfig, backup: bool) -> str:
    """`lcdstatus -q` (first column LOCAL: this node) or `-e` (BACKUP: the next node by
    priority after this one, dashes if none): every resource, children indented below
    their parent, then every comm path of this node."""
    local = str(status["node"])
    rows = [["BACKUP" if backup else "LOCAL", "TAG", "ID", "STATE", "PRIO", "PRIMARY"]]
    for hierarchy in status["hierarchies"]:
        order = sorted(config.hierarchy_settings(hierarchy["root"]).equivalencies,
                       key=lambda e: e.priority)
        names = [e.node for e in order] or [local]
        prio = next((str(e.priority) for e in order if e.node == local), "1" if not order
                    else "--")
        after = names[names.index(local) + 1:] if local in names else names
        first = (after[0] if after else "------") if backup else local
        depths = _depths(hierarchy)
        rows += [[first, " " * depths.get(r["tag"], 0) + r["tag"], resource_id(r),
                  r["state"], prio, names[0]] for r in hierarchy["resources"]]
    lines = ["", "Resource Hierarchy Information", "", *_columns(rows)]
    paths = [["MACHINE", "NETWORK", "ADDRESSES/DEVICE", "STATE", "PRIO"]]
    mine = _own_addresses(config, local)
    paths += [[peer["name"], path["kind"].upper(), _addresses(path["name"], mine),
               path["state"],
               str(path["priority"]) if path["kind"] != "tty" else "--"]
              for peer in status["nodes"] if not peer["local"] for path in peer["paths"]]
    lines += ["", "Communication Status Information", "", *_columns(paths)]
    return "\n".join(lines) + "\n"


def _own_addresses(config: ClusterConfig, node: str) -> set[str]:
    entry = config.node(node)
    return {a.split("/")[0] for a in entry.addresses} if entry else set()


def _addresses(path_name: str, mine: set[str]) -> str:
    """A comm path's ends, this node's first: 'tcp/198.51.100.11-198.51.100.12' seen from
    198.51.100.12 -> '198.51.100.12/198.51.100.11'."""
    ends = path_name.split("/", 1)[-1].split("-", 1)
    if len(ends) == 2 and ends[1] in mine:
        ends.reverse()
    return "/".join(ends)


def lcdstatus_detailed(status: dict[str, Any], config: ClusterConfig) -> str:
    """`lcdstatus` without -q or -e: each resource with its class, state, dependencies and
    equivalencies, then the known machines and comm paths."""
    local = str(status["node"])
    mine = _own_addresses(config, local)
    lines = ["", "Resource Hierarchy Information", ""]
    for hierarchy in status["hierarchies"]:
        order = config.hierarchy_settings(hierarchy["root"]).equivalencies
        prio = next((e.priority for e in order if e.node == local), 1)
        lines.append("ROOT OF RESOURCE HIERARCHY")
        dependents = {r["tag"]: [p["tag"] for p in hierarchy["resources"]
                                 if r["tag"] in p["depends_on"]]
                      for r in hierarchy["resources"]}
        for resource in hierarchy["resources"]:
            tag, kit = resource["tag"], resource["kit"]
            lines.append(f"{tag}: id={resource_id(resource)} app={APP_OF_KIT.get(kit, 'gen')}"
                         f" type={kit} state={resource['state']}")
            if resource["depends_on"]:
                lines.append(f"\tDepends on resources: {' '.join(resource['depends_on'])}")
            if dependents[tag]:
                lines.append(f"\tThese resources are dependent: {' '.join(dependents[tag])}")
            lines.append(f"\tLocal priority = {prio}")
            lines += [f"\tSHARED equivalency with resource {tag} on machine {e.node}, "
                      f"priority = {e.priority}" for e in order if e.node != local]
            lines.append("")
    lines += ["Communication Status Information", "",
              "\tThe following LifeKeeper machines are known:"]
    lines += [f"\tmachine={n['name']} state={n['state']}" for n in status["nodes"]]
    lines += ["", "\tThe following LifeKeeper network connections exist:"]
    lines += [f"\tto machine={peer['name']} type={path['kind'].upper()} addresses="
              f"{_addresses(path['name'], mine)} state=\"{path['state']}\" "
              f"priority={path['priority']}"
              for peer in status["nodes"] if not peer["local"] for path in peer["paths"]]
    return "\n".join(lines) + "\n"
