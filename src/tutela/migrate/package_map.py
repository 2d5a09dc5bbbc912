"""One Serviceguard package becomes one tutela hierarchy: a chain in Serviceguard's start order.

external_pre_script, then filesystems, addresses, external_script or customer commands, services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tutela.migrate.address_map import AddressMapper
from tutela.migrate.context import Context
from tutela.migrate.generic_map import GenericMapper
from tutela.migrate.scope import PackageScope
from tutela.migrate.scripts import GeneratedScript
from tutela.migrate.service_map import ServiceMapper
from tutela.migrate.sgmodel import Group, Outcome, SgPackage
from tutela.migrate.storage_map import StorageMapper
from tutela.migrate.toolkit_map import ToolkitMapper
from tutela.model.config import Equivalency, HierarchySettings, Resource

MULTI_NODE = ("multi_node", "system_multi_node")
ONE_NODE_STEPS = {
    "address": "put the address in a failover package's hierarchy of its own (with a "
               "same_node dependency on this one if it must be where an instance runs)",
    "filesystem": "if it is a cluster or network filesystem that several nodes may mount at "
                  "once, mount it from a generic resource (mount / umount) of the multi_node "
                  "hierarchy; otherwise put it in a failover package's hierarchy of its own",
}
"""What to do with a resource a multi_node hierarchy may not have (lcd/validate.py)."""
Switchback = Literal["intelligent", "automatic"]


@dataclass
class PackageResult:
    name: str
    resources: list[Resource] = field(default_factory=list)
    hierarchy: HierarchySettings | None = None
    scripts: list[GeneratedScript] = field(default_factory=list)
    dependencies: list[Group] = field(default_factory=list)

    @property
    def root(self) -> str | None:
        return self.hierarchy.root if self.hierarchy else None


class PackageMapper:
    """Maps one package; every value it read gets its report line from here or a helper."""

    def __init__(self, package: SgPackage, ctx: Context) -> None:
        self.p = package
        self.scope = PackageScope(package, ctx)
        self.storage = StorageMapper(self.scope)
        self.addresses = AddressMapper(self.scope)
        self.generic = GenericMapper(self.scope)
        self.toolkit = ToolkitMapper(self.scope)
        self.result = PackageResult(package.title, dependencies=package.dependencies)

    def run(self) -> PackageResult:
        scope = self.scope
        scope.ctx.ledger.issues(scope.section, self.p.issues)
        kind = self.p.setting("package_type", "failover")
        if self.p.name is None:
            self.not_converted("no package_name: the package is not converted",
                               "add package_name and run the import again")
        else:
            for entry in self.p.notes:
                scope.note(entry)
            scope.ctx.ledger.code(scope.section, self.p.code, "shell code of the control "
                                  "script: tutela never runs it")
            self.convert(kind)
        return self.result

    def not_converted(self, detail: str, step: str) -> None:
        for file in (self.p.file, self.p.control_file):
            if file:
                self.scope.ctx.ledger.whole_file(self.scope.section, file, Outcome.MANUAL,
                                                 detail, step)

    def convert(self, kind: str) -> None:
        """The chain, in Serviceguard's start order: each resource depends on the one before.
        A toolkit's resource (toolkit_map) comes where its module ran: after the addresses."""
        chain = [*self.generic.externals("external_pre_script", "pre"),
                 *self.one_node_resources(kind), *self.toolkit.resources(),
                 *self.generic.externals("external_script", "ext"),
                 *self.generic.customer_commands(), *ServiceMapper(self.scope).services()]
        resources = [r.model_copy(update={"depends_on": (chain[i - 1].tag,)}) if i else r
                     for i, r in enumerate(chain)]
        self.result.resources = resources
        self.result.scripts = self.generic.scripts + self.toolkit.scripts
        self.record_package_type(kind)
        self.record_rest(resources)
        settings = self.hierarchy(resources[-1].tag if resources else "", kind in MULTI_NODE)
        self.record_hierarchy(resources, settings)

    def one_node_resources(self, kind: str) -> list[Resource]:
        """Filesystems and addresses, which a multi_node hierarchy may not have: a shared
        disk's filesystem or an address in service on two nodes at once is a split brain."""
        if kind not in MULTI_NODE:
            return [*self.storage.filesystems(), *self.addresses.addresses()]
        why = (f"in a {kind} package: its hierarchy runs on several nodes at once, and "
               "tutela keeps {what} on one node at a time: not carried over")
        for group in self.p.filesystems:
            if not self.scope.empty_group(group):
                self.scope.skip_group(group, why.format(what="a filesystem"),
                                      ONE_NODE_STEPS["filesystem"])
        for group in self.p.ips:
            self.addresses.skip(group, why.format(what="an address"), ONE_NODE_STEPS["address"])
        return []

    def record_rest(self, resources: list[Resource]) -> None:
        """The lines that shape no resource of their own, once the resources exist."""
        self.storage.volume_groups()
        self.addresses.record_monitored()
        self.addresses.record_subnets()
        self.generic.record_timeouts(resources)
        self.generic.record_environment()
        self.generic.record_helpers()
        self.users()
        self.control_script_files()
        self.scope.record_variables()

    def record_package_type(self, kind: str) -> None:
        value = self.p.settings.get("package_type")
        if value is None:
            return
        if kind == "multi_node":
            self.scope.record(value, Outcome.MAPPED, "a multi_node hierarchy: an instance on "
                              "every node of its equivalencies at once, each recovered locally")
        elif kind == "system_multi_node":
            self.scope.record(value, Outcome.MAPPED, "a multi_node hierarchy, as for "
                              "multi_node: an instance on every node of its equivalencies "
                              "(node_name) at once; Serviceguard ran it on every node of the "
                              "cluster")
        elif kind != "failover":
            self.scope.record(value, Outcome.ERROR, f"unknown package_type {kind!r}; converted "
                              "as a failover package", "use failover, multi_node or "
                              "system_multi_node")
        else:
            self.scope.record(value, Outcome.MAPPED, "a hierarchy")

    def record_hierarchy(self, resources: list[Resource],
                         settings: HierarchySettings | None) -> None:
        assert self.p.name is not None
        if settings is None:
            self.scope.record(self.p.name, Outcome.MANUAL, "the package has no script, "
                              "filesystem, address or service tutela can protect: no hierarchy",
                              "create its resources by hand if it needs any")
            return
        self.result.hierarchy = settings
        multi = "multi_node " if settings.multi_node else ""
        self.scope.record(self.p.name, Outcome.MAPPED, f"{multi}hierarchy with root "
                          f"{settings.root}")
        chain = " → ".join(f"`{r.tag}`" for r in resources)
        where = (" An instance runs on every node of its equivalencies at once "
                 "(`multi_node: true`)." if settings.multi_node else "")
        self.scope.ctx.ledger.section(self.scope.section, f"Hierarchy root `{settings.root}`; "
                                      f"restored in this order: {chain}.{where}")

    # --- hierarchy settings ---------------------------------------------------------------

    def hierarchy(self, root: str, multi_node: bool) -> HierarchySettings | None:
        """The hierarchy's settings (None without a root); records every line they use.
        Its dependencies follow once every package is mapped (dependency_map)."""
        equivalencies = self.equivalencies()
        switchback, failover = self.switchback(), self.failover()
        self.failover_policy()
        if not root:
            return None
        return HierarchySettings(root=root, equivalencies=equivalencies, start_policy="priority",
                                 switchback=switchback, failover=failover,
                                 multi_node=multi_node)

    def equivalencies(self) -> tuple[Equivalency, ...]:
        """node_name order is the priority order; '*' adds the remaining cluster nodes."""
        order: list[str] = []
        record, nodes = self.scope.record, self.scope.ctx.nodes
        for value in self.p.nodes:
            node = nodes.get(value.text.strip())
            if value.text.strip() == "*":
                added = [n for n in nodes.values() if n not in order]
                order += added
                record(value, Outcome.MAPPED, "every node of the cluster in cluster-file "
                       f"order: {', '.join(added) or 'none left'}")
            elif node is None:
                record(value, Outcome.MANUAL, f"{value.text!r} is not a node of the cluster: "
                       "left out of the equivalencies", "add the node to the cluster and to "
                       "this hierarchy's equivalencies")
            elif node in order:
                record(value, Outcome.NOTHING, "node already listed")
            else:
                order.append(node)
                record(value, Outcome.MAPPED, f"equivalency: {node} priority {len(order)}")
        if not self.p.nodes and self.p.name is not None:
            record(self.p.name, Outcome.MANUAL, "no node_name: the hierarchy has no "
                   "equivalencies", "add hierarchies[ROOT].equivalencies")
        return tuple(Equivalency(node=n, priority=i) for i, n in enumerate(order, 1))

    def switchback(self) -> Switchback:
        """failback_policy: manual -> intelligent (tutela's default), automatic -> automatic."""
        value = self.p.settings.get("failback_policy")
        if value is None:
            return "intelligent"
        text = value.text.strip().lower()
        if text not in ("manual", "automatic"):
            self.scope.record(value, Outcome.ERROR, f"unknown failback_policy {value.text!r}; "
                              "switchback stays intelligent", "use manual or automatic")
            return "intelligent"
        if text == "automatic":
            self.scope.record(value, Outcome.MAPPED, "switchback: automatic (back to the "
                              "highest-priority node when it returns)")
            return "automatic"
        self.scope.record(value, Outcome.MAPPED, "switchback: intelligent (stays where it is "
                          "until you switch it over)")
        return "intelligent"

    def failover(self) -> bool:
        """auto_run (PKG_SWITCHING_ENABLED): no blocks automatic failover."""
        value = self.p.settings.get("auto_run")
        text = value.text.strip().lower() if value else "yes"
        if value is None:
            return True
        if text not in ("yes", "no"):
            self.scope.record(value, Outcome.ERROR, f"{value.text!r} is not yes or no; "
                              "failover stays enabled", "use yes or no")
            return True
        if text == "yes":
            self.scope.record(value, Outcome.MAPPED, "failover: true (automatic failover, "
                              "tutela's default)")
            return True
        self.scope.record(value, Outcome.MAPPED, "failover: false (automatic failover "
                          "blocked)", "start the hierarchy by hand: tutela restore ROOT "
                          "(Serviceguard did not start it at cluster start either)")
        return False

    def failover_policy(self) -> None:
        policy = self.p.settings.get("failover_policy")
        if policy is None:
            return
        if policy.text.strip().lower() == "configured_node":
            self.scope.record(policy, Outcome.MAPPED, "start_policy: priority; failover goes "
                              "down the equivalency priorities (node_name order)")
        else:
            self.scope.record(policy, Outcome.MANUAL, f"{policy.text}: tutela places a "
                              "hierarchy by its equivalency priorities (node_name order) only",
                              "order the node_name lines as you want nodes tried")

    # --- package lines without a resource -------------------------------------------------

    def users(self) -> None:
        for group in self.p.users:
            name = group.text("user_name") or "?"
            self.scope.record_all(list(group.values.values()), Outcome.MANUAL, "a role for "
                                  "this package only: tutela roles are cluster-wide, so "
                                  "granting it would widen the user's rights",
                                  f"if that is acceptable, add users: [{{name: {name}, role: "
                                  "operator}]")

    def control_script_files(self) -> None:
        run = self.p.settings.get("run_script")
        for key in ("run_script", "halt_script"):
            value = self.p.settings.get(key)
            if value is None:
                continue
            if key == "halt_script" and run is not None and value.text.strip() != \
                    run.text.strip():
                self.scope.record(value, Outcome.MANUAL, "a halt script other than the run "
                                  "script is not read; the run script's "
                                  "customer_defined_halt_cmds are used", "check what it does "
                                  "and add that to the remove script of the hierarchy")
            elif self.p.control_file:
                self.scope.record(value, Outcome.MAPPED, f"read as data from "
                                  f"{self.p.control_file} (never run): its arrays and customer "
                                  "commands are converted")
            else:
                self.scope.record(value, Outcome.MANUAL, "the control script is not among the "
                                  "inputs: its filesystems, addresses and service commands are "
                                  "missing", "give the control script to the import too (it "
                                  "is read, never run)")
