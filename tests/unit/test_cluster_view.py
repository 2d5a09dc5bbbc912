"""The one cluster view: who runs a hierarchy, and where a resource is up."""

from __future__ import annotations

from dataclasses import dataclass

from tutela.engine.cluster_view import Snapshot, runs_there
from tutela.engine.peer_report import PeerReport
from tutela.model.states import ResourceState


@dataclass
class Runtime:
    state: ResourceState


def view(reports: dict[str, PeerReport], here: dict[str, ResourceState] | None = None
         ) -> Snapshot:
    states = {tag: Runtime(state) for tag, state in (here or {}).items()}
    return Snapshot.of("a", reports, {"app": "2026-12-07T06:00:00+00:00"}, frozenset(),
                       states)


def test_the_owner_is_an_alive_candidate_holding_the_lease_or_running_it() -> None:
    seen = view({"b": PeerReport(holds=frozenset({"app"})),
                 "c": PeerReport(states={"app": "ISU"}), "d": PeerReport()})
    assert seen.owner("app", ["c", "b", "d"]) == "b"  # the first by name
    assert seen.owner("app", ["c", "d"]) == "c"
    assert seen.owner("app", ["d", "e"]) is None  # e: not alive
    assert seen.owner("db", ["b", "c"]) is None


def test_up_on_counts_this_node_and_alive_peers_with_it_in_service() -> None:
    seen = view({"b": PeerReport(states={"app": "ISP"}), "c": PeerReport(states={"app": "OSF"}),
                 "d": PeerReport(holds=frozenset({"app"}))},  # the lease, not yet in service
                here={"app": ResourceState.ISP})
    assert seen.up_on("app") == {"a", "b"}
    assert seen.runs("app") == "a"
    assert view({"c": PeerReport(states={"app": "ISP"}),
                 "b": PeerReport(states={"app": "ISU"})}).runs("app") == "b"
    assert view({}).runs("app") is None and view({}).up_on("app") == frozenset()


def test_this_nodes_failed_and_in_service_tags_and_last_runs() -> None:
    seen = view({"b": PeerReport(ran={"app": "2026-12-07T07:00:00+00:00"})},
                here={"app": ResourceState.OSF, "ip": ResourceState.ISP})
    assert seen.failed_here == {"app"} and seen.in_service_here == {"ip"}
    assert set(seen.ran) == {"a", "b"}


def test_a_node_runs_what_it_holds_or_has_in_service() -> None:
    assert runs_there(PeerReport(holds=frozenset({"app"})), "app")
    assert runs_there(PeerReport(states={"app": "ISP"}), "app")
    assert not runs_there(PeerReport(states={"app": "OSU"}), "app")
