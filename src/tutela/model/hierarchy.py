"""Resource hierarchies: the dependency DAG split into hierarchies, each with one root.

Validates the graph (unknown children, cycles, several roots) and gives restore/remove order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tutela.model.config import Resource
from tutela.model.errors import ConfigError, Problem


@dataclass(frozen=True)
class Hierarchy:
    """One connected set of resources with a single root (the resource nothing depends on)."""

    root: str
    children: Mapping[str, tuple[str, ...]]
    """Every member tag -> the tags it depends on (restored before it)."""

    @functools.cached_property
    def members(self) -> frozenset[str]:
        return frozenset(self.children)

    def parents_of(self, tag: str) -> tuple[str, ...]:
        return tuple(sorted(p for p, kids in self.children.items() if tag in kids))

    def subtree(self, tag: str) -> frozenset[str]:
        """The tag and everything it depends on, directly or not."""
        return self._closure(tag, lambda t: self.children[t])

    def dependents(self, tag: str) -> frozenset[str]:
        """The tag and everything that depends on it, directly or not."""
        return self._closure(tag, self.parents_of)

    @staticmethod
    def _closure(tag: str, step: Callable[[str], Iterable[str]]) -> frozenset[str]:
        seen: set[str] = set()
        stack = [tag]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(step(current))
        return frozenset(seen)


def build_hierarchies(resources: Iterable[Resource]) -> list[Hierarchy]:
    """Split resources into hierarchies; raise ConfigError naming every graph problem."""
    children = {r.tag: r.depends_on for r in resources}
    problems = _unknown_children(children)
    if problems:
        raise ConfigError(problems)
    cycle = find_cycle(children)
    if cycle:
        raise ConfigError([Problem(
            f"resources[{cycle[0]}].depends_on",
            "dependency cycle " + " -> ".join(cycle),
            "remove one of these dependencies",
        )])
    hierarchies = []
    for component in _components(children):
        roots = sorted(t for t in component if not any(t in children[p] for p in component))
        if len(roots) != 1:
            raise ConfigError([Problem(
                f"resources[{roots[1]}]",
                f"hierarchy has several roots ({', '.join(roots)}); a hierarchy has exactly one",
                "make one of them depend on the other, or do not share children between them",
            )])
        hierarchies.append(Hierarchy(roots[0], {t: children[t] for t in sorted(component)}))
    return sorted(hierarchies, key=lambda h: h.root)


def hierarchy_of(hierarchies: Iterable[Hierarchy], tag: str) -> Hierarchy | None:
    return next((h for h in hierarchies if tag in h.children), None)


def find_cycle(children: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as a list of tags (first tag repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(tag: str) -> list[str] | None:
        state[tag] = 1
        path.append(tag)
        for child in children.get(tag, ()):
            if state.get(child) == 1:
                return [*path[path.index(child):], child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        path.pop()
        state[tag] = 2
        return None

    for tag in sorted(children):
        if tag not in state:
            found = visit(tag)
            if found:
                return found
    return None


def _unknown_children(children: Mapping[str, tuple[str, ...]]) -> list[Problem]:
    return [
        Problem(f"resources[{tag}].depends_on", f"unknown resource {child!r}",
                "create that resource first or correct the tag")
        for tag, kids in sorted(children.items()) for child in kids if child not in children
    ]


def _components(children: Mapping[str, tuple[str, ...]]) -> list[set[str]]:
    neighbours: dict[str, set[str]] = {tag: set(kids) for tag, kids in children.items()}
    for tag, kids in children.items():
        for child in kids:
            neighbours[child].add(tag)
    seen: set[str] = set()
    components = []
    for start in sorted(children):
        if start in seen:
            continue
        component: set[str] = set()
        stack = [start]
        while stack:
            current = stack.pop()
            if current not in component:
                component.add(current)
                stack.extend(neighbours[current] - component)
        seen |= component
        components.append(component)
    return components
