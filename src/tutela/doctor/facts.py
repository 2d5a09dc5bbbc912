"""What doctor knows of each node: plain data the probes gather and the checks read.

JSON both ways (a peer sends its NodeFacts over the comm paths), so every fact is a plain
value: None means "not found out here" and the text of an error says why.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from tutela.model.config import ClusterConfig

CONNECTED = "ok"
"""The outcome of a connection or bind that worked; anything else says why it did not: one
of the words below, or the error's text."""
REFUSED = "connection refused"
"""Nothing listens there (or a firewall rejects)."""
NO_ANSWER = "no answer"
"""The connection timed out: a firewall drops it, or the link or route is down."""
IN_USE = "port in use"
"""Another program listens on the address and port."""
NO_ADDRESS = "no such address here"
"""This node does not have the path's local address."""


class Facts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PathFacts(Facts):
    """One comm path as this node sees it."""

    name: str
    peer: str
    kind: Literal["tcp", "udp", "tty"]
    local: str
    remote: str
    state: str | None = None
    """ALIVE or DEAD, from the running tutelad's heartbeats; None without one."""
    connect: str | None = None
    """Without tutelad: CONNECTED or why a TCP connection from `local` to the peer's port
    failed; None when not tried."""
    listen: str | None = None
    """Without tutelad: CONNECTED if this node could listen on `local` and the port (a tty:
    open its device), or why not; None when not tried."""


class PeerProbe(Facts):
    """An address given with `--peer` before joining: what the join would use."""

    address: str
    port: int
    connect: str
    network: str | None
    """This node's address on the peer address's network; None if it has none there."""


class WitnessFacts(Facts):
    address: str
    state: str | None = None
    """ALIVE or DEAD from the running tutelad; None without one."""
    connect: str | None = None
    """Without tutelad: CONNECTED or why a TCP connection failed."""


class WatchdogFacts(Facts):
    device: str
    present: bool
    min_timeout: float
    """0 for the lab's fractional watchdog; whole seconds for a Linux device."""
    identity: str = ""
    problem: str | None = None
    """Why the running tutelad last failed to arm or pet it; None if it did not."""


class DiskFacts(Facts):
    """The device of a filesystem resource this node may run."""

    device: str
    present: bool
    block: bool = False
    uuid: str | None = None
    mmp: bool | None = None
    """ext4 multi-mount protection; None when not ext4 or not readable."""
    error: str | None = None
    """Why the UUID or the features could not be read."""


class ResourceProblem(Facts):
    """What keeps a resource from running on this node (its kit's check)."""

    tag: str
    field: str
    message: str


class SpaceFacts(Facts):
    path: str
    free: int
    total: int


class ClockFacts(Facts):
    wall: float
    """This node's wall clock (Unix time) when it began gathering."""
    processing: float = 0.0
    """Seconds from then until its facts were ready."""


class NodeFacts(Facts):
    node: str
    initialised: bool
    daemon: bool
    """Whether the running tutelad gathered these (path states are its heartbeats')."""
    hostname: str
    resolution: dict[str, list[str] | None]
    """Name -> the IPv4 addresses it resolves to here; None if it does not resolve."""
    addresses: list[str]
    """This host's global IPv4 addresses with prefix: the networks a join would use."""
    paths: list[PathFacts] = []
    peers: list[PeerProbe] = []
    witnesses: list[WitnessFacts] = []
    watchdog: WatchdogFacts
    tools: dict[str, str | None]
    """Program -> where it was found on PATH; None if it was not."""
    fence_program: str | None = None
    """With fencing 'agent': the fence command's program, as it is named there."""
    fence_found: bool | None = None
    disks: list[DiskFacts] = []
    resource_problems: list[ResourceProblem] = []
    space: SpaceFacts
    clock: ClockFacts


class ClockSample(Facts):
    """A peer's clock against this node's, from one request over the comm paths."""

    offset: float
    """Seconds the peer's clock is ahead of this node's (negative: behind)."""
    uncertainty: float
    """The true offset is within `offset` plus or minus this (half the round trip)."""


class Situation(Facts):
    """Everything the checks look at."""

    config: ClusterConfig | None
    """None before this node is initialised (before `tutela init` or `tutela join`)."""
    here: str
    """This node's name (its host name before it is initialised)."""
    nodes: dict[str, NodeFacts]
    """This node's facts and, with --cluster, those of every peer that answered."""
    cluster: bool = False
    """Whether --cluster was asked for."""
    unanswered: dict[str, str] = {}
    """Peer -> why it gave no facts (with --cluster)."""
    clocks: dict[str, ClockSample] = {}
    """Peer -> its clock against this node's (with --cluster)."""
    daemon_error: str | None = None
    """With --cluster: why the local tutelad could not be asked."""


def clock_sample(asked_at: float, round_trip: float, peer: ClockFacts) -> ClockSample:
    """The peer read its clock (`peer.wall`) somewhere within the round trip, less the
    time it spent gathering: assume the middle, as NTP does; the error is at most half."""
    in_flight = max(0.0, round_trip - peer.processing)
    return ClockSample(offset=peer.wall - (asked_at + in_flight / 2),
                       uncertainty=in_flight / 2)
