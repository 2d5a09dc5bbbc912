"""The daemon's operations: each control request becomes an engine call or a config change.

A configuration change is validated, checked against what is in service, committed to the
LCD as one transaction and only then handed to the engine; a refused change changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from tutela.engine.node import NodeEngine
from tutela.lcd.document import diff, from_yaml, parse_config, to_yaml
from tutela.lcd.store import Lcd
from tutela.model.config import ClusterConfig
from tutela.model.errors import ConfigError, Problem

log = logging.getLogger("tutela.daemon")
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class Service:
    def __init__(self, lcd: Lcd, engine: NodeEngine) -> None:
        self.lcd = lcd
        self.engine = engine
        self.stopping = asyncio.Event()
        self.leave_resources = False
        self._config_lock = asyncio.Lock()
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
            "stop": self.stop,
        }

    async def ping(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"node": self.lcd.node, "pid": os.getpid()}

    async def status(self, _: dict[str, Any]) -> dict[str, Any]:
        config, states = self.engine.config, self.engine.states
        hierarchies = []
        for hierarchy in self.engine.hierarchies:
            resources = []
            for tag in _tree_order(hierarchy.root, hierarchy.children):
                resource = config.resource(tag)
                assert resource is not None
                state = states[tag]
                resources.append({
                    "tag": tag, "kit": resource.kit, "state": state.state.value,
                    "reason": state.reason, "since": state.since,
                    "depends_on": list(resource.depends_on), "params": resource.params,
                })
            hierarchies.append({"root": hierarchy.root,
                                "state": states[hierarchy.root].state.value,
                                "resources": resources})
        return {"cluster": config.name, "node": self.lcd.node,
                "generation": self.lcd.generation(), "daemon_pid": os.getpid(),
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
        plan = await self.engine.restore(str(request["tag"]))
        return {"restored": list(plan.tags)}

    async def remove(self, request: dict[str, Any]) -> dict[str, Any]:
        plan = await self.engine.remove(str(request["tag"]))
        return {"removed": list(plan.tags)}

    async def export(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"generation": self.lcd.generation(), "yaml": to_yaml(self.engine.config)}

    async def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        new = from_yaml(str(request["yaml"]), str(request.get("source", "<input>")))
        async with self._config_lock:
            old = self.engine.config
            changes = diff(old, new)
            if request.get("dry_run"):
                self.lcd.check(new)
                self._check_runtime(new)
                return {"dry_run": True, "changes": changes, "generation": self.lcd.generation()}
            if not changes:
                return {"changes": [], "generation": self.lcd.generation()}
            generation = self._commit(new, f"applied {request.get('source', 'a document')}")
            return {"changes": changes, "generation": generation}

    async def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        self.leave_resources = bool(request.get("leave_resources"))
        self.stopping.set()
        return {"stopping": True, "leave_resources": self.leave_resources}

    async def _change(self, summary: str, mutate: Callable[[dict[str, Any]], None]
                      ) -> dict[str, Any]:
        async with self._config_lock:
            data = self.engine.config.model_dump(mode="json")
            mutate(data)
            generation = self._commit(parse_config(data), summary)
            return {"generation": generation, "summary": summary}

    def _commit(self, new: ClusterConfig, summary: str) -> int:
        self._check_runtime(new)
        generation = self.lcd.commit(new, summary)
        self.engine.update_config(new)
        log.info("configuration generation %d: %s", generation, summary)
        return generation

    def _check_runtime(self, new: ClusterConfig) -> None:
        problems = self.engine.check_change(new)
        if problems:
            raise ConfigError(problems)


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
