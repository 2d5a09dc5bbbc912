"""How large a configuration may be, and which part makes one too large.

Every node stores and sends the whole configuration on every change, and a joining node
gets it in one frame with its grant, so a change that would make it larger than
CONFIG_LIMIT is refused before anything is written (docs/configuration.md). Pure functions.
"""

from __future__ import annotations

import json
from typing import Any, Final

from tutela.model.config import ClusterConfig
from tutela.model.errors import Problem

KIB: Final = 1024
MIB: Final = 1024 * KIB
CONFIG_LIMIT: Final = 768 * KIB
"""The most a configuration may take, as the nodes store and send it (compact JSON, UTF-8,
defaults included). A product limit, not the frame size: a join grant carries the whole
configuration in one frame, so this leaves a quarter of a frame for the rest of it."""
FIX: Final = ("keep large data out of the configuration: put it in a file on the nodes and "
              "give its path (or a short value) instead")


def config_size(config: ClusterConfig) -> int:
    """Bytes of the configuration as the nodes store and send it."""
    return len(config.model_dump_json().encode())


def size_problem(config: ClusterConfig, current_size: int,
                 limit: int = CONFIG_LIMIT) -> Problem | None:
    """Why `config` is too large to become the next version, or None.

    A configuration that is not larger than the current one is always allowed: one that
    grew past the limit before there was one must be able to shrink step by step.
    """
    size = config_size(config)
    if size <= limit or size <= current_size:
        return None
    data = config.model_dump(mode="json")
    field, part = largest_part(data)
    what = f"is {human_size(part)}{_entries(data, field)}; " if field else ""
    return Problem(field or "configuration",
                   f"{what}a configuration may be at most {human_size(limit)} in all, and this "
                   f"one would be {human_size(size)}", FIX)


def _entries(data: dict[str, Any], field: str) -> str:
    """' in 400 entries' when a top-level list is what is large (many small parts)."""
    value = data.get(field)
    return f" in {len(value)} entries" if isinstance(value, list) else ""


def largest_part(data: dict[str, Any]) -> tuple[str, int]:
    """The field that makes `data` large, named like 'resources[web].params.env', and its
    size: from the top, follow the largest child while it holds more than half of its
    parent. ("", size) when no part stands out."""
    field, node, size = "", data, _encoded_size(data)
    while isinstance(node, dict | list) and node:
        children = _children(node)
        label, child = max(children, key=lambda item: _encoded_size(item[1]))
        child_size = _encoded_size(child)
        if 2 * child_size <= size:
            break
        if isinstance(node, list):
            field = f"{field}[{label}]"
        else:
            field = f"{field}.{label}" if field else str(label)
        node, size = child, child_size
    return field, size


def human_size(size: int) -> str:
    """1.5 MiB, 768 KiB, 312 bytes."""
    if size >= MIB:
        return f"{size / MIB:.3g} MiB"
    if size >= KIB:
        return f"{size / KIB:.3g} KiB"
    return f"{size} bytes"


def _children(node: dict[str, Any] | list[Any]) -> list[tuple[Any, Any]]:
    """(label, child) pairs; list items are labelled by their tag, name, root or node."""
    if isinstance(node, dict):
        return list(node.items())
    return [(next((item[k] for k in ("tag", "name", "root", "node")
                   if isinstance(item, dict) and k in item), index), item)
            for index, item in enumerate(node)]


def _encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
