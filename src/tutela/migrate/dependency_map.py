"""A package's dependencies (dependency_name, dependency_condition, dependency_location)
become dependencies of its hierarchy once every package is mapped, since they name each
other: `PKG = up` with same_node / any_node / different_node maps one to one; an exclusion
(`PKG = down`) has no tutela equivalent and is a manual step.

A dependency the configuration would refuse (lcd/validate.py: a cycle, no node in common,
a hierarchy without equivalencies) is left out and reported, so the result always applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tutela.engine.dependencies import describe
from tutela.lcd.validate import dependency_problems
from tutela.migrate.context import Context
from tutela.migrate.package_map import PackageResult
from tutela.migrate.sgmodel import Group, Outcome
from tutela.model.config import ClusterConfig, HierarchyDependency
from tutela.model.errors import Problem

LOCATIONS = ("same_node", "any_node", "different_node")
_CONDITION = re.compile(r"^\s*([^\s=!]+)\s*(!?=)\s*(\S+)\s*$")
_FIELD = re.compile(r"^hierarchies\[(?P<root>[^\]]+)\]\.dependencies\[(?P<index>\d+)\]")


@dataclass(frozen=True)
class Candidate:
    """A dependency read from one group of lines, not yet checked against the others."""

    result: PackageResult
    group: Group
    dependency: HierarchyDependency


def record_dependencies(results: list[PackageResult], ctx: Context) -> None:
    """Give each hierarchy the dependencies of its package; every line gets its note."""
    roots = {r.name: r.root for r in results}
    candidates: list[Candidate] = []
    for result in results:
        for group in result.dependencies:
            candidate = _candidate(result, group, roots, candidates, ctx)
            if candidate is not None:
                candidates.append(candidate)
    kept = _feasible(candidates, results, ctx)
    for result in results:
        mine = tuple(c.dependency for c in kept if c.result is result)
        if result.hierarchy is not None and mine:
            result.hierarchy = result.hierarchy.model_copy(update={"dependencies": mine})
            ctx.ledger.section(_section(result), "Dependencies: " + "; ".join(
                describe(d) for d in mine) + " (restored only where and when that holds, "
                "taken out of service when it stops holding).")
    for candidate in kept:
        dependency = candidate.dependency
        _record(candidate.result, candidate.group, ctx, Outcome.MAPPED,
                f"hierarchies[{candidate.result.root}].dependencies: {{hierarchy: "
                f"{dependency.hierarchy}, location: {dependency.location}}} "
                f"({describe(dependency)})")


def _candidate(result: PackageResult, group: Group, roots: dict[str, str | None],
               earlier: list[Candidate], ctx: Context) -> Candidate | None:
    """The dependency one group of lines asks for, or None once its lines are reported."""
    if not any(v.text.strip() for v in group.values.values()):
        _record(result, group, ctx, Outcome.NOTHING, "empty template entry")
        return None
    condition = group.text("dependency_condition").strip()
    location = group.text("dependency_location").strip().lower() or "same_node"
    match = _CONDITION.match(condition)
    if match is None or match.group(2) != "=" or match.group(3).lower() not in ("up", "down"):
        _record(result, group, ctx, Outcome.ERROR, f"dependency_condition {condition!r} is "
                "not PACKAGE = up or PACKAGE = down: not carried over", "correct it and run "
                "the import again")
        return None
    if location not in LOCATIONS:
        _record(result, group, ctx, Outcome.ERROR, f"unknown dependency_location "
                f"{location!r}: not carried over", f"use one of {', '.join(LOCATIONS)}")
        return None
    other = match.group(1)
    if match.group(3).lower() == "down":
        _exclusion(result, group, other, location, ctx)
        return None
    return _up(result, group, other, location, roots, earlier, ctx)


def _up(result: PackageResult, group: Group, other: str, location: str,
        roots: dict[str, str | None], earlier: list[Candidate],
        ctx: Context) -> Candidate | None:
    """`other = up`: a dependency on other's hierarchy, if both packages have one."""
    mine, theirs = result.root, roots.get(other)
    entry = f"hierarchies[{mine or 'ROOT'}].dependencies: [{{hierarchy: {theirs or 'ROOT'}, " \
            f"location: {location}}}]"
    if other == result.name:
        _record(result, group, ctx, Outcome.ERROR, "the package depends on itself: not "
                "carried over", "correct the dependency_condition")
    elif mine is None:
        _record(result, group, ctx, Outcome.MANUAL, "the package has no hierarchy, so its "
                "dependency is not carried over", f"once it has one, add {entry}")
    elif other not in roots:
        _record(result, group, ctx, Outcome.MANUAL, f"package {other} is not among the "
                "inputs: the dependency is not carried over", f"give {other}'s package file "
                f"to the import too, or add {entry} by hand")
    elif theirs is None:
        _record(result, group, ctx, Outcome.MANUAL, f"package {other} has no hierarchy: "
                "the dependency is not carried over", f"once {other} has one, add {entry}")
    elif any(c.result is result and c.dependency.hierarchy == theirs for c in earlier):
        _record(result, group, ctx, Outcome.NOTHING, f"{other} is already a dependency of "
                "this package; tutela keeps one entry per hierarchy needed")
    else:
        return Candidate(result, group, HierarchyDependency.model_validate(
            {"hierarchy": theirs, "location": location}))
    return None


