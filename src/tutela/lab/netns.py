"""Network plumbing of a lab: names, addresses, namespaces, bridges and veth pairs.

Layout (lab "lab", node i = 1..32)::

    netns tl-lab-sw           the switch: bridges net1 and net2, one port per node/client
    netns tl-lab-nodeI        eth0 on net1: 198.51.100.(10+i)/24
                              eth1 on net2: 203.0.113.(10+i)/24
    netns tl-lab-client       eth0 on net1: 198.51.100.250/24, eth1 on net2: 203.0.113.250/24

The switch port of node I on net N is the veth `nodeI-netN` in the switch namespace
(setting it down cuts that node's link). 198.51.100.100-199 are left free for the
virtual IP addresses of services. Each interface has a fixed MAC address (02:74:6c:00:0N:II),
so a node that is powered on again is the same "hardware" to its neighbours' ARP caches.
IPv6 is disabled in the lab's namespaces to keep the wires quiet.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

from tutela.lab import cmd

NETS = (1, 2)
SUBNETS = {1: ipaddress.ip_network("198.51.100.0/24"), 2: ipaddress.ip_network("203.0.113.0/24")}
NODE_HOST_OFFSET = 10  # node i gets host number 10 + i
CLIENT_HOST = 250
#: Addresses on net1 left for services' virtual IPs (never given to a node or the client).
VIP_RANGE = ("198.51.100.100", "198.51.100.199")
MAX_NODES = 32

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")
NODE_DIR_RE = re.compile(r"^node\d+$")


def netns_prefix(lab: str) -> str:
    return f"tl-{lab}-"


def switch_netns(lab: str) -> str:
    return f"tl-{lab}-sw"


def client_netns(lab: str) -> str:
    return f"tl-{lab}-client"


def node_netns(lab: str, node: str) -> str:
    return f"tl-{lab}-{node}"


def bridge(net: int) -> str:
    return f"net{net}"


def interface(net: int) -> str:
    """Name of a node's (or the client's) interface on `net`: eth0 on net1, eth1 on net2."""
    return f"eth{net - 1}"


def switch_port(owner: str, net: int) -> str:
    """Name of the switch-side veth of `owner` (a node name or "client") on `net`."""
    return f"{owner}-net{net}"


def node_address(index: int, net: int) -> str:
    return str(SUBNETS[net].network_address + NODE_HOST_OFFSET + index)


def client_address(net: int) -> str:
    return str(SUBNETS[net].network_address + CLIENT_HOST)


def prefixlen(net: int) -> int:
    return SUBNETS[net].prefixlen


def mac(host: int, net: int) -> str:
    return f"02:74:6c:00:{net:02x}:{host:02x}"


def is_lab_netns(lab: str, name: str) -> bool:
    """True if `name` is one of lab `lab`'s namespaces (the name alone decides)."""
    return re.fullmatch(rf"tl-{re.escape(lab)}-(sw|client|node\d+)", name) is not None


def list_netns() -> list[str]:
    out = cmd.ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def lab_netns(lab: str) -> list[str]:
    """Every existing network namespace of lab `lab`, found by name."""
    return [n for n in list_netns() if is_lab_netns(lab, n)]


def create_netns(name: str) -> None:
    cmd.ip("netns", "add", name)
    if cmd.which("sysctl"):
        # Best effort: a kernel without IPv6 has nothing to disable.
        cmd.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
                 "net.ipv6.conf.all.disable_ipv6=1",
                 "net.ipv6.conf.default.disable_ipv6=1"], check=False)
    cmd.ip("link", "set", "lo", "up", netns=name)


def delete_netns(name: str) -> None:
    """Delete namespace `name` (its veths vanish with it, and so do their switch ports)."""
    cmd.ip("netns", "delete", name, check=False)


def create_switch(lab: str) -> None:
    sw = switch_netns(lab)
    create_netns(sw)
    lines = []
    for net in NETS:
        lines += [f"link add {bridge(net)} type bridge stp_state 0",
                  f"link set {bridge(net)} up"]
    cmd.ip(netns=sw, batch=lines)


def pin_neighbours(netns: str, nodes: Iterable[int], client: bool) -> None:
    """Permanent ARP entries in `netns`, on every net, for the nodes with these indexes
    and, if `client`, the client: the lab fixes their addresses and MACs.

    Why: the kernel's ARP table is one table for every namespace, capped at the host's
    net.ipv4.neigh.default.gc_thresh3 (1024 by default); a full mesh of 24 nodes on two
    nets fills it, and the 25th node then resolves no address ("neighbor table overflow",
    sendmsg ENOBUFS). Permanent entries do not count toward the cap (Linux 4.20 on), and
    the host's own settings stay untouched. Virtual IPs stay dynamic: they move.
    """
    entries = [(node_address(i, net), mac(i, net), net) for net in NETS for i in nodes]
    if client:
        entries += [(client_address(net), mac(CLIENT_HOST, net), net) for net in NETS]
    if not entries:
        return
    cmd.ip(netns=netns, batch=[
        f"neigh replace {address} lladdr {lladdr} dev {interface(net)} nud permanent"
        for address, lladdr, net in entries])


def plug(lab: str, netns: str, owner: str, host: int, addresses: dict[int, str]) -> None:
    """Create `owner`'s veth pairs (one per net) between `netns` and the switch, address and
    bring them up. `addresses` maps net -> address (without prefix length)."""
    sw = switch_netns(lab)
    cmd.ip(batch=[
        f"link add {interface(net)} netns {netns} address {mac(host, net)} type veth "
        f"peer name {switch_port(owner, net)} netns {sw}"
        for net in NETS])
    cmd.ip(netns=netns, batch=[
        line for net in NETS for line in (
            f"address add {addresses[net]}/{prefixlen(net)} dev {interface(net)}",
            f"link set {interface(net)} up")])
    cmd.ip(netns=sw, batch=[
        line for net in NETS for line in (
            f"link set {switch_port(owner, net)} master {bridge(net)}",
            f"link set {switch_port(owner, net)} up")])


def unplug(netns: str) -> None:
    """Pull the cables: delete the node's veths (their switch ports go with them)."""
    for net in NETS:
        cmd.ip("link", "delete", interface(net), netns=netns, check=False)


def addresses(netns: str, include_loopback: bool = False) -> list[tuple[str, str]]:
    """(interface, address/prefixlen) for every IPv4/IPv6 address in `netns`."""
    out = cmd.ip("-j", "address", "show", netns=netns).stdout
    result = []
    for link in json.loads(out or "[]"):
        if link.get("ifname") == "lo" and not include_loopback:
            continue
        for info in link.get("addr_info", []):
            if "local" in info:
                result.append((link["ifname"], f"{info['local']}/{info['prefixlen']}"))
    return result
