"""The cutover runbook: the ordered steps from a running Serviceguard cluster to tutela.

A pure generator: the imported configuration and what the import learnt of the Serviceguard
side in, Markdown out. Every step has its exact commands, in fenced blocks whose `# on HOST`
lines say where the following commands run, the check that proves it done, and the way
back to Serviceguard from there (tests/lab/test_migrate_failover.py runs its tutela lines).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from tutela.model.config import ClusterConfig, HierarchySettings

BACKUP = "/root/sg-backup"
TOKEN = "<token>"
"""Stands for the one-time token the command before it printed."""
AUTOSTART_OFF = "sed -i.sg 's/^AUTOSTART_CMCLD=.*/AUTOSTART_CMCLD=0/' \"$SGAUTOSTART\""
AUTOSTART_ON = "sed -i 's/^AUTOSTART_CMCLD=.*/AUTOSTART_CMCLD=1/' \"$SGAUTOSTART\""
SG_ENV = ". /etc/cmcluster.conf   # sets SGCONF and SGAUTOSTART ($SGCONF/cmcluster.rc)"


@dataclass(frozen=True)
class Origin:
    """What the runbook needs of the Serviceguard side that the document does not keep."""

    cluster: str
    """CLUSTER_NAME as Serviceguard knows it ('' without a cluster file)."""
    packages: dict[str, str | None] = field(default_factory=dict)
    """Every package read, in input order: its hierarchy's root, None if it makes none."""
    disk_init: str = ""
    """`tutela disk init ...` for a cluster lock LUN, '' without one."""


@dataclass(frozen=True)
class Paths:
    """Where the import wrote its files, as the runbook names them."""

    document: str
    scripts_dir: str = ""
    """'' when no wrapper script was generated."""


def runbook(config: ClusterConfig, origin: Origin, paths: Paths) -> str:
    """The whole runbook as Markdown."""
    book = _Book(config, origin, paths)
    sections = [book.header(), book.backup(), book.halt(), book.autostart(), book.install(),
                book.doctor(), book.form(), book.voter(), book.dry_run(), book.apply(),
                book.restore(), book.switchover(), book.boot(), book.rollback()]
    numbered = [s.replace("## STEP", f"## {i}.", 1) for i, s in enumerate(sections)]
    return "\n".join(numbered).rstrip("\n") + "\n"


def restore_order(hierarchies: tuple[HierarchySettings, ...]) -> list[HierarchySettings]:
    """Multi-node hierarchies first, then each after the hierarchies it depends on; input
    order otherwise. A dependency cycle (refused by validation) keeps input order."""
    pending = sorted(hierarchies, key=lambda h: not h.multi_node)
    done: list[HierarchySettings] = []
    while pending:
        ready = next((h for h in pending if all(
            d.hierarchy in {x.root for x in done} or d.hierarchy not in
            {x.root for x in pending} for d in h.dependencies)), pending[0])
        done.append(ready)
        pending.remove(ready)
    return done


def code(*blocks: tuple[str, list[str]]) -> list[str]:
    """A fenced shell block: each (host, commands) under its `# on HOST` line."""
    lines = ["```sh"]
    previous = ""
    for host, commands in blocks:
        lines += ([] if host == previous else [f"# on {host}"]) + commands
        previous = host
    return [*lines, "```", ""]


