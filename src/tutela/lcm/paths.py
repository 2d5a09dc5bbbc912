"""This node's view of the configured comm paths: which peer, which endpoints, which priority.

Both ends derive the same path name from the configuration, so events and status agree.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from tutela.model.config import ClusterConfig, CommPath, Node

DEFAULT_PORT = 7365
WITNESS_PORT = 7366


@dataclass(frozen=True)
class PathSpec:
    peer: str
    name: str
    """Identical on both ends, e.g. 'tcp/198.51.100.11-198.51.100.12'."""
    kind: Literal["tcp", "udp", "tty"]
    local: str
    """This node's address (tcp/udp) or serial device (tty)."""
    remote: str
    """The peer's address (tcp/udp) or the peer's serial device (tty)."""
    priority: int
    port: int | None = None
    """The remote port when it is not the cluster's (a witness's)."""

    @property
    def dials(self) -> bool:
        """For tcp, the end whose address sorts first connects; the other accepts. A node
        always dials its witnesses."""
        return self.port is not None or self.local < self.remote


def path_name(path: CommPath) -> str:
    ends = path.devices if path.kind == "tty" else path.addresses
    assert ends is not None  # the model guarantees the endpoints of each kind
    if path.kind == "tty":
        return f"tty/{path.nodes[0]}:{ends[0]}-{path.nodes[1]}:{ends[1]}"
    return f"{path.kind}/{ends[0]}-{ends[1]}"


def paths_for(config: ClusterConfig, me: str) -> list[PathSpec]:
    """Every comm path with this node at one end, seen from this node."""
    specs = []
    for path in config.comm_paths:
        if me not in path.nodes:
            continue
        mine = path.nodes.index(me)
        ends = path.devices if path.kind == "tty" else path.addresses
        assert ends is not None
        specs.append(PathSpec(peer=path.nodes[1 - mine], name=path_name(path), kind=path.kind,
                              local=ends[mine], remote=ends[1 - mine], priority=path.priority))
    specs += witness_paths(config)
    return sorted(specs, key=lambda s: (s.peer, s.priority, s.name))


def witness_voter_id(host: str, port: int) -> str:
    """A witness's voter id: 'witness@' + the HOST:PORT the cluster dials; node names
    cannot contain '@' or ':', so it never clashes with a node."""
    return f"witness@[{host}]:{port}" if ":" in host else f"witness@{host}:{port}"


def split_host_port(address: str, default_port: int = WITNESS_PORT) -> tuple[str, int]:
    """'host:port', '[v6]:port' or 'host' -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or host.endswith(":") or (":" in host and not host.startswith("[")):
        return address.strip("[]"), default_port
    return host.strip("[]"), int(port)


def witness_paths(config: ClusterConfig) -> list[PathSpec]:
    """A path from this node to every witness of the cluster (this node dials)."""
    specs = []
    for witness in config.witnesses:
        host, port = split_host_port(witness.address)
        specs.append(PathSpec(peer=witness_voter_id(host, port),
                              name=f"witness/{witness.address}", kind="tcp", local="",
                              remote=host, priority=1, port=port))
    return specs


def voters_of(config: ClusterConfig) -> tuple[str, ...]:
    """Every vote of the cluster: each node, each witness and the disk voter."""
    witnesses = [p.peer for p in witness_paths(config)]
    disk = (config.disk_voter.voter_id,) if config.disk_voter else ()
    return tuple(sorted(n.name for n in config.nodes)) + tuple(sorted(witnesses)) + disk


def peers_of(config: ClusterConfig, me: str) -> list[str]:
    return sorted(n.name for n in config.nodes if n.name != me)


def paths_between(existing: Node, joining: Node) -> list[CommPath]:
    """A tcp path on every network both nodes have an address on, in the joining node's
    order of addresses (its first network is priority 1)."""
    paths = []
    for rank, theirs in enumerate(joining.addresses, start=1):
        new = ipaddress.IPv4Interface(theirs)
        for ours in existing.addresses:
            old = ipaddress.IPv4Interface(ours)
            if old.network == new.network:
                paths.append(CommPath(kind="tcp", nodes=(existing.name, joining.name),
                                      addresses=(str(old.ip), str(new.ip)), priority=rank))
    return paths
