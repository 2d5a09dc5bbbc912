"""Checks a whole configuration before it is committed: graph, kit parameters, references.

Collects every problem it can find, so one error report tells the administrator all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tutela.kits.registry import get_kit
from tutela.lcd.disk_voter import disk_voter_problems
from tutela.lcd.lease import lease_problems
from tutela.lcd.notifications import notification_problems
from tutela.model.config import ClusterConfig, HierarchyDependency, HierarchySettings
from tutela.model.errors import ConfigError, Problem
from tutela.model.hierarchy import Hierarchy, build_hierarchies, find_cycle


def validate_config(config: ClusterConfig) -> list[Hierarchy]:
    """Raise ConfigError listing every problem; return the hierarchies when there are none."""
    problems = [
        *_duplicates("nodes", (n.name for n in config.nodes)),
        *_duplicates("resources", (r.tag for r in config.resources)),
        *_duplicates("hierarchies", (h.root for h in config.hierarchies)),
        *_duplicates("notifications", (n.name for n in config.notifications)),
        *notification_problems(config),
        *_kit_problems(config),
        *_node_references(config),
        *lease_problems(config),
        *disk_voter_problems(config),
    ]
    if problems:
        raise ConfigError(problems)
    hierarchies = build_hierarchies(config.resources)
    roots = {h.root for h in hierarchies}
    misplaced = [
        Problem(f"hierarchies[{h.root}]", f"{h.root!r} is not the root of a hierarchy",
                f"use one of: {', '.join(sorted(roots)) or '(no resources yet)'}")
        for h in config.hierarchies if h.root not in roots
    ]
    problems = [*misplaced, *dependency_problems(config, roots),
                *_multi_node_problems(config, hierarchies)]
    if problems:
        raise ConfigError(problems)
    return hierarchies


ONE_NODE_KITS = {
    "ip": "a virtual address must answer from one node only (two would split its clients)",
    "filesystem": "a shared disk's filesystem mounted on two nodes at once is corrupted",
}
"""Kits whose resource may be in service on one node at a time, and why: a multi-node
hierarchy, which runs on several nodes at once, may not have them."""


def _multi_node_problems(config: ClusterConfig, hierarchies: list[Hierarchy]
                         ) -> list[Problem]:
    """A multi-node hierarchy with a resource that must not run on two nodes at once."""
    problems = []
    for hierarchy in hierarchies:
        if not config.hierarchy_settings(hierarchy.root).multi_node:
            continue
        for tag in sorted(hierarchy.members):
            resource = config.resource(tag)
            if resource is not None and resource.kit in ONE_NODE_KITS:
                problems.append(Problem(
                    f"hierarchies[{hierarchy.root}].multi_node",
                    f"{hierarchy.root} runs on several nodes at once, but its resource "
                    f"{tag} ({resource.kit}) may not: {ONE_NODE_KITS[resource.kit]}",
                    f"take {tag} out of {hierarchy.root}'s hierarchy (a hierarchy of its "
                    f"own, without multi_node), or set multi_node: false"))
    return problems


def _duplicates(section: str, names: Iterable[str]) -> list[Problem]:
    return [Problem(f"{section}[{name}]", f"{name!r} is defined {count} times",
                    "keep one definition")
            for name, count in Counter(names).items() if count > 1]


def _kit_problems(config: ClusterConfig) -> list[Problem]:
    problems: list[Problem] = []
    for resource in config.resources:
        prefix = f"resources[{resource.tag}]"
        try:
            get_kit(resource.kit, f"{prefix}.kit").parse_params(resource.params, f"{prefix}.params")
        except ConfigError as error:
            problems.extend(error.problems)
    return problems


def _node_references(config: ClusterConfig) -> list[Problem]:
    known = {n.name for n in config.nodes}
    fix = f"use a node of this cluster: {', '.join(sorted(known))}"
    problems = [
        Problem(f"hierarchies[{h.root}].equivalencies", f"unknown node {e.node!r}", fix)
        for h in config.hierarchies for e in h.equivalencies if e.node not in known
    ]
    problems += [
        Problem(f"comm_paths[{'-'.join(p.nodes)}]", f"unknown node {node!r}", fix)
        for p in config.comm_paths for node in p.nodes if node not in known
    ]
    return problems


def dependency_problems(config: ClusterConfig, roots: set[str]) -> list[Problem]:
    """Dependencies between hierarchies that could never be met (docs/configuration.md,
    "Dependencies between hierarchies")."""
    problems: list[Problem] = []
    for settings in config.hierarchies:
        for index, dependency in enumerate(settings.dependencies):
            field = f"hierarchies[{settings.root}].dependencies[{index}].hierarchy"
            if dependency.hierarchy == settings.root:
                problems.append(Problem(field, f"{settings.root} depends on itself",
                                        "remove this dependency"))
            elif dependency.hierarchy not in roots:
                problems.append(Problem(
                    field, f"{dependency.hierarchy!r} is not the root of a hierarchy",
                    f"use one of: {', '.join(sorted(roots - {settings.root})) or '(none)'}"))
            else:
                needed = config.hierarchy_settings(dependency.hierarchy)
                problems += _placement_problems(field, settings, dependency, needed)
    return problems + _dependency_cycle(config, roots)


def _placement_problems(field: str, settings: HierarchySettings,
                        dependency: HierarchyDependency,
                        needed: HierarchySettings) -> list[Problem]:
    """A dependency that rules out every node the hierarchy may run on."""
    mine = {e.node for e in settings.equivalencies}
    theirs = {e.node for e in needed.equivalencies}
    name, other = settings.root, needed.root
    if mine and not theirs:
        return [Problem(field, f"{other} has no equivalencies: it runs only on the node "
                               f"where it was restored by hand, which the cluster does not "
                               f"place, so {name} (which runs on {_nodes(mine)}) cannot "
                               "follow it",
                        f"give {other} equivalencies (tutela hierarchy extend {other} --to "
                        "NODE --priority N), or remove this dependency")]
    if not mine or not theirs:
        return []
    if dependency.location == "same_node" and not mine & theirs:
        return [Problem(field, f"same_node: {name} runs on {_nodes(mine)} and {other} on "
                               f"{_nodes(theirs)}, never on the same node, so {name} could "
                               "never run",
                        f"give {name} and {other} a node in common in their equivalencies, "
                        "or use location any_node")]
    if dependency.location == "different_node" and len(mine | theirs) == 1:
        return [Problem(field, f"different_node: {name} and {other} can both run only on "
                               f"{_nodes(mine)}, so {name} could never run",
                        f"add another node to the equivalencies of {name} or {other}, or "
                        "use location same_node or any_node")]
    return []


def _dependency_cycle(config: ClusterConfig, roots: set[str]) -> list[Problem]:
    """One cycle of dependencies between hierarchies (none of them could ever start)."""
    needs = {h.root: [d.hierarchy for d in h.dependencies
                      if d.hierarchy in roots and d.hierarchy != h.root]
             for h in config.hierarchies}
    cycle = find_cycle(needs)
    if cycle is None:
        return []
    first = config.hierarchy_settings(cycle[0])
    index = next(i for i, d in enumerate(first.dependencies) if d.hierarchy == cycle[1])
    return [Problem(f"hierarchies[{cycle[0]}].dependencies[{index}].hierarchy",
                    "a cycle of dependencies: " + " -> ".join(cycle) + "; none of them "
                    "could ever start", "remove one of these dependencies")]


def _nodes(names: set[str]) -> str:
    return ", ".join(sorted(names))