def _exclusion(result: PackageResult, group: Group, other: str, location: str,
               ctx: Context) -> None:
    """`other = down`: tutela's dependencies only ever need another hierarchy up."""
    if location == "same_node":
        step = (f"keep {result.name} and {other} on different nodes by hand: give them "
                "different first-priority nodes, and check after each failover")
    else:
        step = (f"never run {result.name} and {other} at once: take one out of service "
                "(tutela remove ROOT) before you start the other")
    _record(result, group, ctx, Outcome.MANUAL, f"an exclusion ({other} must be down "
            f"{_where_down(location)} while {result.name} runs): tutela's dependencies "
            "only need another hierarchy up, so it would not stop or hold back either", step)


def _where_down(location: str) -> str:
    return {"same_node": "on its node", "any_node": "everywhere",
            "different_node": "on every other node"}[location]


def _feasible(candidates: list[Candidate], results: list[PackageResult],
              ctx: Context) -> list[Candidate]:
    """The candidates the configuration accepts; each it refuses is reported with the
    reason and fix validation gives, and left out (one at a time: a cycle loses one)."""
    kept = list(candidates)
    roots = {r.root for r in results if r.root is not None}
    while True:
        problems = dependency_problems(_with(kept, results), roots)
        refused = next((c for c in (_named(p, kept) for p in problems) if c), None)
        if refused is None:
            return kept
        candidate, problem = refused
        kept.remove(candidate)
        _record(candidate.result, candidate.group, ctx, Outcome.MANUAL, f"{problem.message} "
                "(tutela refuses such a dependency, so it is left out)", problem.fix)


def _with(candidates: list[Candidate], results: list[PackageResult]) -> ClusterConfig:
    """Just the hierarchies, each with its candidate dependencies, for validation."""
    hierarchies = [r.hierarchy.model_copy(update={"dependencies": tuple(
        c.dependency for c in candidates if c.result is r)})
        for r in results if r.hierarchy is not None]
    return ClusterConfig(name="migrated", hierarchies=tuple(hierarchies))


def _named(problem: Problem, candidates: list[Candidate]) -> tuple[Candidate, Problem] | None:
    """The candidate a validation problem names by its field."""
    match = _FIELD.match(problem.field)
    if match is None:
        return None
    mine = [c for c in candidates if c.result.root == match["root"]]
    index = int(match["index"])
    return (mine[index], problem) if index < len(mine) else None


def _record(result: PackageResult, group: Group, ctx: Context, outcome: Outcome,
            detail: str, step: str = "") -> None:
    """The same outcome on each line of the group; the step once, on the first."""
    values = sorted(group.values.values(), key=lambda v: v.loc.line)
    for i, value in enumerate(values):
        ctx.ledger.record(_section(result), value, outcome, detail, step if i == 0 else "")


def _section(result: PackageResult) -> str:
    return f"Package `{result.name}`"
