"""The daemon's operations: each control request becomes an engine call or a config change.

A configuration change is validated, checked against what is in service, committed to the
LCD as one transaction and only then handed to the engine; a refused change changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tutela.daemon import doctor
from tutela.daemon.cluster import Cluster, ConfigChange, node_names
from tutela.daemon.etcd_leases import arbiter_status
from tutela.daemon.join import JoinService, Tokens
from tutela.daemon.ownership import PeerDied
from tutela.daemon.watchdog import node_watchdog
from tutela.engine.cluster_view import IN_SERVICE
from tutela.engine.dependency_status import dependency_status
from tutela.engine.node import NodeEngine, OperationError
from tutela.journal.events import Emitter, no_events, recorded
from tutela.kits.registry import get_kit
from tutela.lcd.document import diff, from_yaml, keep_unexported, parse_config, to_yaml
from tutela.lcd.keypath import WRITTEN_BY_NODES, set_value
from tutela.lcd.lease import fencing_problem
from tutela.lcd.store import Lcd
from tutela.lcm import kinds
from tutela.lcm.frame import Envelope
from tutela.lcm.join import Grant
from tutela.lcm.messenger import PeerUnreachable
from tutela.lcm.paths import path_name, paths_between, split_host_port
from tutela.lcm.ticks import next_tick
from tutela.model.config import ClusterConfig, CommPath, Maintenance, Node, Resource
from tutela.model.errors import ConfigError, Problem
from tutela.model.hierarchy import Hierarchy, hierarchy_of
from tutela.witness.enroll import EnrolmentFailed, enroll

log = logging.getLogger("tutela.daemon")
REMOTE_ACTION_TIMEOUT = 600.0
"""Seconds an action waits for another node, unless the request brings its own deadline."""
ANSWER_MARGIN = 2.0
"""Seconds before the CLI's deadline (the request's `timeout`) by which the daemon answers
with what it knows, so that the CLI hears it before it gives up."""
SETTLE_WAIT = 30.0
"""Seconds a failed switchover waits, within its deadline, to see where the hierarchy
runs now: the old owner takes it back after its handover grace, or the next node does."""
DEFAULT_TOKEN_TTL = 600.0
MAINTENANCE_RETRY_FIRST = 1.0
MAINTENANCE_RETRY_MAX = 30.0
"""Seconds between attempts to clear this node's maintenance record: 1, 2, 4 ... 30."""
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class SwitchoverFailed(OperationError):
    """The hierarchy did not reach the switchover's target; the message says why and where
    it runs now (or that it runs nowhere, and why)."""


class MaintenanceRefused(OperationError):
    """A maintenance stop that could not tell the other nodes: nothing was changed."""


