"""Write the generated parts of docs/architecture.md from the code as it is.

    python tools/architecture.py          # rewrite them
    python tools/architecture.py --check  # exit 1, naming the stale parts, if any is stale

Three parts, each between markers `<!-- generated: NAME -->` and `<!-- end: NAME -->`:
`packages`, the packages of src/tutela and the imports between them (read with `ast`, also
those inside functions and under TYPE_CHECKING), layered from the top; `kinds`, the table
of message kinds (`tutela.lcm.kinds.TABLE`); `wiring`, the daemon's parts in the order
`tutela.daemon.wiring.build` makes them, with the comment above each. The prose around the
markers is written by hand. tests/unit/test_architecture_doc.py fails when a part is stale.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = Path("docs/architecture.md")
PACKAGE = "tutela"


@dataclass(frozen=True)
class Unit:
    """A package of src/tutela, or a module beside the packages."""

    name: str
    job: str
    is_package: bool


def units(src: Path) -> dict[str, Unit]:
    found = {}
    for path in sorted((src / PACKAGE).iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            found[path.name] = Unit(path.name, _summary(path / "__init__.py"), True)
        elif path.suffix == ".py" and path.name != "__init__.py":
            found[path.stem] = Unit(path.stem, _summary(path), False)
    return found


def _summary(path: Path) -> str:
    """The first paragraph of a module's docstring, on one line."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(docstring.strip().split("\n\n")[0].split())


def imports(src: Path, known: dict[str, Unit]) -> dict[str, dict[str, set[str]]]:
    """Unit -> unit it imports -> the importing modules (paths under src/tutela)."""
    edges: dict[str, dict[str, set[str]]] = {name: {} for name in known}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        relative = path.relative_to(src / PACKAGE)
        unit = relative.parts[0].removesuffix(".py")
        if unit not in known:
            continue
        for target in _imported(ast.parse(path.read_text())):
            if target != unit and target in known:
                edges[unit].setdefault(target, set()).add(relative.as_posix())
    return edges


