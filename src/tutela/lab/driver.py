"""Drives tutela on lab nodes through its CLI, as an administrator would: the demo and the
lab tests share these steps (run a command, read status, form a cluster).

Nothing here reaches into a daemon; every step is a `tutela` command inside a node.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tutela.lab import Lab


def tutela(lab: Lab, node: str, *args: str, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
    return lab.exec(node, ["tutela", *args], check=check, timeout=120)


def status(lab: Lab, node: str) -> dict[str, Any]:
    return json.loads(tutela(lab, node, "status", "--json").stdout)  # type: ignore[no-any-return]


def node_view(lab: Lab, node: str) -> dict[str, dict[str, Any]]:
    """What `node` believes of every node: name -> {state, generation, paths}."""
    return {n["name"]: n for n in status(lab, node)["nodes"]}


def path_states(lab: Lab, node: str, peer: str) -> dict[str, str]:
    return {p["name"]: p["state"] for p in node_view(lab, node)[peer]["paths"]}


def form_cluster(lab: Lab, cluster: str) -> None:
    """node1 creates the cluster; every other node joins it with a fresh one-time token."""
    first = lab.nodes[0]
    tutela(lab, first, "init", "--cluster", cluster)
    tutela(lab, first, "start")
    for node in lab.nodes[1:]:
        token = json.loads(tutela(lab, first, "node", "token", "--json").stdout)["token"]
        tutela(lab, node, "join", lab.node_address(first), "--token", token)
        tutela(lab, node, "start")


def all_alive(lab: Lab) -> bool:
    """Every node sees every other node ALIVE on every path."""
    return all(n["state"] == "ALIVE" and all(p["state"] == "ALIVE" for p in n["paths"])
               for node in lab.nodes for n in status(lab, node)["nodes"])
