"""Serviceguard package dependencies become dependencies between hierarchies
(migrate/dependency_map.py): `PKG = up` at same_node / any_node / different_node maps one to
one; exclusions, unknown packages and dependencies tutela would refuse are reported, and the
result always validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.migrate import Migration, check, convert
from tutela.migrate.sgmodel import Note, Outcome
from tutela.model.config import HierarchyDependency

CLUSTER = "CLUSTER_NAME c1\n" + "".join(
    f"NODE_NAME n{i}\n  NETWORK_INTERFACE eth0\n    HEARTBEAT_IP 198.51.100.{i}\n"
    for i in (1, 2, 3))


def package(name: str, nodes: str = "n1 n2", *dependencies: str) -> str:
    """A failover package with one service on `nodes`; each dependency is
    'CONDITION[, LOCATION]'."""
    lines = [f"package_name {name}", *(f"node_name {n}" for n in nodes.split()),
             f"service_name {name}", f"service_cmd /opt/{name}"]
    for number, dependency in enumerate(dependencies):
        condition, _, location = dependency.partition(",")
        lines += [f"dependency_name dep{number}", f"dependency_condition {condition}"]
        lines += [f"dependency_location {location.strip()}"] if location else []
    return "\n".join(lines) + "\n"


def migrate(tmp_path: Path, **packages: str) -> Migration:
    files = {"c.ascii": CLUSTER, **{f"{name}.conf": text for name, text in packages.items()}}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    migration = convert([tmp_path / name for name in files], tmp_path / "scripts")
    check(migration)  # the result validates as `tutela apply` would
    return migration


def dependencies(migration: Migration, root: str) -> list[HierarchyDependency]:
    return [d for h in migration.config.hierarchies if h.root == root for d in h.dependencies]


def notes(migration: Migration, name: str) -> list[Note]:
    return sorted((n for s, n in migration.ledger.entries
                   if s == f"Package `{name}`" and n.subject.startswith("dependency_")),
                  key=lambda n: n.loc.line)


@pytest.mark.parametrize(("written", "location"), [
    ("", "same_node"),  # Serviceguard's default
    ("same_node", "same_node"), ("ANY_NODE", "any_node"), ("different_node", "different_node")])
def test_up_maps_each_location(tmp_path: Path, written: str, location: str) -> None:
    migration = migrate(tmp_path, db=package("db"),
                        app=package("app", "n2 n1", f"db = up, {written}" if written
                                    else "db = UP"))
    assert dependencies(migration, "app-svc-app") == [
        HierarchyDependency(hierarchy="db-svc-db", location=location)]  # type: ignore[arg-type]
    assert {n.outcome for n in notes(migration, "app")} == {Outcome.MAPPED}
    assert f"location: {location}" in notes(migration, "app")[0].detail


@pytest.mark.parametrize(("location", "step"), [
    ("same_node", "keep app and db on different nodes by hand"),
    ("any_node", "never run app and db at once")])
def test_an_exclusion_is_a_manual_step_with_its_reason(tmp_path: Path, location: str,
                                                        step: str) -> None:
    migration = migrate(tmp_path, db=package("db"),
                        app=package("app", "n1 n2", f"db = down, {location}"))
    assert dependencies(migration, "app-svc-app") == []
    first, *rest = notes(migration, "app")
    assert first.outcome is Outcome.MANUAL and first.step.startswith(step)
    assert "tutela's dependencies only need another hierarchy up" in first.detail
    assert all(n.outcome is Outcome.MANUAL and not n.step for n in rest)


@pytest.mark.parametrize(("condition", "outcome", "words"), [
    ("reports = up", Outcome.MANUAL, "package reports is not among the inputs"),
    ("app = up", Outcome.ERROR, "the package depends on itself"),
    ("db != up", Outcome.ERROR, "is not PACKAGE = up or PACKAGE = down"),
    ("db = halted", Outcome.ERROR, "is not PACKAGE = up or PACKAGE = down"),
    ("db = up, next_node", Outcome.ERROR, "unknown dependency_location 'next_node'"),
])
def test_what_cannot_be_mapped_is_reported(tmp_path: Path, condition: str, outcome: Outcome,
                                           words: str) -> None:
    migration = migrate(tmp_path, db=package("db"), app=package("app", "n1", condition))
    assert dependencies(migration, "app-svc-app") == []
    assert {n.outcome for n in notes(migration, "app")} == {outcome}
    assert words in notes(migration, "app")[0].detail


def test_a_dependency_tutela_would_refuse_is_left_out_with_validations_fix(
        tmp_path: Path) -> None:
    migration = migrate(tmp_path, db=package("db", "n1 n2"),
                        app=package("app", "n3", "db = up, same_node"))
    assert dependencies(migration, "app-svc-app") == []
    first = notes(migration, "app")[0]
    assert first.outcome is Outcome.MANUAL
    assert first.detail.startswith("same_node: app-svc-app runs on n3 and db-svc-db on n1, "
                                   "n2, never on the same node")
    assert first.step == ("give app-svc-app and db-svc-db a node in common in their "
                          "equivalencies, or use location any_node")


def test_a_cycle_loses_one_dependency_and_keeps_the_rest(tmp_path: Path) -> None:
    migration = migrate(tmp_path, a=package("a", "n1 n2", "b = up, any_node"),
                        b=package("b", "n1 n2", "c = up, any_node"),
                        c=package("c", "n1 n2", "a = up, any_node"))
    kept = [(h.root, d.hierarchy) for h in migration.config.hierarchies for d in h.dependencies]
    assert len(kept) == 2
    refused = [n for name in "abc" for n in notes(migration, name)
               if n.outcome is Outcome.MANUAL]
    assert "a cycle of dependencies: a-svc-a -> b-svc-b -> c-svc-c -> a-svc-a" in \
        refused[0].detail


def test_a_second_dependency_on_the_same_package_is_noted(tmp_path: Path) -> None:
    migration = migrate(tmp_path, db=package("db"),
                        app=package("app", "n1 n2", "db = up", "db = up, any_node"))
    assert dependencies(migration, "app-svc-app") == [HierarchyDependency(hierarchy="db-svc-db")]
    assert [n.outcome for n in notes(migration, "app")] == [Outcome.MAPPED] * 2 + [
        Outcome.NOTHING] * 3


def test_a_multi_node_package_may_be_needed(tmp_path: Path) -> None:
    shared = package("shared", "n1 n2 n3").replace("\n", "\npackage_type multi_node\n", 1)
    migration = migrate(tmp_path, shared=shared,
                        app=package("app", "n1 n2", "shared = up, same_node"))
    assert dependencies(migration, "app-svc-app") == [
        HierarchyDependency(hierarchy="shared-svc-shared")]
    assert migration.config.hierarchy_settings("shared-svc-shared").multi_node
