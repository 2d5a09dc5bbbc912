"""What a node tells its peers with every heartbeat, typed: one parse from the wire and one
serialisation to it. Pure.

The wire format is a JSON object whose keys are the field names below (`version` a list
of two numbers, sets as lists, `stuck` grouped as `engine.stuck.to_payload` writes it).
A peer of another tutela version may leave a field out or send it in a shape this one does
not read: the field gets its default and a debug line says so; parsing never raises, so a
heartbeat from a newer or older peer cannot break the heartbeat path (a rolling upgrade).
The bulky fields (`states`, `ran`) go out only now and then (daemon/cluster.py); a
heartbeat without them keeps the ones the peer sent last.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tutela.engine import stuck
from tutela.engine.damping import History
from tutela.engine.stuck import Stuck
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import Hierarchy
from tutela.model.states import ResourceState

log = logging.getLogger("tutela.peer_report")
Version = tuple[int, int]
"""A configuration version: (generation, epoch)."""
BULKY = ("states", "ran")
"""Fields sent only now and then; a heartbeat without them keeps the last ones."""
T = TypeVar("T")


@dataclass(frozen=True)
class PeerReport:
    """One node's last word to its peers."""

    generation: int | None = None
    """Its configuration generation (None: not said)."""
    version: Version = (0, 0)
    """Its configuration version; (0, 0) when it has none."""
    hears: frozenset[str] | None = None
    """The nodes it hears (None: a tutela that does not say)."""
    holds: frozenset[str] = frozenset()
    """The roots whose leases it holds."""
    failed: frozenset[str] = frozenset()
    """The roots that failed there: it is no candidate for them."""
    stuck: Mapping[str, Stuck] = field(default_factory=dict)
    """Root -> why it sees that hierarchy running nowhere."""
    failovers: Mapping[str, History] = field(default_factory=dict)
    """Root it holds -> its recent failovers (failover damping)."""
    states: Mapping[str, str] = field(default_factory=dict)
    """Resource tag -> its state there (bulky)."""
    ran: Mapping[str, str] = field(default_factory=dict)
    """Root -> when it last went into service there, ISO UTC (bulky)."""
    unleased: Mapping[str, float] = field(default_factory=dict)
    """Root it runs without its lease (re-adopted after a restart, just extended) ->
    seconds from this report until it has it out of service, unless it wins the lease
    first: a node that sees it vanish waits that long before taking it over."""

    def to_wire(self, bulky: bool = True) -> dict[str, Any]:
        """The heartbeat payload; without the bulky fields unless `bulky`."""
        wire: dict[str, Any] = {
            "generation": self.generation, "version": list(self.version),
            "holds": sorted(self.holds), "failed": sorted(self.failed),
            "stuck": stuck.to_payload(dict(self.stuck)),
            "failovers": {root: list(times) for root, times in self.failovers.items()},
            # rounded up: a peer must never wait less than this node takes
            "unleased": {root: math.ceil(left * 1000) / 1000
                         for root, left in self.unleased.items()}}
        if self.hears is not None:
            wire["hears"] = sorted(self.hears)
        if bulky:
            wire |= {"states": dict(self.states), "ran": dict(self.ran)}
        return wire

    def bulky_part(self) -> tuple[Mapping[str, str], Mapping[str, str]]:
        """What goes out only now and then: compared with the last sent to see a change."""
        return self.states, self.ran


FIELDS = tuple(PeerReport.__dataclass_fields__)


class Stated(Protocol):
    """What the engine keeps per resource (engine/node.py RuntimeState), as far as read here."""

    @property
    def state(self) -> ResourceState: ...