class _Book:
    """The steps of one cluster's cutover, each a Markdown section."""

    def __init__(self, config: ClusterConfig, origin: Origin, paths: Paths) -> None:
        self.config = config
        self.origin = origin
        self.paths = paths
        self.nodes = [n.name for n in config.nodes]
        self.first = self.nodes[0] if self.nodes else "<node>"
        self.packages = list(origin.packages)
        self.sg_name = origin.cluster or "<CLUSTER_NAME>"
        self.order = restore_order(config.hierarchies)

    def _step(self, title: str, body: list[str], check: list[str], rollback: str) -> str:
        return "\n".join([f"## STEP {title}", "", *body, f"**Check:** {' '.join(check)}", "",
                          f"**Rollback:** {rollback}", ""])

    def _every_node(self, *commands: str) -> list[str]:
        return code(*((node, list(commands)) for node in self.nodes))

    # --- the steps ------------------------------------------------------------------------

    def header(self) -> str:
        config = self.config
        lines = [f"# Cutover runbook: Serviceguard cluster `{self.sg_name}` to tutela "
                 f"cluster `{config.name}`", "",
                 "Written by `tutela migrate serviceguard` from the files it read. Work "
                 "through the report's manual steps first, and copy "
                 f"`{self.paths.document}`" + (f" and `{self.paths.scripts_dir}/` (to the "
                 "same path on every node)" if self.paths.scripts_dir else "")
                 + f" to {self.first}. Take the steps in order: each ends with the check "
                 "that proves it done and, should it fail, the way back to Serviceguard "
                 "from there. `# on HOST` says where the lines below it run; "
                 f"`{TOKEN}` stands for the token the command before it printed.", "",
                 "| node | addresses |", "|---|---|"]
        lines += [f"| {n.name} | {', '.join(n.addresses) or '(none in the input)'} |"
                  for n in config.nodes]
        lines += ["", "| package | hierarchy (root) |", "|---|---|"]
        lines += [f"| {package} | {root or '(none: see the report)'} |"
                  for package, root in self.origin.packages.items()]
        return "\n".join([*lines, ""])

    def backup(self) -> str:
        commands = [f"mkdir -p {BACKUP}", f"cmgetconf -c {shlex.quote(self.sg_name)} "
                    f"{self._cluster_backup}"]
        commands += [f"cmgetconf -p {shlex.quote(p)} {shlex.quote(f'{BACKUP}/{p}.conf')}"
                     for p in self.packages]
        body = ["While Serviceguard still runs: its configuration as it is applied, and "
                "each node's `$SGCONF` (legacy control scripts and external scripts live "
                "there).", "", *code((self.first, commands)),
                *self._every_node(SG_ENV, f"mkdir -p {BACKUP}",
                                  f"tar czf {BACKUP}/sgconf-$(hostname).tar.gz \"$SGCONF\"")]
        check = [f"`ls -l {BACKUP}` on {self.first} lists "
                 + ", ".join(f"`{f}`" for f in [f"{self.sg_name}.ascii",
                                                 *(f"{p}.conf" for p in self.packages)])
                 + " (not empty), and every node has its `sgconf-HOST.tar.gz`."]
        return self._step("Back up the Serviceguard configuration", body, check,
                          "nothing changed yet.")

    def halt(self) -> str:
        commands = [f"cmhaltpkg {shlex.quote(p)}" for p in reversed(self._packages_in_order())]
        body = ["The services stop here: the outage starts. Packages halt in reverse "
                "order, dependents before what they need.", "",
                *code((self.first, [*commands, "cmhaltcl -f", "cmviewcl"]))]
        check = ["`cmviewcl` shows the cluster `down` and every node `down` "
                 f"({', '.join(self.nodes)}); no package address answers `ping`."]
        return self._step("Halt the packages and the cluster", body, check,
                          self._rollback("cluster"))

    def autostart(self) -> str:
        body = ["So that a reboot does not bring Serviceguard back beside tutela "
                "(`$SGAUTOSTART` is `$SGCONF/cmcluster.rc` on Linux; on HP-UX the flag is in "
                "`/etc/rc.config.d/cmcluster`).", "",
                *self._every_node(SG_ENV, AUTOSTART_OFF,
                                  "grep '^AUTOSTART_CMCLD=' \"$SGAUTOSTART\"")]
        check = ["the `grep` prints `AUTOSTART_CMCLD=0` on every node."]
        return self._step("Disable Serviceguard's start at boot", body, check,
                          self._rollback("autostart"))

    def install(self) -> str:
        body = ["The Debian package (docs/install.md); its units are installed, not "
                "enabled.", "",
                *self._every_node("apt-get install ./tutela_VERSION-1_amd64.deb",
                                  "dpkg -s tutela | grep '^Status'")]
        check = ["`Status: install ok installed` on every node."]
        return self._step("Install tutela", body, check,
                          self._rollback("autostart"))

    def doctor(self) -> str:
        body = ["Name resolution, ports, watchdog, kits' programs, shared disks: what "
                "to fix before the node takes part.", "", *self._every_node("tutela doctor")]
        check = ["no line marked as a problem on any node (fix each as it says, then run "
                 "it again)."]
        return self._step("Check each node", body, check, self._rollback("autostart"))

    def form(self) -> str:
        first = self.config.nodes[0] if self.config.nodes else None
        where = first.addresses[0].split("/")[0] if first and first.addresses else \
            f"<address of {self.first}>"
        blocks = [(self.first, [f"tutela init --cluster {self.config.name} --node "
                                f"{self.first}{self._addresses(self.first)}", "tutela start"])]
        for node in self.nodes[1:]:
            blocks += [(self.first, ["tutela node token"]),
                       (node, [f"tutela join {where} --token {TOKEN} --node {node}"
                               f"{self._addresses(node)}", "tutela start"])]
        body = ["The nodes, with the names and heartbeat addresses the document uses, one "
                "at a time: each `tutela start` returns once the nodes before it hear it.",
                "", *code(*blocks), *code((self.first, ["tutela status"]))]
        check = [f"`tutela status` lists {', '.join(self.nodes)} ALIVE on every comm path."]
        return self._step("Form the tutela cluster", body, check, self._rollback("tutela"))

    def voter(self) -> str:
        witnesses = [w.address for w in self.config.witnesses]
        if witnesses:
            blocks = []
            for address in witnesses:
                host = address.rsplit(":", 1)[0]
                blocks += [(host, ["systemctl enable --now tutela-witness",
                                   "tutela-witness token"]),
                           (self.first, [f"tutela witness add {address} --token {TOKEN}"])]
            body = ["The tutela-witness replaces the quorum server, on its host, with the "
                    "tutela package installed there too (it listens on 0.0.0.0:7366; to "
                    "listen elsewhere, set `LISTEN_OPTIONS` in /etc/tutela/witness.env "
                    "first).", "",
                    *code(*blocks)]
            check = ["`tutela status` shows " + ", ".join(f"`{w}`" for w in witnesses)
                     + " ALIVE on every node."]
            title = "Enrol the witness"
        elif self.origin.disk_init:
            body = ["The cluster lock LUN becomes the disk voter. First check what the "
                    "report says (the same LUN on every node, its command timeout); the "
                    "command formats the lock area after asking.", "",
                    *code((self.first, [self.origin.disk_init]))]
            check = ["`tutela disk show` on every node shows the disk voter and its "
                     "device; `tutela status` counts its vote."]
            title = "Make the lock LUN the disk voter"
        else:
            body = ["The document has no witness, and the import found no lock LUN the "
                    "disk voter could use. " + (
                        "With an even number of nodes add a tie-breaker here, as the "
                        "report's manual step says: a tutela-witness on a third machine "
                        "(`tutela witness add HOST:7366 --token T`), or a small LUN of its own "
                        "for the disk voter (`tutela disk init /dev/disk/by-id/LUN`)."
                        if len(self.nodes) % 2 == 0 else
                        f"With {len(self.nodes)} nodes a majority needs none."), ""]
            check = ["`tutela status` shows every voter ALIVE."]
            title = "Tie-breaker"
        return self._step(title, body, check, self._rollback("tutela"))

    def dry_run(self) -> str:
        body = ["Every check of the document against the formed cluster, nothing changed.",
                "", *code((self.first, [f"tutela apply -f {self.paths.document} "
                                        "--dry-run"]))]
        check = ["it ends with `nothing was changed` and lists no change to `nodes`, "
                 "`comm_paths` or `witnesses`: forming the cluster made them as the document "
                 "says."]
        return self._step("Check the document", body, check, self._rollback("tutela"))

    def apply(self) -> str:
        body = ["Stores the resources and hierarchies, all out of service.", "",
                *code((self.first, [f"tutela apply -f {self.paths.document}",
                                    "tutela status"]))]
        check = ["`tutela status` on every node shows the same generation and each "
                 "hierarchy's resources OSU."]
        return self._step("Apply the document", body, check, self._rollback("tutela"))

    def restore(self) -> str:
        blocks: list[tuple[str, list[str]]] = []
        checks = []
        for hierarchy in self.order:
            node = _first_node(hierarchy, self.first)
            blocks.append((node, [f"tutela restore {hierarchy.root}"]))
            checks.append(f"`{hierarchy.root}` ISP on " + (
                "every node of its equivalencies" if hierarchy.multi_node else node))
        body = ["As `cmrunpkg` did, in dependency order: multi-node hierarchies first, each "
                "hierarchy after those it depends on.", "",
                *(code(*blocks, (self.first, ["tutela status"])) if blocks else [])]
        check = ["`tutela status`: " + ("; ".join(checks) or "no hierarchy to restore")
                 + ". Then test each application from a client."]
        return self._step("Restore each hierarchy", body, check,
                          self._rollback("hierarchies"))

    def switchover(self) -> str:
        blocks: list[tuple[str, list[str]]] = []
        for hierarchy in self.order:
            if hierarchy.multi_node or not hierarchy.equivalencies or _follows(hierarchy,
                                                                              self.order):
                continue
            apart = _apart_from(hierarchy, self.order)
            nodes = [e.node for e in sorted(hierarchy.equivalencies, key=lambda e: e.priority)
                     if e.node not in apart]
            moves = [*nodes[1:], nodes[0]] if len(nodes) > 1 else []
            blocks += [(self.first, [f"tutela switchover {hierarchy.root} --to {n}",
                                     "tutela status"]) for n in moves]
        body = ["Each hierarchy to every node of its equivalencies in turn, and back to its "
                "first (multi-node hierarchies run everywhere already; a hierarchy with a "
                "`same_node` dependency moves with what it needs, one with a "
                "`different_node` dependency, either way round, skips the node where the other "
                "runs).", "",
                *(code(*blocks) if blocks else ["No hierarchy has a second node.", ""])]
        check = ["after each switchover `tutela status` shows the hierarchy ISP on the "
                 "node named, and its application answers clients there."]
        return self._step("Test a switchover to every node", body, check,
                          self._rollback("hierarchies"))

    def boot(self) -> str:
        body = ["tutela now protects the services; start it at boot in Serviceguard's "
                "place.", "", *self._every_node("systemctl enable tutelad",
                                                "systemctl is-enabled tutelad")]
        check = ["`enabled` on every node."]
        return self._step("Start tutela at boot", body, check,
                          self._rollback("boot"))

    # --- the way back ---------------------------------------------------------------------

    @property
    def _cluster_backup(self) -> str:
        return shlex.quote(f"{BACKUP}/{self.sg_name}.ascii")

    def _addresses(self, name: str) -> str:
        node = next(n for n in self.config.nodes if n.name == name)
        return "".join(f" --address {a}" for a in node.addresses)

    def _rollback(self, stage: str) -> str:
        return f"from {ROLLBACK_TITLES[stage].split('.')[0]} on (below)."

    def rollback(self) -> str:
        """The way back from each stage, latest first: each undoes its stage, then goes on
        as the one before it."""
        out = ["## Rollback to Serviceguard", "",
               "From the stage a failed check left you in, take its steps and those of every "
               "stage below it, in order.", ""]
        for stage, title in ROLLBACK_TITLES.items():
            out += [f"### {title}", "", ROLLBACK_WHY[stage], "",
                    *code(*self._undo(stage))]
        return "\n".join(out)

    def _undo(self, stage: str) -> list[tuple[str, list[str]]]:
        if stage == "boot":
            return [(node, ["systemctl disable tutelad"]) for node in self.nodes]
        if stage == "hierarchies":
            return [(self.first, [f"tutela remove {h.root}" for h in reversed(self.order)]
                     + ["tutela status"])]
        if stage == "tutela":
            return [(node, ["tutela stop"]) for node in self.nodes]
        if stage == "autostart":
            return [(node, [SG_ENV, AUTOSTART_ON, "grep '^AUTOSTART_CMCLD=' \"$SGAUTOSTART\""])
                    for node in self.nodes]
        restart = [f"cmrunpkg {shlex.quote(p)} && cmmodpkg -e {shlex.quote(p)}"
                   for p in self._packages_in_order()]
        relock = [f"cmapplyconf -C {self._cluster_backup}   # rewrites the lock "
                  "LUN's area, which tutela disk init formatted"] if self.origin.disk_init \
            else []
        return [(self.first, [*relock, "cmruncl", "cmviewcl -v", "# each package it shows down "
                              "(auto_run ones start with the cluster):", *restart,
                              "cmviewcl -v"])]

    def _packages_in_order(self) -> list[str]:
        """The packages in restore order (those without a hierarchy first, as read)."""
        rank = {h.root: i for i, h in enumerate(self.order)}
        return sorted(self.packages, key=lambda p: rank.get(self.origin.packages[p] or "", -1))