def _imported(tree: ast.Module) -> Iterator[str]:
    """The units of tutela a module imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != PACKAGE:
                continue
            if len(parts) > 1:
                yield parts[1]
            else:  # from tutela import clock
                yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    yield parts[1]


def cycles(edges: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected groups of more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for target in edges[unit]:
            if target not in index:
                visit(target)
                low[unit] = min(low[unit], low[target])
            elif target in stack:
                low[unit] = min(low[unit], index[target])
        if low[unit] == index[unit]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == unit:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for unit in sorted(edges):
        if unit not in index:
            visit(unit)
    return sorted(found)


def layers(edges: dict[str, dict[str, set[str]]]) -> dict[str, int]:
    """Unit -> its height: 0 for one that imports nothing of tutela, else one more than
    the highest it imports (the members of an import cycle share one height)."""
    group_of = {unit: unit for unit in edges}
    for group in cycles(edges):
        for unit in group:
            group_of[unit] = group[0]
    height: dict[str, int] = {}

    def of(group: str) -> int:
        if group not in height:
            height[group] = 0  # a cycle's own edges do not raise it
            members = [u for u in edges if group_of[u] == group]
            targets = {group_of[t] for u in members for t in edges[u]} - {group}
            height[group] = 1 + max(map(of, targets), default=-1)
        return height[group]

    return {unit: of(group_of[unit]) for unit in edges}


def packages_part(src: Path) -> str:
    known = units(src)
    edges = imports(src, known)
    height = layers(edges)

    def order(unit: str) -> tuple[int, bool, str]:
        return -height[unit], not known[unit].is_package, unit

    def name(unit: str) -> str:
        return f"`{PACKAGE}.{unit}`"

    rows = ["| package or module | height | job (its docstring's first paragraph) | imports |",
            "|---|---|---|---|"]
    for unit in sorted(known, key=order):
        uses = ", ".join(sorted(edges[unit], key=order)) or "—"
        rows.append(f"| {name(unit)} | {height[unit]} | {known[unit].job} | {uses} |")
    lines = [*rows, ""]
    found = cycles(edges)
    if found:
        lines.append("Import cycles (each import that closes one, by module):")
        lines.append("")
        for group in found:
            back = [f"{a} → {b} ({', '.join(sorted(edges[a][b]))})"
                    for a in group for b in group if b in edges[a]]
            lines.append(f"- {' ⇄ '.join(group)}: " + "; ".join(back))
    else:
        lines.append("No import cycles between packages.")
    return "\n".join(lines)


def kinds_part(_src: Path) -> str:
    from tutela.lcm import kinds  # the table itself, as the daemon uses it

    rows = ["| kind | from, to | carries | what for | served by |", "|---|---|---|---|---|"]
    for kind in kinds.TABLE:
        route = kind.route + (" (on every path)" if kind.every_path else "")
        rows.append(f"| `{kind.name}` | {route} | {_cell(kind.payload)} | "
                    f"{_cell(kind.purpose)} | {_cell(kind.served_by)} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def wiring_part(src: Path) -> str:
    """The steps of `daemon.wiring.build`: each comment block, with the parts made by the
    statements below it (up to the next comment)."""
    path = src / PACKAGE / "daemon" / "wiring.py"
    text = path.read_text()
    tree = ast.parse(text)
    build = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build")
    origin = _import_origins(tree)
    lines = text.splitlines()
    steps: list[tuple[str, list[str]]] = []
    for statement in build.body:
        comment = _comment_above(lines, statement.lineno)
        if comment:
            steps.append((comment, []))
        if steps:
            steps[-1][1].extend(f"`{call}` (`{origin[call]}`)"
                                for call in _constructed(statement) if call in origin)
    return "\n".join(f"{number}. {', '.join(made) or '—'}: {comment}"
                     for number, (comment, made) in enumerate(steps, 1))


def _import_origins(tree: ast.Module) -> dict[str, str]:
    """Name imported from tutela -> the file it comes from, relative to src/tutela."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                PACKAGE + "."):
            for alias in node.names:
                found[alias.asname or alias.name] = (
                    node.module.removeprefix(PACKAGE + ".").replace(".", "/") + ".py")
    return found


def _comment_above(lines: list[str], lineno: int) -> str:
    """The `#` lines right above line `lineno` (1-based), joined."""
    comment: list[str] = []
    at = lineno - 2
    while at >= 0 and lines[at].strip().startswith("#"):
        comment.insert(0, lines[at].strip().lstrip("#").strip())
        at -= 1
    return " ".join(comment)


def _constructed(statement: ast.stmt) -> list[str]:
    """The classes a statement calls (capitalised names), in order."""
    calls = [n for n in ast.walk(statement) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name) and n.func.id[:1].isupper()]
    return [c.func.id for c in sorted(calls, key=lambda c: (c.lineno, c.col_offset))
            if isinstance(c.func, ast.Name)]


PARTS = {"packages": packages_part, "kinds": kinds_part, "wiring": wiring_part}


def render(root: Path, doc: str) -> str:
    """`doc` with every generated part written anew from the code under `root`."""
    src = root / "src"
    for name, make in PARTS.items():
        body = make(src)
        pattern = re.compile(rf"(<!-- generated: {name} [^\n]*-->\n)(?:.*?\n)?"
                             rf"(<!-- end: {name} -->)", re.DOTALL)
        if not pattern.search(doc):
            raise SystemExit(f"{DOC}: no markers for the generated part {name!r}")
        doc = pattern.sub(_replacement(body), doc)
    return doc


def _replacement(body: str) -> Callable[[re.Match[str]], str]:
    return lambda match: f"{match.group(1)}{body}\n{match.group(2)}"


def stale(root: Path) -> bool:
    doc = (root / DOC).read_text()
    return render(root, doc) != doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only say whether docs/architecture.md is current (exit 1 if not)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    if args.check:
        if stale(ROOT):
            print(f"{DOC} is stale: run python tools/architecture.py", file=sys.stderr)
            return 1
        return 0
    path = ROOT / DOC
    path.write_text(render(ROOT, path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
