"""Checks a whole configuration before it is committed: graph, kit parameters, references.

Collects every problem it can find, so one error report tells the administrator all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tutela.kits.registry import get_kit
from tutela.lcd.lease import lease_problems
from tutela.model.config import ClusterConfig
from tutela.model.errors import ConfigError, Problem
from tutela.model.hierarchy import Hierarchy, build_hierarchies


def validate_config(config: ClusterConfig) -> list[Hierarchy]:
    """Raise ConfigError listing every problem; return the hierarchies when there are none."""
    problems = [
        *_duplicates("nodes", (n.name for n in config.nodes)),
        *_duplicates("resources", (r.tag for r in config.resources)),
        *_duplicates("hierarchies", (h.root for h in config.hierarchies)),
        *_kit_problems(config),
        *_node_references(config),
        *lease_problems(config),
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
    if misplaced:
        raise ConfigError(misplaced)
    return hierarchies


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
