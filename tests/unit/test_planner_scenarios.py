"""Planner regression scenarios: a hierarchy and states in, the expected steps out.

Each file in scenarios/ holds resources, states, an operation and the expected plan, in the
manner of Pacemaker's scheduler regression tests. Add a file to add a case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tutela.engine.planner import Plan, plan_remove, plan_restore
from tutela.model.config import Resource
from tutela.model.hierarchy import build_hierarchies, hierarchy_of
from tutela.model.states import ResourceState

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def render(plan: Plan) -> list[str]:
    return [f"{s.action} {s.tag}" + (f" after {','.join(sorted(s.after))}" if s.after else "")
            for s in plan.steps]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    resources = [Resource(kit="generic", **r) for r in case["resources"]]
    states = {t: ResourceState(s) for t, s in case.get("states", {}).items()}
    action, target = case["operation"].split()
    hierarchy = hierarchy_of(build_hierarchies(resources), target)
    assert hierarchy is not None
    planner = plan_restore if action == "restore" else plan_remove
    assert render(planner(hierarchy, target, states)) == case["expected"]


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 6