class Service:
    def __init__(self, lcd: Lcd, engine: NodeEngine, cluster: Cluster) -> None:
        self.lcd = lcd
        self.engine = engine
        self.cluster = cluster
        self.tokens = Tokens({})
        self.stopping = asyncio.Event()
        self.leave_resources = False
        self._entering_maintenance = False
        self._config_lock = asyncio.Lock()
        self.journal: Emitter = no_events
        self.handlers: dict[str, Handler] = {
            "ping": self.ping,
            "status": self.status,
            "resource.create": self.resource_create,
            "resource.delete": self.resource_delete,
            "dependency.add": self.dependency_add,
            "dependency.remove": self.dependency_remove,
            "restore": self.restore,
            "remove": self.remove,
            "export": self.export,
            "apply": self.apply,
            "config.set": self.config_set,
            "stop": self.stop,
            "node.token": self.node_token,
            "node.remove": self.node_remove,
            "node.failover": self.node_failover,
            "path.add": self.path_add,
            "path.remove": self.path_remove,
            "switchover": self.switchover,
            "hierarchy.extend": self.hierarchy_extend,
            "hierarchy.unextend": self.hierarchy_unextend,
            "witness.add": self.witness_add,
            "witness.remove": self.witness_remove,
            "cluster.rotate_key": self.rotate_key,
        }
        cluster.messenger.handle(kinds.OP_RESTORE, self._remote_restore)
        cluster.messenger.handle(kinds.OP_REMOVE, self._remote_remove)
        cluster.messenger.handle(kinds.HIERARCHY_CHECK, self._hierarchy_check)
        doctor.register(self)  # `tutela doctor` and the peers' doctor.facts
        cluster.messenger.on_join = JoinService(
            self.tokens, self._admit, lambda: cluster.messenger.counters.count("bad-mac")
        ).handle

    async def ping(self, _: dict[str, Any]) -> dict[str, Any]:
        # The generation lets the CLI tell, should this daemon die in the middle of a
        # change, whether the change committed.
        return {"node": self.lcd.node, "pid": os.getpid(), "generation": self.lcd.generation()}

    async def status(self, _: dict[str, Any]) -> dict[str, Any]:
        config, states = self.engine.config, self.engine.states
        view = self.cluster.view()
        heartbeats = self.cluster.messenger.heartbeats
        elsewhere = [(n, heartbeats[n["name"]][1].states if n["name"] in heartbeats else {})
                     for n in view["nodes"] if not n["local"]]  # no witnesses
        ownership = self.cluster.ownership.report()  # failover holds, why stuck
        snapshot = self.cluster.snapshot()  # where the hierarchies depended on are up
        instances = self.cluster.multinode.report()  # multi-node hierarchies
        hierarchies = []
        for hierarchy in self.engine.hierarchies:
            resources = []
            candidates = {e.node for e in config.hierarchy_settings(hierarchy.root)
                          .equivalencies}
            for tag in _tree_order(hierarchy.root, hierarchy.children):
                resource = config.resource(tag)
                assert resource is not None
                state = states[tag]
                resources.append({
                    "tag": tag, "kit": resource.kit, "state": state.state.value,
                    "reason": state.reason, "since": state.since,
                    "depends_on": list(resource.depends_on), "params": resource.params,
                    "elsewhere": _elsewhere(tag, elsewhere, candidates),
                })
            hierarchies.append({"root": hierarchy.root,
                                "state": states[hierarchy.root].state.value,
                                "resources": resources,
                                "dependencies": dependency_status(config, hierarchy.root,
                                                                  snapshot),
                                "ownership": ownership.get(hierarchy.root),
                                "instances": instances.get(hierarchy.root)})
        return {"cluster": config.name, "node": self.lcd.node,
                "generation": self.lcd.generation(), "daemon_pid": os.getpid(),
                "quorum": config.settings.quorum, **view,
                **(await arbiter_status(self.cluster.leases.etcd)),
                "hierarchies": hierarchies}

    async def resource_create(self, request: dict[str, Any]) -> dict[str, Any]:
        tag = str(request.get("tag", ""))
        entry = {"tag": tag, "kit": request.get("kit"), "params": request.get("params", {}),
                 "depends_on": request.get("depends_on", [])}
        for option in ("check_interval", "protected", "recovery", "timeouts"):
            if request.get(option) is not None:
                entry[option] = request[option]

        def add(data: dict[str, Any]) -> None:
            if any(r["tag"] == tag for r in data["resources"]):
                raise ConfigError([Problem(
                    "tag", f"resource {tag!r} exists already",
                    "choose another tag, or 'tutela resource delete' the old one first")])
            data["resources"].append(entry)

        result = await self._change(f"created resource {tag}", add)
        if request.get("restore"):
            await self.engine.restore(tag)
        return result

    async def resource_delete(self, request: dict[str, Any]) -> dict[str, Any]:
        tag = str(request["tag"])

        def delete(data: dict[str, Any]) -> None:
            _find(data, tag)
            parents = [r["tag"] for r in data["resources"] if tag in r.get("depends_on", ())]
            if parents:
                raise ConfigError([Problem(
                    "tag", f"{tag!r} is needed by {', '.join(parents)}",
                    f"remove the dependencies first: tutela dependency remove {parents[0]} {tag}")])
            data["resources"] = [r for r in data["resources"] if r["tag"] != tag]
            data["hierarchies"] = [h for h in data["hierarchies"] if h["root"] != tag]

        return await self._change(f"deleted resource {tag}", delete)

    async def dependency_add(self, request: dict[str, Any]) -> dict[str, Any]:
        parent, child = str(request["parent"]), str(request["child"])

        def add(data: dict[str, Any]) -> None:
            _find(data, child, "child")
            entry = _find(data, parent, "parent")
            if child in entry["depends_on"]:
                raise ConfigError([Problem("child", f"{parent} already depends on {child}",
                                           "nothing to do")])
            entry["depends_on"] = [*entry["depends_on"], child]
            # the child's hierarchy settings go: it is no longer the root of a hierarchy
            data["hierarchies"] = [h for h in data["hierarchies"] if h["root"] != child]

        return await self._change(f"{parent} depends on {child}", add)

    async def dependency_remove(self, request: dict[str, Any]) -> dict[str, Any]:
        parent, child = str(request["parent"]), str(request["child"])

        def remove(data: dict[str, Any]) -> None:
            entry = _find(data, parent, "parent")
            if child not in entry["depends_on"]:
                raise ConfigError([Problem("child", f"{parent} does not depend on {child}",
                                           f"see: tutela status ({parent} depends on "
                                           f"{', '.join(entry['depends_on']) or 'nothing'})")])
            entry["depends_on"] = [c for c in entry["depends_on"] if c != child]

        return await self._change(f"{parent} no longer depends on {child}", remove)

    async def restore(self, request: dict[str, Any]) -> dict[str, Any]:
        root = self._clustered_root(str(request["tag"]), multi_node=True)
        on = request.get("on")
        if root is not None and on is not None and not self.engine.config.hierarchy_settings(
                root).multi_node:
            return await self._restore_on(root, str(on), _deadline(request))
        if root is not None:
            return await self._set_target(root, "in_service", _deadline(request))
        if request.get("on") not in (None, self.lcd.node):
            return await self._forward(str(request["on"]), "op.restore", request)
        with recorded(self.journal, "restore", str(request["tag"]), "asked: tutela restore"):
            plan = await self.engine.restore(str(request["tag"]))
        return {"node": self.lcd.node, "restored": list(plan.tags)}

    async def remove(self, request: dict[str, Any]) -> dict[str, Any]:
        root = self._clustered_root(str(request["tag"]), multi_node=True)
        if root is not None:
            return await self._set_target(root, "out_of_service", _deadline(request))
        if request.get("on") not in (None, self.lcd.node):
            return await self._forward(str(request["on"]), "op.remove", request)
        with recorded(self.journal, "remove", str(request["tag"]), "asked: tutela remove"):
            plan = await self.engine.remove(str(request["tag"]))
        return {"node": self.lcd.node, "removed": list(plan.tags)}

    def _clustered_root(self, tag: str, multi_node: bool = False) -> str | None:
        """The root of TAG's hierarchy if that hierarchy runs under a lease (or, with
        `multi_node`, is a multi-node hierarchy with equivalencies), else None."""
        hierarchy = hierarchy_of(self.engine.hierarchies, tag)
        if hierarchy is None:
            return None
        settings = self.engine.config.hierarchy_settings(hierarchy.root)
        managed = settings.clustered or (
            multi_node and settings.multi_node and bool(settings.equivalencies))
        return hierarchy.root if managed else None

    async def _set_target(self, root: str, target: str, deadline: float) -> dict[str, Any]:
        """A clustered or multi-node hierarchy: say where the cluster should keep it, and
        wait for it.

        An administrator's restore (or remove) also clears every node's failure mark for
        it, so that each node is a candidate again.
        """
        multi_node = self.engine.config.hierarchy_settings(root).multi_node
        driver = self.cluster.multinode if multi_node else self.cluster.ownership
        driver.forget_failure(root)
        await self.cluster.ask_peers("multinode.forget" if multi_node else "ownership.forget",
                                     {"root": root})
        if self.engine.config.hierarchy_settings(root).target != target:
            await self._change(f"{root} {target.replace('_', ' ')}",
                               lambda data: _settings(data, root).update(target=target))
        wanted = target == "in_service"
        where = self._instances_where if multi_node else self.cluster.runs
        while ((owner := where(root)) is None) == wanted:  # wanted: until it runs somewhere
            if asyncio.get_running_loop().time() > deadline:
                raise OperationError(f"{root} did not reach {target} in time; see tutela log")
            await asyncio.sleep(0.1)  # polling the cluster view until it shows the change
        key = "restored" if wanted else "removed"
        return {"node": owner or "-", key: [root]}

    async def _restore_on(self, root: str, node: str, deadline: float) -> dict[str, Any]:
        """`tutela restore TAG --on NODE` of a clustered hierarchy (Serviceguard's `cmrunpkg
        -n NODE`): in service on NODE itself, not where the priorities would put it. Refused
        when NODE may not run it or it runs elsewhere already. The target is set first, then
        NODE takes it at once, within the grace the other nodes leave a hierarchy that has
        just become vacant; should one of them win the lease all the same, it is switched
        over to NODE."""
        settings = self.engine.config.hierarchy_settings(root)
        if settings.priority_of(node) is None:
            raise ConfigError([Problem("--on", f"{node} is not in {root}'s equivalencies, so "
                                       "it may not run it", f"tutela hierarchy extend {root} "
                                       f"--to {node}")])
        owner = self.cluster.runs(root)
        if owner == node:
            return {"node": node, "restored": []}
        if owner is not None:
            raise ConfigError([Problem("tag", f"{root} runs on {owner} already",
                                       f"move it: tutela switchover {root} --to {node}")])
        self.cluster.ownership.forget_failure(root)
        await self.cluster.ask_peers("ownership.forget", {"root": root})
        if settings.target != "in_service":
            await self._change(f"{root} in service on {node}",
                               lambda data: _settings(data, root).update(target="in_service"))
        try:
            await self._on_node(node, "ownership.take", {"root": root}, deadline)
        except OperationError as error:
            if self.cluster.ownership.owner(root) in (None, node):
                raise
            log.info("%s: another node took it before %s (%s): switching it over", root,
                     node, error)
            return await self.switchover({"tag": root, "to": node, "timeout": deadline
                                          - asyncio.get_running_loop().time()})
        return {"node": node, "restored": [root]}

    def _instances_where(self, root: str) -> str | None:
        """A multi-node hierarchy: the nodes with an instance in service ("node1, node2")
        once every node that should run one does; None while none runs, or while a node
        that should run one does not yet."""
        instances = self.cluster.multinode.report().get(root)
        if instances is None:
            return None
        nodes = instances["nodes"]
        running = [n for n, there in nodes.items() if there["state"] in ("ISP", "ISU")]
        settled = all(n in running for n, there in nodes.items() if there["wanted"])
        return ", ".join(running) if running and settled else None

    async def switchover(self, request: dict[str, Any]) -> dict[str, Any]:
        root = self._clustered_root(str(request["tag"]))
        target = str(request["to"])
        self._refuse_multi_node_switchover(str(request["tag"]))
        if root is None:
            raise ConfigError([Problem("tag", f"{request['tag']!r} is not in a hierarchy "
                                       "with equivalencies", "extend it first: tutela "
                                       "hierarchy extend TAG --to NODE --priority N")])
        if self.engine.config.hierarchy_settings(root).priority_of(target) is None:
            raise ConfigError([Problem("--to", f"{target} is not in {root}'s equivalencies",
                                       f"tutela hierarchy extend {root} --to {target}")])
        owner = self.cluster.ownership.owner(root)
        if owner == target:
            return {"node": target, "switched": [], "note": "already there"}
        deadline = _deadline(request)
        try:
            if owner is not None:
                await self._on_node(owner, "ownership.give", {"root": root}, deadline)
            await self._on_node(target, "ownership.take", {"root": root}, deadline)
        except OperationError as error:
            log.warning("switchover of %s to %s failed: %s", root, target, error)
            if isinstance(error, PeerDied) and owner == self.lcd.node:
                self.cluster.ownership.end_handover(root)
            where = await self._where_now(root, deadline)
            raise SwitchoverFailed(f"{root} did not move to {target}: {error}; "
                                   f"{where}") from None
        away = self.cluster.ownership.maintained().get(root)
        if away is not None and away != target:
            await self._confirmed_takeover(root, away, target)
        return {"node": target, "switched": [root]}

    def _refuse_multi_node_switchover(self, tag: str) -> None:
        hierarchy = hierarchy_of(self.engine.hierarchies, tag)
        if hierarchy is None or not self.engine.config.hierarchy_settings(
                hierarchy.root).multi_node:
            return
        root = hierarchy.root
        raise ConfigError([Problem(
            "tag", f"{root} is a multi-node hierarchy: it runs on every node of its "
            "equivalencies at once (or on max_instances of them), so there is nothing to "
            "switch over", f"to stop its instance on one node: tutela hierarchy unextend "
            f"{root} NODE; to change where they run: hierarchies.{root}.max_instances or "
            "the equivalencies' priorities (tutela config set)")])

    async def _confirmed_takeover(self, root: str, away: str, target: str) -> None:
        """A switchover of a hierarchy that `away`'s maintenance stop left in service is the
        administrator's word that it no longer runs there: off `away`'s record, so that
        `away`, when it starts, does not take it for its own."""
        log.warning("%s: taken over by %s on the administrator's word, while %s was in "
                    "maintenance", root, target, away)

        def confirm(data: dict[str, Any]) -> None:
            entry = _node_entry(data, away)
            record = entry.get("maintenance")
            if record is None:
                return
            left = [r for r in record["hierarchies"] if r != root]
            entry["maintenance"] = {**record, "hierarchies": left} if left else None

        summary = f"{root} taken over by {target} while {away} is in maintenance"
        try:
            await self._change(summary, confirm)
        except OperationError as error:
            # The takeover won its lease from a majority of the voters; the record may lack
            # a majority of the nodes (two nodes, one of them gone): it goes all the same.
            log.warning("%s: %s; changing the record without the configuration lease", root,
                        error)
            await self._change(summary, confirm, force=True)

    async def _where_now(self, root: str, deadline: float) -> str:
        """Where a hierarchy runs after a failed switchover, waiting a while (within the
        deadline) for a node to take it back; or that it runs nowhere, and why."""
        loop = asyncio.get_running_loop()
        until = min(deadline, loop.time() + SETTLE_WAIT)
        while (owner := self.cluster.runs(root)) is None and loop.time() < until:
            await asyncio.sleep(0.1)  # polling the cluster view until it shows an owner
        if owner is not None:
            return f"it runs on {owner} now"
        settings = self.engine.config.hierarchy_settings(root)
        alive = [e.node for e in settings.equivalencies
                 if e.node == self.lcd.node
                 or self.cluster.messenger.detector.node_state(e.node) == "ALIVE"]
        if not alive:
            return "it runs nowhere now: no node it may run on is alive"
        return (f"it runs nowhere yet: {' or '.join(alive)} may still take it (a restore "
                "may be under way); see 'tutela status' and 'tutela log'")

    async def _on_node(self, node: str, kind: str, payload: dict[str, Any],
                       deadline: float) -> dict[str, Any]:
        """Run an ownership or check handler on `node`: OperationError if it fails, does
        not answer by `deadline`, or is declared DEAD first (PeerDied)."""
        if node == self.lcd.node:
            handler = {"ownership.give": self.cluster.ownership.give,
                       "ownership.take": self.cluster.ownership.take,
                       "hierarchy.check": self._check_hierarchy_here}[kind]
            return await handler(str(payload["root"]))
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            return await self.cluster.ownership.while_alive(node, self.cluster.messenger.request(
                node, kind, payload, timeout=timeout))
        except PeerUnreachable as error:
            raise OperationError(str(error)) from None

    async def _forward(self, node: str, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        if node not in {n.name for n in self.engine.config.nodes}:
            raise ConfigError([Problem("--on", f"no node {node!r} in this cluster",
                                       "see the nodes in 'tutela status'")])
        timeout = _deadline(request) - asyncio.get_running_loop().time()
        try:
            return await self.cluster.ownership.while_alive(node, self.cluster.messenger.request(
                node, kind, {"tag": request["tag"]}, timeout=timeout))
        except PeerUnreachable as error:
            raise OperationError(str(error)) from None

    async def _remote_restore(self, envelope: Envelope) -> dict[str, Any]:
        return await self.restore({"tag": envelope.payload["tag"]})

    async def _remote_remove(self, envelope: Envelope) -> dict[str, Any]:
        return await self.remove({"tag": envelope.payload["tag"]})

    # --- witnesses ------------------------------------------------------------------

    async def witness_add(self, request: dict[str, Any]) -> dict[str, Any]:
        """Enrol this cluster at a witness with its one-time token, then make it a voter."""
        address = str(request["address"])
        host, port = split_host_port(address)
        configured = any(w.address == address for w in self.engine.config.witnesses)
        self.cluster.keys.check_settled(f"the witness at {address} cannot be added")
        try:
            await asyncio.to_thread(
                enroll, host, port, str(request["token"]), self.engine.config.name,
                self.lcd.cluster_key, self.lcd.node, timing=self.cluster.leases.timing)
        except EnrolmentFailed as error:
            raise OperationError(f"the witness at {address} did not take this cluster: "
                                 f"{error}") from None
        if configured:  # came in by `apply` (or a migration): enrolling was what it lacked
            return {"summary": f"witness {address} enrolled (it was configured already)",
                    "generation": self.lcd.generation()}
        return await self._change(f"witness {address} added",
                                  lambda data: data["witnesses"].append({"address": address}))

    async def witness_remove(self, request: dict[str, Any]) -> dict[str, Any]:
        address = str(request["address"])

        def remove(data: dict[str, Any]) -> None:
            kept = [w for w in data["witnesses"] if w["address"] != address]
            if len(kept) == len(data["witnesses"]):
                raise ConfigError([Problem("address", f"{address} is no witness of this "
                                           "cluster", "see 'tutela status'")])
            data["witnesses"] = kept

        return await self._change(f"witness {address} removed", remove)

    async def rotate_key(self, _: dict[str, Any]) -> dict[str, Any]:
        """Rotate the cluster key (daemon/keys.py), holding the configuration lease so that
        no two rotations (or a rotation and a join) run at once."""
        self.cluster.keys.check_reachable()  # the first thing to say when one is away
        async with self._config_lock, self.cluster.config_lease():
            return await self.cluster.keys.rotate()

    # --- equivalencies -----------------------------------------------------------------

    async def hierarchy_extend(self, request: dict[str, Any]) -> dict[str, Any]:
        """Let node TO run TAG's hierarchy too, after checking every resource can run there."""
        hierarchy = self._hierarchy(str(request["tag"]))
        node, root = str(request["to"]), hierarchy.root
        if node not in {n.name for n in self.engine.config.nodes}:
            raise ConfigError([Problem("--to", f"no node {node!r} in this cluster",
                                       "join it first (tutela node token / tutela join)")])
        self._refuse_unfenceable(root, node)
        answer = await self._on_node(node, "hierarchy.check", {"root": root},
                                     _deadline(request))
        if answer["problems"]:
            raise ConfigError([Problem(p["field"], f"on {node}: {p['message']}", p["fix"])
                               for p in answer["problems"]])
        in_service_here = self.engine.states[root].state.in_service

        def extend(data: dict[str, Any]) -> None:
            settings = _settings(data, root)
            equivalencies = settings.setdefault("equivalencies", [])
            if any(e["node"] == node for e in equivalencies):
                raise ConfigError([Problem("--to", f"{root} is extended to {node} already",
                                           "tutela hierarchy unextend first to change it")])
            if not equivalencies and node != self.lcd.node:
                equivalencies.append({"node": self.lcd.node, "priority": 1})
            taken = [e["priority"] for e in equivalencies]
            priority = request.get("priority") or max(taken, default=0) + 1
            equivalencies.append({"node": node, "priority": int(priority)})
            if in_service_here:
                settings["target"] = "in_service"

        return await self._change(f"{root} extended to {node}", extend)

    def _refuse_unfenceable(self, root: str, node: str) -> None:
        """A node that cannot be fenced must not join an equivalency: as owner it would run
        the hierarchy with no backstop, and nobody could take over from it safely."""
        config = self.engine.config
        if config.hierarchy_settings(root).multi_node:
            return  # no takeover: each node runs its own instance, and nobody else's
        joining = {node} | ({self.lcd.node}
                            if not config.hierarchy_settings(root).equivalencies else set())
        problems = [problem for name in sorted(joining)
                    if (entry := config.node(name)) is not None
                    and (problem := fencing_problem(config, entry)) is not None]
        if problems:
            raise ConfigError(problems)

    async def hierarchy_unextend(self, request: dict[str, Any]) -> dict[str, Any]:
        root = self._hierarchy(str(request["tag"])).root
        node = str(request["node"])
        multi_node = self.engine.config.hierarchy_settings(root).multi_node
        if not multi_node and self.cluster.runs(root) == node:  # an instance just stops
            raise ConfigError([Problem("node", f"{root} runs on {node} now",
                                       f"switch it over first: tutela switchover {root} "
                                       "--to ANOTHER-NODE")])

        def unextend(data: dict[str, Any]) -> None:
            settings = _settings(data, root)
            before = settings.get("equivalencies", [])
            settings["equivalencies"] = [e for e in before if e["node"] != node]
            if len(settings["equivalencies"]) == len(before):
                raise ConfigError([Problem("node", f"{root} is not extended to {node}",
                                           "see 'tutela status' for its equivalencies")])

        return await self._change(f"{root} no longer extended to {node}", unextend)

    async def _hierarchy_check(self, envelope: Envelope) -> dict[str, Any]:
        return await self._check_hierarchy_here(str(envelope.payload["root"]))

    async def _check_hierarchy_here(self, root: str) -> dict[str, Any]:
        hierarchy = self._hierarchy(root)
        resources = [r for r in self.engine.config.resources if r.tag in hierarchy.members]
        problems = await asyncio.to_thread(_problems_here, resources)
        return {"problems": [{"field": p.field, "message": p.message, "fix": p.fix}
                             for p in problems]}

    def _hierarchy(self, tag: str) -> Hierarchy:
        hierarchy = hierarchy_of(self.engine.hierarchies, tag)
        if hierarchy is None:
            raise ConfigError([Problem("tag", f"no resource {tag!r}",
                                       "see 'tutela status' for the tags")])
        return hierarchy

    # --- cluster membership ---------------------------------------------------------

    async def node_token(self, request: dict[str, Any]) -> dict[str, Any]:
        ttl = float(request.get("ttl") or DEFAULT_TOKEN_TTL)
        token = self.tokens.issue(ttl)
        addresses = [str(ipaddress.IPv4Interface(a).ip) for node in self.engine.config.nodes
                     if node.name == self.lcd.node for a in node.addresses]
        return {"token": token, "expires_in": ttl, "addresses": addresses,
                "port": self.engine.config.settings.port}

    async def _admit(self, node: Node) -> Grant:
        self.cluster.keys.check_settled(f"node {node.name} cannot join")

        def add(data: dict[str, Any]) -> None:
            if any(n["name"] == node.name for n in data["nodes"]):
                raise ConfigError([Problem("node", f"a node named {node.name!r} is already "
                                           "in the cluster", "join under another --node name, "
                                           "or 'tutela node remove' the old one first")])
            existing = [Node.model_validate(n) for n in data["nodes"]]
            data["nodes"].append(node.model_dump(mode="json"))
            for other in existing:
                data["comm_paths"] += [p.model_dump(mode="json")
                                       for p in paths_between(other, node)]

        result = await self._change(f"node {node.name} joined", add)
        return Grant(self.engine.config.name, self.lcd.cluster_key, result["generation"],
                     self.engine.config.model_dump(mode="json"))

    async def node_remove(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request["node"])

        def remove(data: dict[str, Any]) -> None:
            if name == self.lcd.node:
                raise ConfigError([Problem("node", "a node cannot remove itself",
                                           "run 'tutela node remove' on another node")])
            if not any(n["name"] == name for n in data["nodes"]):
                raise ConfigError([Problem("node", f"no node {name!r} in this cluster",
                                           "see the nodes in 'tutela status'")])
            data["nodes"] = [n for n in data["nodes"] if n["name"] != name]
            data["comm_paths"] = [p for p in data["comm_paths"] if name not in p["nodes"]]
            for hierarchy in data["hierarchies"]:
                hierarchy["equivalencies"] = [e for e in hierarchy["equivalencies"]
                                              if e["node"] != name]

        return await self._change(f"node {name} removed", remove,
                                  force=bool(request.get("force")))

    async def node_failover(self, request: dict[str, Any]) -> dict[str, Any]:
        name, allow = str(request["node"]), bool(request["allow"])

        def change(data: dict[str, Any]) -> None:
            entry = next((n for n in data["nodes"] if n["name"] == name), None)
            if entry is None:
                raise ConfigError([Problem("node", f"no node {name!r} in this cluster",
                                           "see the nodes in 'tutela status'")])
            entry["failover"] = allow

        return await self._change(f"failover away from {name} "
                                  f"{'allowed' if allow else 'blocked'}", change)

    async def path_add(self, request: dict[str, Any]) -> dict[str, Any]:
        peer = str(request["peer"])
        kind = str(request.get("kind") or "tcp")
        ends = [str(request["local"]), str(request["remote"])]
        path = {"kind": kind, "nodes": [self.lcd.node, peer],
                "priority": int(request.get("priority") or 1),
                ("devices" if kind == "tty" else "addresses"): ends}

        def add(data: dict[str, Any]) -> None:
            if not any(n["name"] == peer for n in data["nodes"]):
                raise ConfigError([Problem("peer", f"no node {peer!r} in this cluster",
                                           "join it first (tutela node token / tutela join)")])
            data["comm_paths"].append(path)

        return await self._change(f"added {kind} path to {peer}", add)

    async def path_remove(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request["name"])

        def remove(data: dict[str, Any]) -> None:
            kept = [p for p in data["comm_paths"]
                    if path_name(CommPath.model_validate(p)) != name]
            if len(kept) == len(data["comm_paths"]):
                names = [path_name(CommPath.model_validate(p)) for p in data["comm_paths"]]
                raise ConfigError([Problem("name", f"no comm path {name!r}",
                                           f"use one of: {', '.join(names) or 'none'}")])
            data["comm_paths"] = kept

        return await self._change(f"removed path {name}", remove)

    # --- replication -----------------------------------------------------------------

    async def export(self, _: dict[str, Any]) -> dict[str, Any]:
        text = await asyncio.to_thread(to_yaml, self.engine.config)
        return {"generation": self.lcd.generation(), "yaml": text}

    async def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        # Parsing and validating a large document takes a while: off the event loop, which
        # must keep the heartbeats and lease renewals on time.
        new = await asyncio.to_thread(from_yaml, str(request["yaml"]),
                                      str(request.get("source", "<input>")))
        return await self._replace(lambda current: keep_unexported(current, new),
                                   bool(request.get("dry_run")),
                                   f"applied {request.get('source', 'a document')}")

    async def config_set(self, request: dict[str, Any]) -> dict[str, Any]:
        """`tutela config set`: the document in force with one value changed, applied. With
        `base_version` [generation, epoch], made only on that version (compare-and-set, for
        a value computed from it: tutela.apiauth.token_changes)."""
        key = str(request["key"])

        def changed(current: ClusterConfig) -> ClusterConfig:
            return parse_config(set_value(current.model_dump(mode="json"), key,
                                          request.get("value")))

        return await self._replace(changed, bool(request.get("dry_run")), f"config set {key}",
                                   request.get("base_version"))

    async def _replace(self, new_config: Callable[[ClusterConfig], ClusterConfig],
                       dry_run: bool, summary: str, base: Any = None) -> dict[str, Any]:
        """Make the configuration new_config(the one in force), nodes' own records kept, in
        one change; or, dry run, check it as that change would and say what would change."""
        if dry_run:
            new = await self._proposed(new_config)
            self.lcd.check(new)
            self.cluster.voters_changed(new)
            self._check_runtime(new)
            warnings = await asyncio.to_thread(_problems_here, self._changed(new))
            return {"dry_run": True, "changes": diff(self.engine.config, new),
                    "generation": self.lcd.generation(), "warnings": [str(p) for p in warnings]}
        async with self._config_lock, self.cluster.config_lease() as change:
            if base is not None and base != list(change.base):
                raise ConfigError([Problem(
                    "base_version", f"the configuration is at version {list(change.base)}, "
                    f"not {base}: another change came first", "read it again and redo the change")])
            new = await self._proposed(new_config)
            changes = diff(self.engine.config, new)
            if not changes:
                return {"changes": [], "generation": self.lcd.generation()}
            generation = await self._commit(new, summary, change)
            return {"changes": changes, "generation": generation}

    async def _proposed(self, new_config: Callable[[ClusterConfig], ClusterConfig]
                        ) -> ClusterConfig:
        current = self.engine.config  # off the event loop: see apply
        return _keep_recorded(current, await asyncio.to_thread(new_config, current))

    async def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        """Stop tutelad; with `leave_resources` a maintenance stop: what is in service here
        stays so, and the other nodes are told (a replicated change), or it refuses."""
        leave = bool(request.get("leave_resources"))
        told: dict[str, list[str]] = {}
        if leave:
            told = await self._enter_maintenance(bool(request.get("force")))
        elif _maintenance_of(self.engine.config, self.lcd.node) is not None:
            await self._end_maintenance_for_stop()
        self.leave_resources = leave
        if leave:
            self.journal("maintenance.stop", self.lcd.node, "tutela stop --leave-resources: "
                         "resources stay in service, unprotected", details=told)
        self.stopping.set()
        return {"stopping": True, "leave_resources": leave, "maintenance": [], "untold": [],
                **told}

    async def _enter_maintenance(self, force: bool) -> dict[str, list[str]]:
        """Record that this node leaves its clustered hierarchies in service, so that no
        other node takes them over while its leases lapse: {"maintenance": the roots}, or
        with `force` and the others out of reach {"untold": the roots}. Nothing to record
        if none is in service here. Refused (nothing changed) if the others cannot be told,
        unless `force`."""
        roots = self.cluster.ownership.in_service_here()
        if not roots:
            return {}
        self._entering_maintenance = True
        since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        record = {"since": since, "hierarchies": roots}
        try:
            self._check_reachable_for_maintenance()
            await self._change(f"{self.lcd.node} stopped for maintenance, leaving "
                               f"{', '.join(roots)} in service",
                               lambda data: _node_entry(data, self.lcd.node).update(
                                   maintenance=record))
        except OperationError as error:
            if force:
                log.warning("stop --leave-resources --force: the other nodes were not told "
                            "(%s); %s stay in service here with their leases lapsing: "
                            "another node may start them too", error, ", ".join(roots))
                self.lcd.note_left_untold(roots)  # the next start re-adopts, not removes
                return {"untold": roots}
            self._entering_maintenance = False
            raise MaintenanceRefused(_maintenance_refusal(roots, error)) from None
        except BaseException:
            self._entering_maintenance = False
            raise
        return {"maintenance": roots}

    async def _end_maintenance_for_stop(self) -> None:
        """A plain stop takes everything out of service, so a maintenance record of this
        node (its start could not clear it yet) must go first: else the others would leave
        those hierarchies alone for good. Cleared while the leases here still hold them."""
        try:
            await self._change(f"{self.lcd.node} back from maintenance", self._leave)
        except OperationError as error:
            log.warning("stopping while still in maintenance (%s): the other nodes leave "
                        "its hierarchies alone until this node starts again, or an "
                        "administrator confirms a takeover with 'tutela switchover'", error)

    def _check_reachable_for_maintenance(self) -> None:
        """Fail at once, not after the configuration lease's wait, without a majority; with
        quorum 'none', where any node acts alone, unless every node can be told."""
        config = self.engine.config
        reachable, count = self.cluster.reachable_nodes(), len(config.nodes)
        if config.settings.quorum == "none" and reachable < count:
            raise OperationError(f"{reachable} of {count} nodes reachable; with quorum "
                                 "'none' any node may start a hierarchy alone, so every node "
                                 "must be told")
        if reachable < self.cluster.majority():
            raise OperationError(f"no quorum: {reachable} of {count} nodes reachable, "
                                 f"{self.cluster.majority()} needed")

    async def keep_own_entry(self) -> None:
        """Runs while tutelad does, keeping this node's entry of the configuration true: its
        watchdog as tutelad found it at start (`lease_duration: auto` and the failover checks
        read it), and, once every hierarchy its maintenance stop left in service is under
        its lease here again (or no longer in service here), the end of its maintenance, so
        that the others may take them over again when it fails. A failed change is tried
        again, later each time."""
        watchdog = node_watchdog(self.cluster.ownership.watchdog.path).model_dump(mode="json")
        interval = self.engine.config.settings.heartbeat_interval
        retry_at, delay, loop = 0.0, MAINTENANCE_RETRY_FIRST, asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, next_tick(interval) - loop.time()))
            updates = self._own_entry_updates(watchdog)
            if not updates or self._entering_maintenance or loop.time() < retry_at:
                continue
            record = _maintenance_of(self.engine.config, self.lcd.node)
            try:
                await self._change(_own_entry_summary(self.lcd.node, updates),
                                   functools.partial(self._update_own_entry, updates))
                if record is not None and "maintenance" in updates:
                    log.info("out of maintenance: %s protected again",
                             ", ".join(record.hierarchies))
                delay = MAINTENANCE_RETRY_FIRST
            except Exception as error:  # noqa: BLE001 - logged, tried again; never fatal
                log.warning("%s not recorded yet: %s; trying again in %gs",
                            _own_entry_summary(self.lcd.node, updates), error, delay)
                retry_at, delay = loop.time() + delay, min(delay * 2, MAINTENANCE_RETRY_MAX)

    def _own_entry_updates(self, watchdog: dict[str, Any]) -> dict[str, Any]:
        """What this node's entry lacks: its watchdog; the end of a settled maintenance."""
        entry = self.engine.config.node(self.lcd.node)
        updates: dict[str, Any] = {}
        if entry is None:
            return updates
        if entry.watchdog is None or entry.watchdog.model_dump(mode="json") != watchdog:
            updates["watchdog"] = watchdog
        if entry.maintenance is not None and self.cluster.ownership.maintenance_settled():
            updates["maintenance"] = None
        return updates

    def _update_own_entry(self, updates: dict[str, Any], data: dict[str, Any]) -> None:
        """The configuration change of keep_own_entry (not while a stop is recording a
        maintenance)."""
        if self._entering_maintenance:
            raise OperationError("a maintenance stop is under way")
        _node_entry(data, self.lcd.node).update(updates)

    def _leave(self, data: dict[str, Any]) -> None:
        """The configuration change that ends this node's maintenance."""
        self._update_own_entry({"maintenance": None}, data)

    async def _change(self, summary: str, mutate: Callable[[dict[str, Any]], None],
                      force: bool = False) -> dict[str, Any]:
        """Change the configuration: under the configuration lease, on top of the newest
        version, committed here and confirmed by a majority of the nodes."""
        async with self._config_lock, self.cluster.config_lease(force) as change:
            data = self.engine.config.model_dump(mode="json")
            mutate(data)
            generation = await self._commit(parse_config(data), summary, change, force)
            return {"generation": generation, "summary": summary}

    async def _commit(self, new: ClusterConfig, summary: str, change: ConfigChange,
                      force: bool = False) -> int:
        """Commit `new`, made on the version `change.base`, and replicate it. A change of
        the voters waits until that version is on a majority (one voter at a time); the
        commit is refused if a fetched version replaced it meanwhile."""
        self._check_runtime(new)
        await self._check_here(new)
        members = node_names(self.engine.config)  # the nodes before the change confirm it
        await self.cluster.settle_voters(change, new, force)
        self.cluster.require_config_lease()
        generation = self.lcd.commit(new, summary, expected=change.base, epoch=change.epoch)
        self.engine.update_config(new)
        await self.cluster.config_changed(new)
        log.info("configuration generation %d (epoch %d): %s", generation, change.epoch,
                 summary)
        await self.cluster.replicate(new, (generation, change.epoch), members, force)
        return generation

    async def _check_here(self, new: ClusterConfig) -> None:
        """New or changed resources must be able to run on this node (scripts, devices)."""
        problems = await asyncio.to_thread(_problems_here, self._changed(new))
        if problems:
            raise ConfigError(problems)

    def _changed(self, new: ClusterConfig) -> list[Resource]:
        old = self.engine.config
        return [r for r in new.resources
                if (before := old.resource(r.tag)) is None
                or (before.kit, before.params) != (r.kit, r.params)]

    def _check_runtime(self, new: ClusterConfig) -> None:
        messenger = self.cluster.messenger
        elsewhere = {tag: peer for peer, (_, report) in messenger.heartbeats.items()
                     if messenger.detector.node_state(peer) == "ALIVE"
                     for tag, state in report.states.items()
                     if state in IN_SERVICE}
        problems = self.engine.check_change(new, elsewhere)
        if problems:
            raise ConfigError(problems)