ROLLBACK_TITLES = {
    "boot": "R1. tutela starts at boot",
    "hierarchies": "R2. Hierarchies restored",
    "tutela": "R3. tutela runs",
    "autostart": "R4. Serviceguard's start at boot disabled",
    "cluster": "R5. Serviceguard halted",
}
ROLLBACK_WHY = {
    "boot": "Disable tutelad's unit on every node.",
    "hierarchies": "Take every hierarchy out of service, dependents first; `tutela status` "
                   "shows every resource OSU.",
    "tutela": "Stop tutelad on every node (nothing is in service any more). tutela stays "
              "installed: its units are not enabled, and it never starts by itself.",
    "autostart": "Give Serviceguard its start at boot back; the `grep` prints "
                 "`AUTOSTART_CMCLD=1` on every node.",
    "cluster": "Start Serviceguard and its packages in dependency order; `cmviewcl -v` shows "
               "the cluster, every node and every package `up`.",
}


def _first_node(hierarchy: HierarchySettings, default: str) -> str:
    """The node a fresh restore starts it on: its first priority."""
    if not hierarchy.equivalencies:
        return default
    return min(hierarchy.equivalencies, key=lambda e: e.priority).node


def _apart_from(hierarchy: HierarchySettings, order: list[HierarchySettings]) -> set[str]:
    """The nodes a different_node dependency keeps it off, either way round: where the
    other hierarchy was restored (each switchover test brings a hierarchy back there)."""
    clustered = [h for h in order if not h.multi_node]
    needed = {d.hierarchy for d in hierarchy.dependencies if d.location == "different_node"}
    return {_first_node(other, "") for other in clustered if other.root in needed or any(
        d.location == "different_node" and d.hierarchy == hierarchy.root
        for d in other.dependencies)}


def _follows(hierarchy: HierarchySettings, order: list[HierarchySettings]) -> bool:
    """It has a same_node dependency on a hierarchy that moves (not a multi-node one)."""
    moving = {h.root for h in order if not h.multi_node}
    return any(d.location == "same_node" and d.hierarchy in moving
               for d in hierarchy.dependencies)
