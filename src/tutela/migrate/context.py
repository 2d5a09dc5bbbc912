"""What every mapping step shares: the ledger, the cluster's nodes and networks, the tags in use.

One Context serves the cluster and every package, so resource tags stay unique cluster-wide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

from tutela.kits.registry import get_kit
from tutela.migrate.networks import Networks
from tutela.migrate.report import Ledger
from tutela.model.config import is_valid_name
from tutela.model.errors import ConfigError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_NAME = 63


def safe_name(text: str, fallback: str = "x") -> str:
    """A tutela name (tag, node, cluster) made from Serviceguard text: 1-63 safe characters."""
    name = _UNSAFE.sub("-", text.strip()).lstrip("-_.")[:MAX_NAME].rstrip("-")
    return name if is_valid_name(name) else fallback


def unique_name(name: str, used: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... (kept within 63 characters) if it is taken; marks it."""
    candidate, number = name, 2
    while candidate in used:
        suffix = f"-{number}"
        candidate = name[:MAX_NAME - len(suffix)] + suffix
        number += 1
    used.add(candidate)
    return candidate


def check_params(kit: str, params: dict[str, object]) -> str:
    """The kit's objections to these parameters in one line, or '' when they are valid."""
    try:
        get_kit(kit).parse_params(params)
    except ConfigError as error:
        return "; ".join(f"{p.field}: {p.message}" for p in error.problems)
    return ""


@dataclass
class Context:
    ledger: Ledger
    networks: Networks
    scripts_dir: Path
    nodes: dict[str, str] = field(default_factory=dict)
    """Serviceguard node name -> tutela node name, in cluster-file order."""
    polling: dict[IPv4Network, list[str]] = field(default_factory=dict)
    """Subnets with IP_MONITOR ON -> their POLLING_TARGETs (the ip kit's ping_list)."""
    used_networks: dict[IPv4Network, list[str]] = field(default_factory=dict)
    """Networks that received a package address -> the ip resource tags in them."""
    tags: set[str] = field(default_factory=set)

    def tag(self, *parts: str) -> str:
        """A unique resource tag from its parts, e.g. ('pkg1', 'fs', 'oradata')."""
        return unique_name(safe_name("-".join(p for p in parts if p), "resource"), self.tags)

    def add_node(self, serviceguard_name: str) -> str:
        """The tutela name of a Serviceguard node, unique even when sanitising collides."""
        if serviceguard_name not in self.nodes:
            self.nodes[serviceguard_name] = unique_name(
                safe_name(serviceguard_name, "node"), set(self.nodes.values()))
        return self.nodes[serviceguard_name]
