"""Write the index of docs/kits.md from the kits as they are, and check its parameter tables.

    python tools/kits_doc.py          # rewrite the index
    python tools/kits_doc.py --check  # exit 1, naming what is stale or wrong, if anything is

The index, between `<!-- generated: kits -->` and `<!-- end: kits -->`, lists every kit of
`tutela.kits.registry.KITS` (and the ocf kit) with its description, its parameters and a
link to its section. The sections are written by hand; the check holds each kit's parameter
table (the first table with a `parameter` column in its section) to the kit's parameter
model: the same parameters, `required` for those without a default, and the default shown
for those with a plain one (a number, a string, a path, true/false).
tests/unit/test_kits_doc.py fails when the index is stale or a table disagrees.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = Path("docs/kits.md")
MARKER = "kits"
HEADING = re.compile(r"^## (?P<title>.+)$", re.MULTILINE)
NAME_CELL = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
OCF_ROW = ("| [`ocf:PROVIDER:AGENT`](#ocf-any-ocf-resource-agent) | any OCF resource agent "
           "installed on the node, run as Pacemaker runs it | from the agent's meta-data |")


def kits() -> dict[str, Any]:
    from tutela.kits.registry import KITS
    return dict(sorted(KITS.items()))


def slug(title: str) -> str:
    """The anchor a Markdown renderer (GitHub's) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", title.lower())
    return text.replace(" ", "-")


def sections(text: str) -> dict[str, tuple[str, str]]:
    """Kit name -> (heading, section text), for headings `## NAME: ...` and
    `## NAME and NAME: ...`."""
    found: dict[str, tuple[str, str]] = {}
    headings = list(HEADING.finditer(text))
    for i, match in enumerate(headings):
        title = match["title"]
        names, colon, _ = title.partition(":")
        if not colon:
            continue
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        for name in names.split(" and "):
            found[name.strip()] = (title, text[match.end():end])
    return found


def index(text: str) -> str:
    places = sections(text)
    rows = ["| kit | what it is | parameters (**required**) |", "|---|---|---|"]
    for name, kit in kits().items():
        link = f"[`{name}`](#{slug(places[name][0])})" if name in places else f"`{name}`"
        fields = kit.Params.model_fields
        params = ", ".join(f"**`{p}`**" if f.is_required() else f"`{p}`"
                           for p, f in fields.items()) or "none"
        rows.append(f"| {link} | {kit.description} | {params} |")
    rows.append(OCF_ROW)
    return "\n".join(rows)


def render(text: str) -> str:
    start, end = f"<!-- generated: {MARKER} -->", f"<!-- end: {MARKER} -->"
    before, found, rest = text.partition(start)
    if not found:
        raise SystemExit(f"{DOC} has no {start} marker")
    _, found, after = rest.partition(end)
    if not found:
        raise SystemExit(f"{DOC} has no {end} marker")
    return f"{before}{start}\n{index(text)}\n{end}{after}"


def table_rows(section: str) -> list[list[str]] | None:
    """The rows (cells) of the first table of `section` whose header has `parameter`."""
    lines = section.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0].strip() == "parameter":
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            return rows
    return None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") \
        else []


def plain_default(value: Any) -> str | None:
    """How the table shows a plain default, or None for one it may describe in words."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | Path) or (isinstance(value, str) and value):
        return str(value)
    return None


def problems(text: str) -> list[str]:
    """What in the parameter tables disagrees with the kits' parameter models."""
    found = []
    places = sections(text)
    for name, kit in kits().items():
        if name not in places:
            found.append(f"no section `## {name}: ...`")
            continue
        rows = table_rows(places[name][1])
        if rows is None:
            found.append(f"{name}: no parameter table")
            continue
        documented = {m: row for row in rows for m in NAME_CELL.findall(row[0])}
        fields = kit.Params.model_fields
        for missing in fields.keys() - documented.keys():
            found.append(f"{name}: parameter `{missing}` is not in the table")
        for extra in documented.keys() - fields.keys():
            found.append(f"{name}: the table lists `{extra}`, which the kit does not have")
        for param in fields.keys() & documented.keys():
            found += _default_problems(name, param, fields[param], documented[param])
    return found


def _default_problems(kit: str, param: str, field: Any, row: list[str]) -> list[str]:
    cell = row[1] if len(row) > 1 else ""
    if field.is_required():
        return [] if "required" in cell else [f"{kit}.{param}: required, the table says "
                                              f"{cell!r}"]
    shown = plain_default(field.default)
    if shown is None or f"`{shown}`" in cell:
        return []
    return [f"{kit}.{param}: default {shown!r}, the table says {cell!r}"]


def stale(root: Path) -> list[str]:
    text = (root / DOC).read_text()
    return (["the index is stale: run python tools/kits_doc.py"]
            if render(text) != text else []) + problems(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only say whether docs/kits.md agrees with the kits (exit 1 if not)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    if args.check:
        wrong = stale(ROOT)
        for line in wrong:
            print(f"{DOC}: {line}", file=sys.stderr)
        return 1 if wrong else 0
    path = ROOT / DOC
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
