"""Every kind of message between nodes (and between a node and its witnesses or a node that
joins): one table, so a kind cannot be misspelled where it is sent or served. Pure.

Each message is a sealed frame whose `kind` is one of these names (`lcm/frame.py`; the join
and enrolment exchanges seal theirs with a key from the one-time token instead). A handler
registered on the messenger (`Messenger.handle`) must be one of the kinds with
`served_on_node`; a kind with `every_path` goes out, with its reply, on every live path at
once. docs/architecture.md shows this table (tools/architecture.py writes it from here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tutela.arbiter.messages import AcquireRequest, Release


@dataclass(frozen=True)
class Kind:
    name: str
    route: str
    """Who sends it to whom."""
    payload: str
    """What it carries."""
    purpose: str
    served_by: str
    """The module that answers it."""
    served_on_node: bool = True
    """tutelad serves it through a handler registered on its messenger."""
    every_path: bool = False
    """Sent, and answered, on every live path at once: a path that has just died is still
    ALIVE for up to the detection timeout, and a lease round that went only over it would be
    lost while another path works (the receiver's replay guard keeps one copy)."""

    def __str__(self) -> str:
        return self.name


HEARTBEAT = Kind(
    "hb", "every node to every peer and witness, on every path, every heartbeat interval",
    "the sender's report (`engine/peer_report.py`): configuration version, the nodes it "
    "hears, the hierarchies it holds and those that failed there, why it sees hierarchies "
    "stuck, their recent failovers; now and then the states of the resources it may run or "
    "has not out of service, and when each root last ran there. A witness sends {interval}",
    "liveness (the failure detector) and the cluster view", "lcm/messenger.py",
    served_on_node=False)
REPLY = Kind(
    "reply", "the answering node or witness to the asker",
    "{call, ok, result | error}", "the answer to any request below, matched by its call id",
    "lcm/messenger.py", served_on_node=False)
LEASE_ACQUIRE = Kind(
    AcquireRequest.TYPE, "a candidate or holder to every voter (nodes and witnesses)",
    "`arbiter.messages.AcquireRequest`; the configuration lease's grant also carries the "
    "voter's configuration version and promise",
    "majority-granted leases: the configuration lease and one per clustered hierarchy, "
    "acquired and renewed (docs/leases.md)",
    "daemon/leases.py, witness/served.py", every_path=True)
LEASE_RELEASE = Kind(
    Release.TYPE, "a holder to every voter", "`arbiter.messages.Release`",
    "give a lease back before it ends", "daemon/leases.py, witness/served.py",
    every_path=True)
CONFIG_PROMISE = Kind(
    "config.promise", "the configuration-lease holder to its peers", "{epoch}",
    "promise not to accept changes of an older epoch", "daemon/cluster.py", every_path=True)
CONFIG_PUSH = Kind(
    "config.push", "the node that made a change to its peers",
    "the new version's header, the configuration inline or offered in pieces "
    "(`lcd/transfer.py`)", "replicate a committed configuration version",
    "daemon/cluster.py")
CONFIG_GET = Kind(
    "config.get", "a node that is behind to a peer", "{} or {index} of one piece",
    "fetch the newest configuration version (or one piece of it)", "daemon/cluster.py")
OP_RESTORE = Kind(
    "op.restore", "the node where `--on NODE` was given to NODE", "{tag}",
    "restore a resource there", "daemon/service.py")
OP_REMOVE = Kind(
    "op.remove", "the node where `--on NODE` was given to NODE", "{tag}",
    "take a resource out of service there", "daemon/service.py")
HIERARCHY_CHECK = Kind(
    "hierarchy.check", "the extending node to the target node", "{root}",
    "can this node run every resource of the hierarchy (`check_here`)", "daemon/service.py")
OWNERSHIP_GIVE = Kind(
    "ownership.give", "the node running a switchover to the old owner", "{root}",
    "take the hierarchy out of service and release its lease at once",
    "daemon/ownership.py")
OWNERSHIP_TAKE = Kind(
    "ownership.take", "the node running a switchover to the new owner", "{root}",
    "acquire the hierarchy's lease without the rank wait and restore it",
    "daemon/ownership.py")
OWNERSHIP_FORGET = Kind(
    "ownership.forget", "the node where an administrator restores a clustered hierarchy to "
    "its peers", "{root}",
    "clear every node's mark that the hierarchy failed there, so each is a candidate again",
    "daemon/ownership.py")
MULTINODE_FORGET = Kind(
    "multinode.forget", "the node where an administrator restores or removes a multi-node "
    "hierarchy to its peers", "{root}",
    "clear every node's mark that its instance failed there", "daemon/multinode.py")
KEYS_REKEY = Kind(
    "keys.rekey", "the node running `tutela cluster rotate-key` to every peer and witness, "
    "on the old key", "{phase, id, key (stage only)}",
    "one phase of a key rotation: stage the new key, send with it, renew connections, drop "
    "the old one (docs/cluster.md)", "daemon/keys.py, witness/server.py")
DOCTOR_FACTS = Kind(
    "doctor.facts", "the node running `tutela doctor --cluster` to every peer", "{}",
    "the peer's facts (names, ports, watchdog, tools, disks, clock, free space) for the "
    "checks (docs/doctor.md)", "daemon/doctor.py")
SUPPORT_COLLECT = Kind(
    "support.collect", "the node running `tutela support-bundle` to every peer", "{}",
    "the peer's part of the support bundle (its configuration, status, logs and system "
    "facts, secrets redacted; compressed, docs/support.md)", "daemon/support.py")
EVENTS_READ = Kind(
    "events.read", "the node running `tutela events` to every peer",
    "{hierarchy, since, limit}",
    "the peer's event journal records that match (docs/events.md)", "daemon/events.py")
JOIN = Kind(
    "join", "a joining node to the cluster node it asked, sealed with the token's key",
    "the joining node's name, addresses and watchdog", "ask to join (docs/cluster.md)",
    "daemon/join.py", served_on_node=False)
JOIN_GRANT = Kind(
    "join-grant", "that cluster node to the joining node", "the cluster key and configuration",
    "admit it", "lcm/join.py", served_on_node=False)
JOIN_REFUSED = Kind(
    "join-refused", "that cluster node to the joining node", "why",
    "refuse it (a bad token, a name in use)", "lcm/join.py", served_on_node=False)
WITNESS_ENROL = Kind(
    "witness.enrol", "a cluster node to a witness, sealed with the witness's token",
    "the cluster's name, key and nodes", "enrol the cluster there (docs/witness.md)",
    "witness/server.py", served_on_node=False)
WITNESS_ENROLLED = Kind(
    "witness.enrolled", "the witness to that node", "the witness's voter name",
    "enrolment done", "witness/enroll.py", served_on_node=False)
WITNESS_REFUSED = Kind(
    "witness.refused", "the witness to that node", "why", "enrolment refused",
    "witness/enroll.py", served_on_node=False)

TABLE: tuple[Kind, ...] = (
    HEARTBEAT, REPLY, LEASE_ACQUIRE, LEASE_RELEASE, CONFIG_PROMISE, CONFIG_PUSH, CONFIG_GET,
    OP_RESTORE, OP_REMOVE, HIERARCHY_CHECK, OWNERSHIP_GIVE, OWNERSHIP_TAKE, OWNERSHIP_FORGET,
    MULTINODE_FORGET, KEYS_REKEY, DOCTOR_FACTS, SUPPORT_COLLECT, EVENTS_READ, JOIN, JOIN_GRANT,
    JOIN_REFUSED, WITNESS_ENROL, WITNESS_ENROLLED, WITNESS_REFUSED)
BY_NAME: Mapping[str, Kind] = {kind.name: kind for kind in TABLE}
SERVED_ON_NODE: frozenset[str] = frozenset(k.name for k in TABLE if k.served_on_node)
EVERY_PATH: frozenset[str] = frozenset(k.name for k in TABLE if k.every_path)


def of(kind: Kind | str) -> Kind:
    """The table's entry for `kind`; ValueError for a name that is not in the table."""
    if isinstance(kind, Kind):
        return kind
    try:
        return BY_NAME[kind]
    except KeyError:
        raise ValueError(f"no message kind {kind!r}: each kind is one entry of "
                         "tutela.lcm.kinds.TABLE; use one of its constants") from None
