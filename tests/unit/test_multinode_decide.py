"""Where a multi-node hierarchy runs: engine.multinode.decide, pure, as a table of cases
(three nodes, priorities node1 > node2 > node3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tutela.engine.multinode import InstanceView, decide
from tutela.model.config import Equivalency, HierarchySettings

ALL = "node1 node2 node3"


@dataclass(frozen=True)
class Case:
    name: str
    me: str
    running: str
    """Alive nodes with an instance, space-separated."""
    decision: str
    wanted: str
    alive: str = ALL
    failed: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    parts_here: bool = False
    allowed: str | None = None
    instances: int | None = None
    below_min: bool = False


def nodes(text: str) -> frozenset[str]:
    return frozenset(text.split())


CASES = [
    # every alive node of its equivalencies runs one
    Case("cold start: every node starts its own", "node2", "", "restore", ALL, below_min=True),
    Case("running here: nothing to do", "node2", ALL, "none", ALL),
    Case("one powered off: the others keep theirs", "node1", "node1 node2",
         "none", "node1 node2", alive="node1 node2"),
    Case("back after power-on: it starts its own", "node3", "node1 node2",
         "restore", ALL),
    Case("failed here: stays down", "node2", "node1 node3", "none", "node1 node3",
         failed="node2"),
    Case("failed here, parts still up: removed", "node2", "node1 node3", "remove",
         "node1 node3", failed="node2", parts_here=True),
    Case("failed here while running: removed", "node2", ALL, "remove", "node1 node3",
         failed="node2"),
    Case("another's failure takes nothing from this one", "node1", "node1 node3", "none",
         "node1 node3", failed="node2"),
    Case("not in its equivalencies: removed", "node3", ALL, "remove", "node1 node2",
         settings={"equivalencies": (Equivalency(node="node1", priority=1),
                                     Equivalency(node="node2", priority=2))}),
    Case("target out_of_service: removed everywhere", "node1", ALL, "remove", "",
         settings={"target": "out_of_service"}, instances=3),
    Case("target out_of_service, nothing here: nothing", "node1", "", "none", "",
         settings={"target": "out_of_service"}),
    Case("dependencies unmet here: removed", "node1", ALL, "remove", "node2 node3",
         allowed="node2 node3"),
    Case("a partial instance (rolled back restore) here is completed", "node1",
         "node2 node3", "restore", ALL, parts_here=True),
    # min_instances: a reason to report, never a reason to act differently
    Case("below min_instances", "node1", "node1", "none", "node1", alive="node1",
         settings={"min_instances": 2}, below_min=True),
    Case("at min_instances", "node1", "node1 node2", "none", "node1 node2",
         alive="node1 node2", settings={"min_instances": 2}),
    # max_instances, intelligent switchback (the default): running instances stay
    Case("max 2, cold start: the two highest start", "node2", "", "restore",
         "node1 node2", settings={"max_instances": 2}, below_min=True),
    Case("max 2, cold start: the third waits", "node3", "", "none", "node1 node2",
         settings={"max_instances": 2}, below_min=True),
    Case("max 2: the third runs none", "node3", "node1 node2", "none", "node1 node2",
         settings={"max_instances": 2}),
    Case("max 2, node1 off: node3 fills its place", "node3", "node2", "restore",
         "node2 node3", alive="node2 node3", settings={"max_instances": 2}),
    Case("max 2, node1 back: it waits, the running stay (intelligent)", "node1",
         "node2 node3", "none", "node2 node3", settings={"max_instances": 2}),
    Case("max 2, node1 back: node3 keeps its instance (intelligent)", "node3",
         "node2 node3", "none", "node2 node3", settings={"max_instances": 2}),
    Case("max 2, three run (a healed partition): the lowest gives up", "node3", ALL,
         "remove", "node1 node2", settings={"max_instances": 2}),
    Case("max 2, three run: the highest keep theirs", "node1", ALL, "none", "node1 node2",
         settings={"max_instances": 2}),
    Case("max 2, node2 failed: node3 takes the place", "node3", "node1", "restore",
         "node1 node3", failed="node2", settings={"max_instances": 2}),
    # max_instances, automatic switchback: the highest priorities run them
    Case("max 2 automatic, node1 back: node3 gives its place up", "node3", "node2 node3",
         "remove", "node1 node2", settings={"max_instances": 2, "switchback": "automatic"}),
    Case("max 2 automatic, node1 back: it waits for the free place", "node1",
         "node2 node3", "none", "node1 node2",
         settings={"max_instances": 2, "switchback": "automatic"}),
    Case("max 2 automatic, place free: node1 starts", "node1", "node2", "restore",
         "node1 node2", settings={"max_instances": 2, "switchback": "automatic"}),
]


def view(case: Case) -> InstanceView:
    settings = HierarchySettings(
        root="web", target="in_service", multi_node=True,
        equivalencies=(Equivalency(node="node1", priority=1),
                       Equivalency(node="node2", priority=2),
                       Equivalency(node="node3", priority=3)))
    settings = HierarchySettings.model_validate(
        settings.model_dump() | case.settings)
    return InstanceView(
        me=case.me, settings=settings, alive=nodes(case.alive), running_on=nodes(case.running),
        failed_on=nodes(case.failed), parts_here=case.parts_here,
        allowed=None if case.allowed is None else nodes(case.allowed))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide(case: Case) -> None:
    verdict = decide(view(case))
    assert (verdict.decision, verdict.wanted) == (case.decision, nodes(case.wanted))
    running = len(nodes(case.running) & nodes(case.alive))
    assert verdict.instances == (case.instances if case.instances is not None else running)
    assert verdict.below_min == case.below_min


def test_every_node_with_the_same_view_names_the_same_nodes() -> None:
    """No lease: agreement comes from deciding alike on the same reports."""
    for case in CASES:
        if case.failed or case.allowed or case.parts_here:
            continue
        seen = {decide(view(Case(**{**case.__dict__, "me": me}))).wanted
                for me in ALL.split()}
        assert len(seen) == 1, case.name


def test_a_steady_view_never_starts_more_than_max_instances() -> None:
    """Starting on every node that decides "restore" at once, from any running set of a
    stable view, stays within max_instances (or only removes when above it)."""
    for switchback in ("intelligent", "automatic"):
        for running in ("", "node1", "node3", "node2 node3", "node1 node3", ALL):
            settings = {"max_instances": 2, "switchback": switchback}
            starting = [me for me in ALL.split()
                        if decide(view(Case("", me, running, "", "", settings=settings)))
                        .decision == "restore"]
            assert len(nodes(running)) + len(starting) <= max(2, len(nodes(running)))
