"""Reads a Serviceguard cluster ASCII file (cmquerycl or cmgetconf output) into an SgCluster.

NODE_NAME > NETWORK_INTERFACE > HEARTBEAT_IP / STATIONARY_IP, SUBNET > IP_MONITOR nest by position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tutela.migrate.lexer import Issue, Value, read_keywords
from tutela.migrate.sgmodel import (
    Interface,
    Note,
    Outcome,
    Rule,
    SgCluster,
    SgNode,
    Subnet,
    add_to_group,
    note,
)

BONDING = ("bond the node's interfaces (mode active-backup) so the kernel moves addresses "
           "between them")
NO_PLACEMENT = "tutela places a hierarchy by its equivalency priorities only"

RULES: dict[str, Rule] = {
    "auto_start_timeout": Rule(Outcome.NOTHING, "each tutelad starts on its own; a "
                               "hierarchy starts once its node has quorum"),
    "network_polling_interval": Rule(Outcome.NOTHING, "ip resources check their link at "
                                     "every quick check (check_interval, 5 s)"),
    "network_failure_detection": Rule(Outcome.NOTHING, "the ip kit checks link state and, "
                                      "with a ping_list, reachability"),
    "network_auto_failback": Rule(Outcome.NOTHING, "moving addresses between local LANs is "
                                  "bonding's job in a tutela cluster"),
    "max_configured_packages": Rule(Outcome.NOTHING, "tutela has no such limit"),
    "volume_group": Rule(Outcome.NOTHING, "activation belongs to the packages that use "
                         "the volume group (see their vg lines)"),
    "ops_volume_group": Rule(Outcome.MANUAL, "shared (OPS/RAC) volume groups need a "
                             "multi-node hierarchy, which tutela does not have yet",
                             "keep the volume group activated outside tutela"),
    "failover_optimization": Rule(Outcome.NOTHING, "tutela's failover is about a second "
                                  "by design"),
    "configured_io_timeout_extension": Rule(Outcome.NOTHING, "tutela's ownership leases "
                                            "bound when a node must stop writing"),
    "qs_timeout_extension": Rule(Outcome.NOTHING, "the witness answers within the lease "
                                 "renewals; there is no separate timeout"),
    "capacity_name": Rule(Outcome.MANUAL, "no capacities: " + NO_PLACEMENT,
                          "set equivalency priorities so packages spread as you want"),
    "capacity_value": Rule(Outcome.MANUAL, "no capacities: " + NO_PLACEMENT),
    "weight_name": Rule(Outcome.MANUAL, "no package weights: " + NO_PLACEMENT),
    "weight_default": Rule(Outcome.MANUAL, "no package weights: " + NO_PLACEMENT),
    "site_name": Rule(Outcome.MANUAL, "tutela has no sites", "treat each site's nodes by "
                      "equivalency priority"),
    "site": Rule(Outcome.MANUAL, "tutela has no sites"),
}

_LOCKS = ("first_cluster_lock_vg", "second_cluster_lock_vg", "first_cluster_lock_pv",
          "second_cluster_lock_pv", "cluster_lock_lun")
_QUORUM = ("qs_host", "qs_addr", "qs_polling_interval")
_TIMING = ("member_timeout", "heartbeat_interval", "node_timeout")


@dataclass
class _State:
    cluster: SgCluster
    node: SgNode | None = None
    interface: Interface | None = None
    subnet: Subnet | None = None

    def issue(self, value: Value, message: str) -> None:
        self.cluster.issues.append(Issue(value.loc, message))


def parse_cluster(text: str, file: str) -> SgCluster:
    """Every line is either stored for mapping, given a fixed outcome, or an issue."""
    values, issues = read_keywords(text, file)
    state = _State(SgCluster(file, issues=issues))
    for value in values:
        handler = _HANDLERS.get(value.key)
        if handler is not None:
            handler(state, value)
        elif value.key in RULES:
            state.cluster.notes.append(RULES[value.key].apply(value))
        else:
            state.cluster.notes.append(unknown(value))
    return state.cluster


def unknown(value: Value) -> Note:
    return Rule(Outcome.MANUAL, "not a parameter this importer knows",
                "check whether it matters on tutela").apply(value)


def _cluster_name(state: _State, value: Value) -> None:
    if state.cluster.name is not None:
        state.issue(value, f"CLUSTER_NAME given again (first at line "
                           f"{state.cluster.name.loc.line}); this line is ignored")
    else:
        state.cluster.name = value


def _node_name(state: _State, value: Value) -> None:
    if not value.text.strip():
        state.issue(value, "NODE_NAME without a name; this node is ignored")
        state.node = None
    elif any(n.name.text == value.text for n in state.cluster.nodes):
        state.issue(value, f"node {value.text!r} is defined twice; this definition is ignored")
        state.node = None
    else:
        state.node = SgNode(value)
        state.cluster.nodes.append(state.node)
    state.interface = None


def _network_interface(state: _State, value: Value) -> None:
    if state.node is None:
        state.issue(value, "NETWORK_INTERFACE outside a NODE_NAME block; give NODE_NAME first")
        return
    state.interface = Interface(value)
    state.node.interfaces.append(state.interface)


def _address(state: _State, value: Value) -> None:
    if state.interface is None:
        state.issue(value, f"{value.key.upper()} outside a NETWORK_INTERFACE block; give "
                           "NETWORK_INTERFACE first")
        return
    state.interface.addresses.append(value)


def _serial(state: _State, value: Value) -> None:
    if state.node is None:
        state.issue(value, "SERIAL_DEVICE_FILE outside a NODE_NAME block")
    elif state.node.serial is not None:
        state.issue(value, _again(value, state.node.serial))
    else:
        state.node.serial = value


def _again(value: Value, first: Value) -> str:
    return f"{value.key.upper()} given again (first at line {first.loc.line}); this line is ignored"


def _keyed(section: str) -> Callable[[_State, Value], None]:
    def store(state: _State, value: Value) -> None:
        target: dict[str, Value] = getattr(state.cluster, section)
        if value.key in target:
            state.issue(value, _again(value, target[value.key]))
        else:
            target[value.key] = value
    return store


def _lock(state: _State, value: Value) -> None:
    state.cluster.locks.append(value)
    if state.node is not None and value.key != "first_cluster_lock_vg":
        state.node.locks.setdefault(value.key, value)


def _subnet(state: _State, value: Value) -> None:
    state.subnet = Subnet(value)
    state.cluster.subnets.append(state.subnet)


def _ip_monitor(state: _State, value: Value) -> None:
    if state.subnet is None:
        state.issue(value, "IP_MONITOR outside a SUBNET block; give SUBNET first")
    elif state.subnet.monitor is not None:
        state.issue(value, _again(value, state.subnet.monitor))
    else:
        state.subnet.monitor = value


def _polling_target(state: _State, value: Value) -> None:
    if state.subnet is None:
        state.issue(value, "POLLING_TARGET outside a SUBNET block; give SUBNET first")
    else:
        state.subnet.targets.append(value)


def _address_family(state: _State, value: Value) -> None:
    if value.text.lower() == "ipv4":
        state.cluster.notes.append(note(value, Outcome.NOTHING, "tutela's comm paths use IPv4"))
    else:
        state.cluster.notes.append(note(
            value, Outcome.MANUAL, "tutela's comm paths and ip kit use IPv4 addresses",
            "give every node an IPv4 address on each heartbeat network"))


def _user(state: _State, value: Value) -> None:
    add_to_group(state.cluster.users, value, "user_name")


_HANDLERS: dict[str, Callable[[_State, Value], None]] = {
    "cluster_name": _cluster_name,
    "node_name": _node_name,
    "network_interface": _network_interface,
    "heartbeat_ip": _address,
    "stationary_ip": _address,
    "serial_device_file": _serial,
    "subnet": _subnet,
    "ip_monitor": _ip_monitor,
    "polling_target": _polling_target,
    "user_name": _user,
    "user_host": _user,
    "user_role": _user,
    **{key: _lock for key in _LOCKS},
    "hostname_address_family": _address_family,
    **{key: _keyed("quorum") for key in _QUORUM},
    **{key: _keyed("timing") for key in _TIMING},
}