def _deadline(request: dict[str, Any]) -> float:
    """The event-loop time by which to answer `request`: shortly before its CLI gives up
    (the request's `timeout`), or after REMOTE_ACTION_TIMEOUT for a request without one."""
    timeout = float(request.get("timeout") or REMOTE_ACTION_TIMEOUT + ANSWER_MARGIN)
    return asyncio.get_running_loop().time() + max(timeout - ANSWER_MARGIN, timeout / 2)


def _elsewhere(tag: str, peers: list[tuple[dict[str, Any], Mapping[str, str]]],
               candidates: set[str]) -> dict[str, dict[str, Any]]:
    """The resource's state on the other nodes that matter: those its hierarchy may run on
    (equivalencies), and any other where it is not out of service. In a large cluster the
    rest would be dozens of OSU entries per resource (2.5 MB of status at 32 nodes).
    `peers`: each peer's entry of the cluster view and its last reported states."""
    shown = {}
    for peer, states in peers:
        state = states.get(tag, "UNKNOWN")
        if peer["name"] in candidates or state not in ("OSU", "UNKNOWN"):
            shown[peer["name"]] = {"state": state, "stale": peer["state"] != "ALIVE",
                                   "age": peer["heartbeat_age"]}
    return shown


def _node_entry(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The entry of node `name` in a configuration dict."""
    return next(n for n in data["nodes"] if n["name"] == name)


def _maintenance_of(config: ClusterConfig, name: str) -> Maintenance | None:
    return next((n.maintenance for n in config.nodes if n.name == name), None)


def _own_entry_summary(node: str, updates: dict[str, Any]) -> str:
    parts = []
    if "watchdog" in updates:
        parts.append(f"{node}'s watchdog recorded ({updates['watchdog']['device']})")
    if "maintenance" in updates:
        parts.append(f"{node} back from maintenance")
    return "; ".join(parts)


def _keep_recorded(current: ClusterConfig, new: ClusterConfig) -> ClusterConfig:
    """`new` with each existing node's WRITTEN_BY_NODES fields as in force: only the node
    itself writes them (its stop and start, `init`, `join`; a confirming switchover for
    maintenance), never a document applied. An applied maintenance record could let the
    others take over what a node in maintenance still runs; an applied watchdog would
    change the lease (docs/failover.md, "Lease and watchdog")."""
    before = {n.name: n for n in current.nodes}

    def recorded(node: Node) -> Node:
        old = before.get(node.name)
        if old is None:
            return node
        return node.model_copy(update={f: getattr(old, f) for f in WRITTEN_BY_NODES})

    nodes = tuple(recorded(n) for n in new.nodes)
    return new if nodes == new.nodes else new.model_copy(update={"nodes": nodes})


def _maintenance_refusal(roots: list[str], error: OperationError) -> str:
    """Why a maintenance stop was refused, and the three ways on."""
    listed = ", ".join(roots)
    return (f"cannot tell the other nodes that this node leaves {listed} in service: {error}. "
            f"Untold, another node would take {listed} over once the leases here lapse, "
            "while they still run here. tutelad still runs and protects them. "
            "Bring the other nodes back, or stop without --leave-resources (takes them out "
            "of service), or add --force to leave them running untold (split brain possible "
            "once another node starts them; see docs/failover.md, 'Maintenance stop')")


def _settings(data: dict[str, Any], root: str) -> dict[str, Any]:
    """The hierarchy settings entry for `root` in a configuration dict, made if missing."""
    for entry in data["hierarchies"]:
        if entry["root"] == root:
            return entry  # type: ignore[no-any-return]
    entry = {"root": root}
    data["hierarchies"].append(entry)
    return entry


def _problems_here(resources: list[Resource]) -> list[Problem]:
    problems = []
    for resource in resources:
        try:
            kit = get_kit(resource.kit)
            params = kit.parse_params(resource.params)
        except ConfigError:
            continue  # invalid anywhere: the validation of the whole change reports it
        for name, message in kit.check_here(params):
            problems.append(Problem(f"resources[{resource.tag}].params.{name}", message,
                                    "correct it, or prepare this node first"))
    return problems


def _find(data: dict[str, Any], tag: str, field: str = "tag") -> dict[str, Any]:
    for entry in data["resources"]:
        if entry["tag"] == tag:
            return entry  # type: ignore[no-any-return]
    known = ", ".join(r["tag"] for r in data["resources"]) or "none yet"
    raise ConfigError([Problem(field, f"no resource {tag!r}", f"use one of: {known}")])


def _tree_order(root: str, children: dict[str, tuple[str, ...]] | Any) -> list[str]:
    """Depth-first from the root, each tag once: the order the status tree prints."""
    order: list[str] = []
    stack = [root]
    while stack:
        tag = stack.pop()
        if tag not in order:
            order.append(tag)
            stack.extend(reversed(children[tag]))
    return order