def wire_states(states: Mapping[str, Stated],
                always: Collection[str] | None = None) -> dict[str, str]:
    """Resource tag -> its state as a heartbeat carries it (`states`): with `always`
    (`reported_tags`), those resources and any other that is not out of service here."""
    # Enum.value is a slow property: looked up once per state, not once per resource.
    value_of = {state: state.value for state in ResourceState}
    if always is None:
        return {tag: value_of[resource.state] for tag, resource in states.items()}
    osu = ResourceState.OSU
    return {tag: value_of[resource.state] for tag, resource in states.items()
            if tag in always or resource.state is not osu}


def reported_tags(config: ClusterConfig, hierarchies: Iterable[Hierarchy],
                  me: str) -> frozenset[str]:
    """The resources whose states `me`'s heartbeats always carry: those of the hierarchies
    it may run (its node is in their equivalencies, or they have none). The rest are out
    of service there (OSU) unless something put them otherwise, and are carried only then.
    In a 32-node cluster of 3-node hierarchies that is a tenth of the states: peers read
    a resource's state only on the nodes of its equivalencies (ownership, dependencies,
    multi-node instances, `tutela status`) or where it is not OSU."""
    tags: set[str] = set()
    for hierarchy in hierarchies:
        nodes = {e.node for e in config.hierarchy_settings(hierarchy.root).equivalencies}
        if not nodes or me in nodes:
            tags.update(hierarchy.members)
    return frozenset(tags)


def parse(payload: Mapping[str, Any], previous: PeerReport | None = None) -> PeerReport:
    """A peer's report from its heartbeat's payload, keeping `previous`'s bulky fields when
    this heartbeat has none. Never raises: what is missing or malformed gets its default."""
    kept = previous or PeerReport()
    missing = [key for key in FIELDS if key not in payload and key not in BULKY]
    if missing:
        log.debug("heartbeat without %s (a witness, or a peer of another tutela version)",
                  ", ".join(missing))
    return PeerReport(
        generation=_field(payload, "generation", None, _optional_int),
        version=_field(payload, "version", (0, 0), _version),
        hears=_field(payload, "hears", None, _names),
        holds=_field(payload, "holds", frozenset(), _names),
        failed=_field(payload, "failed", frozenset(), _names),
        stuck=_field(payload, "stuck", {}, _stuck),
        failovers=_field(payload, "failovers", {}, _histories),
        states=_bulky(payload, "states", kept.states),
        ran=_bulky(payload, "ran", kept.ran),
        unleased=_field(payload, "unleased", {}, _seconds))


def _field(payload: Mapping[str, Any], key: str, default: T, read: Callable[[Any], T]) -> T:
    if key not in payload:
        return default
    try:
        return read(payload[key])
    except (TypeError, ValueError, AttributeError) as error:
        log.debug("heartbeat field %r unreadable (%s): %r", key, error, payload[key])
        return default


def _bulky(payload: Mapping[str, Any], key: str, kept: Mapping[str, str]
           ) -> Mapping[str, str]:
    """A bulky field; `kept` when the heartbeat leaves it out or says the same again (a
    peer sends it unchanged every few seconds: one comparison, not 500 conversions)."""
    if payload.get(key) == kept:
        return kept
    return _field(payload, key, kept, _strings)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _version(value: Any) -> Version:
    generation, epoch = value
    return int(generation), int(epoch)


def _names(value: Any) -> frozenset[str]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"a list expected, not {type(value).__name__}")
    return frozenset(map(str, value))


def _strings(value: Any) -> dict[str, str]:
    return {str(key): str(item) for key, item in _mapping(value).items()}


def _seconds(value: Any) -> dict[str, float]:
    found = {str(key): float(item) for key, item in _mapping(value).items()}
    if not all(math.isfinite(left) and left >= 0 for left in found.values()):
        raise ValueError("seconds must be finite and not negative")
    return found


def _histories(value: Any) -> dict[str, History]:
    return {str(root): tuple(sorted(map(float, times)))
            for root, times in _mapping(value).items()}


def _stuck(value: Any) -> dict[str, Stuck]:
    return stuck.from_payload(value)


def _mapping(value: Any) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"an object expected, not {type(value).__name__}")
    return value
