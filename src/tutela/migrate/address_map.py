"""A package's relocatable addresses (ip_address, IP[]) become ip resources.

The prefix comes from the subnet; IP_MONITOR polling targets become the ping_list.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from tutela.migrate.context import check_params
from tutela.migrate.lexer import Value
from tutela.migrate.networks import parse_address, subnet_network
from tutela.migrate.scope import PackageScope
from tutela.migrate.sgmodel import Group, Outcome
from tutela.model.config import Resource

PREFIX_STEP = ("check the prefix length: Serviceguard keeps no netmask (it used the node's "
               "interface); compare with 'ip -4 addr' on a node and correct params.address")


class AddressMapper:
    def __init__(self, scope: PackageScope) -> None:
        self.scope = scope
        self.networks: dict[IPv4Network, list[str]] = {}
        """Networks this package's addresses are in -> their tags."""
        self.subnet_users: dict[int, tuple[Value, list[str]]] = {}

    def addresses(self) -> list[Resource]:
        resources: list[Resource] = []
        for group in self.scope.package.ips:
            resource = self.address(group, len(resources) + 1)
            if resource is not None:
                resources.append(resource)
        return resources

    def address(self, group: Group, number: int) -> Resource | None:
        scope = self.scope
        ip_value, subnet = group.get("ip_address"), group.get("ip_subnet")
        if scope.empty_group(group):
            return None
        if ip_value is None or not ip_value.text.strip():
            self.skip(group, "a subnet without an address")
            return None
        address = parse_address(scope.expand(ip_value.text, f"{scope.base} addresses"))
        if address is None:
            self.skip(group, f"{ip_value.text} is not an IPv4 address; tutela's ip kit handles "
                      "IPv4", "protect the address with a generic resource (ip addr add / ip "
                      "addr del)")
            return None
        placement = scope.ctx.networks.place(address, subnet.text if subnet else "")
        params: dict[str, Any] = {"address": f"{address}/{placement.network.prefixlen}"}
        targets = scope.ctx.polling.get(placement.network, [])
        if targets:
            params["ping_list"] = list(targets)
        problem = check_params("ip", params)
        if problem:
            self.skip(group, f"not valid for the ip kit: {problem}", "correct it")
            return None
        tag = scope.ctx.tag(scope.base, f"ip{number}")
        scope.ctx.used_networks.setdefault(placement.network, []).append(tag)
        self.networks.setdefault(placement.network, []).append(tag)
        how = f"prefix from {placement.source}" + (" (inferred)" if placement.inferred else "")
        pings = f"; ping_list {', '.join(targets)} (IP_MONITOR)" if targets else ""
        scope.record(ip_value, Outcome.MAPPED, f"resources[{tag}] (ip): {params['address']}, "
                     f"{how}{pings}", PREFIX_STEP if placement.inferred else "")
        if subnet is not None:
            self.subnet_users.setdefault(id(subnet), (subnet, []))[1].append(tag)
        return Resource(tag=tag, kit="ip", params=params)

    def skip(self, group: Group, detail: str, step: str = "") -> None:
        """An address not converted; a shared ip_subnet line is reported on its own."""
        shared = {id(v) for v in self.scope.package.ip_subnets}
        values = [v for v in group.values.values() if id(v) not in shared]
        self.scope.record_all(values, Outcome.MANUAL, detail, step)

    def record_subnets(self) -> None:
        """ip_subnet (SUBNET[]) lines: the subnet of the addresses that follow them."""
        for subnet, tags in self.subnet_users.values():
            self.scope.record(subnet, Outcome.MAPPED, f"the subnet of {', '.join(tags)}")
        for value in self.scope.package.ip_subnets:
            if id(value) not in self.subnet_users:
                self.scope.record(value, Outcome.NOTHING, "no ip_address that could be "
                                  "converted follows it")

    def record_monitored(self) -> None:
        """monitored_subnet (SUBNET): watched if one of the package's addresses is in it."""
        for value in self.scope.package.monitored_subnets:
            network, _ = subnet_network(value.text)
            tags = self.networks.get(network, []) if network else []
            if tags:
                self.scope.record(value, Outcome.MAPPED, f"watched by the quick check of "
                                  f"{', '.join(tags)} (link state)")
            else:
                self.scope.record(value, Outcome.MANUAL, "no address of this package is in "
                                  "that subnet, so nothing watches it", "add a generic "
                                  "resource whose quick_check pings a host in that subnet")
