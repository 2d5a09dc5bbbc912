"""Subnets and prefix lengths: Serviceguard names subnets by address and keeps no netmask.

A prefix comes from an explicit /N, else it is inferred: /24, or longer if the address demands it.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

DEFAULT_PREFIX = 24
"""Serviceguard took the netmask from the node's interface; /24 is the common case."""


def parse_address(text: str) -> IPv4Address | None:
    try:
        return IPv4Address(text.strip())
    except ValueError:
        return None


def subnet_network(text: str) -> tuple[IPv4Network | None, bool]:
    """'198.51.100.0' or '198.51.100.0/24' as a network, and whether its prefix was inferred.

    None for anything that is not an IPv4 subnet (IPv6 included).
    """
    text = text.strip()
    if "/" in text:
        try:
            return IPv4Network(text, strict=False), False
        except ValueError:
            return None, False
    address = parse_address(text)
    if address is None:
        return None, False
    return IPv4Network((address, inferred_prefix(address)), strict=False), True


def inferred_prefix(address: IPv4Address) -> int:
    """The /24 default, or the shortest prefix for which `address` is a network address."""
    value = int(address)
    zeros = 32 if value == 0 else (value & -value).bit_length() - 1
    return max(DEFAULT_PREFIX, 32 - zeros)


@dataclass(frozen=True)
class Placement:
    """The network a package address is put in, and how its prefix was found."""

    network: IPv4Network
    inferred: bool
    source: str


class Networks:
    """The cluster's subnets (SUBNET entries), for prefixes and for grouping heartbeat IPs."""

    def __init__(self, subnets: list[str]) -> None:
        parsed = [subnet_network(text) for text in subnets]
        self.known = [(net, inferred) for net, inferred in parsed if net is not None]

    def containing(self, address: IPv4Address) -> tuple[IPv4Network, bool] | None:
        found = [(net, inferred) for net, inferred in self.known if address in net]
        return max(found, key=lambda item: item[0].prefixlen) if found else None

    def heartbeat_network(self, address: IPv4Address) -> IPv4Network:
        known = self.containing(address)
        return known[0] if known else IPv4Network((address, DEFAULT_PREFIX), strict=False)

    def place(self, address: IPv4Address, subnet: str) -> Placement:
        """The network for a relocatable address given with (or without) its ip_subnet."""
        if subnet:
            network, inferred = subnet_network(subnet)
            if network is not None and address in network:
                return Placement(network, inferred, f"subnet {subnet}")
        known = self.containing(address)
        if known is not None:
            return Placement(known[0], known[1], f"cluster subnet {known[0].network_address}")
        return Placement(IPv4Network((address, DEFAULT_PREFIX), strict=False), True,
                         "no subnet containing it")
