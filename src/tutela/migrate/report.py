"""The migration report: what became of every input line, the manual steps, and the counts.

A Ledger collects one note per line (or range); `account_rest` makes sure no line is left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tutela.migrate.lexer import Issue, Loc, Value, is_content, shorten, source_lines
from tutela.migrate.sgmodel import Note, Outcome, note

UNACCOUNTED = "not accounted for by the importer (a bug: please report it)"
SEVERITY = (Outcome.ERROR, Outcome.MANUAL, Outcome.SHELL, Outcome.MAPPED, Outcome.NOTHING)


@dataclass
class Ledger:
    """Every input file's lines and the notes about them, grouped in report sections."""

    files: dict[str, list[str]] = field(default_factory=dict)
    entries: list[tuple[str, Note]] = field(default_factory=list)
    headers: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def add_file(self, display: str, text: str) -> None:
        self.files[display] = source_lines(text)

    def place_after(self, display: str, anchor: str) -> None:
        """List file `display` right after `anchor` (a control script after its package)."""
        if display in self.files and anchor in self.files:
            lines = self.files.pop(display)
            order = list(self.files.items())
            index = next(i for i, (name, _) in enumerate(order) if name == anchor) + 1
            self.files = dict([*order[:index], (display, lines), *order[index:]])

    def section(self, title: str, *lines: str) -> None:
        self.headers.setdefault(title, []).extend(lines)

    def add(self, section: str, entry: Note) -> None:
        self.section(section)
        self.entries.append((section, entry))

    def record(self, section: str, value: Value, outcome: Outcome, detail: str,
               step: str = "") -> None:
        self.add(section, note(value, outcome, detail, step))

    def issues(self, section: str, issues: list[Issue]) -> None:
        for issue in issues:
            self.add(section, Note(issue.loc, self.subject(issue.loc), Outcome.ERROR,
                                   issue.message, "correct the line and run the import again"))

    def code(self, section: str, locs: list[Loc], detail: str) -> None:
        """Shell statements, merged into ranges across blank and comment lines."""
        for loc in self.merge(locs):
            self.add(section, Note(loc, self.subject(loc), Outcome.SHELL, detail))

    def whole_file(self, section: str, display: str, outcome: Outcome, detail: str,
                   step: str = "") -> None:
        for loc in self.merge(self._content_locs(display)):
            self.add(section, Note(loc, self.subject(loc), outcome, detail, step))

    def merge(self, locs: list[Loc]) -> list[Loc]:
        """Ranges of lines of one file with nothing but blanks and comments between them."""
        merged: list[Loc] = []
        for loc in sorted(set(locs), key=lambda x: (x.file, x.line, x.last)):
            last = merged[-1] if merged else None
            if last is not None and last.file == loc.file and self._only_comments(
                    loc.file, last.last + 1, loc.line):
                merged[-1] = Loc(last.file, last.line, max(last.last, loc.last))
            else:
                merged.append(loc)
        return merged

    def _only_comments(self, file: str, start: int, stop: int) -> bool:
        lines = self.files.get(file, [])
        return all(not is_content(lines[i - 1]) for i in range(start, stop)
                   if 0 < i <= len(lines))

    def subject(self, loc: Loc) -> str:
        lines = self.files.get(loc.file, [])
        text = lines[loc.line - 1] if 0 < loc.line <= len(lines) else ""
        return shorten(text, 80) + (" …" if loc.end > loc.line else "")

    def account_rest(self) -> None:
        """Give every content line that has no note yet a note saying so."""
        covered = self.covered()
        for display in self.files:
            missing = [loc for loc in self._content_locs(display)
                       if (display, loc.line) not in covered]
            for loc in self.merge(missing):
                self.add(f"File `{display}`", Note(loc, self.subject(loc), Outcome.MANUAL,
                                                 UNACCOUNTED, "check the line by hand"))

    def covered(self) -> set[tuple[str, int]]:
        return {(n.loc.file, line) for _, n in self.entries
                for line in range(n.loc.line, n.loc.last + 1)}

    def line_outcomes(self) -> Counter[Outcome]:
        """Each content line counted once, under its most pressing outcome."""
        best: dict[tuple[str, int], Outcome] = {}
        for _, entry in self.entries:
            for line in range(entry.loc.line, entry.loc.last + 1):
                key = (entry.loc.file, line)
                if key not in best or SEVERITY.index(entry.outcome) < SEVERITY.index(best[key]):
                    best[key] = entry.outcome
        return Counter(best.values())

    def steps(self) -> list[tuple[str, list[Loc]]]:
        """Each distinct manual step with the lines that need it, in input order."""
        grouped: dict[str, list[Loc]] = {}
        for _, entry in self._ordered():
            if entry.step:
                grouped.setdefault(entry.step, []).append(entry.loc)
        return list(grouped.items())

    def errors(self) -> list[Note]:
        return [n for _, n in self._ordered() if n.outcome is Outcome.ERROR]

    def _content_locs(self, display: str) -> list[Loc]:
        return [Loc(display, i) for i, line in enumerate(self.files.get(display, []), 1)
                if is_content(line)]

    def _ordered(self) -> list[tuple[str, Note]]:
        order = {name: i for i, name in enumerate(self.files)}
        return sorted(self.entries, key=lambda item: (
            order.get(item[1].loc.file, len(order)), item[1].loc.line, item[1].loc.last))

    # --- output ---------------------------------------------------------------------------

    def markdown(self) -> str:
        out = ["# Serviceguard migration report", ""]
        out += [*self.summary, ""] if self.summary else []
        out += self._counts_table()
        out += self._steps_list()
        for title in sorted(self.headers, key=_section_rank):
            out += self._section(title)
        if self.skipped:
            out += ["## Files not read", ""]
            out += [f"- `{name}`: {reason}" for name, reason in self.skipped] + [""]
        return "\n".join(out).rstrip("\n") + "\n"

    def _counts_table(self) -> list[str]:
        counts = self.line_outcomes()
        rows = [f"| {outcome.value} | {counts.get(outcome, 0)} |" for outcome in (
            Outcome.MAPPED, Outcome.NOTHING, Outcome.MANUAL, Outcome.SHELL, Outcome.ERROR)]
        return ["## Summary", "", "Every line of the input that is not blank or a comment, "
                "counted once under its most pressing outcome:", "",
                "| outcome | lines |", "|---|---:|", *rows,
                f"| **total** | {sum(counts.values())} |", "",
                f"Manual steps: {len(self.steps())}. Errors: {len(self.errors())}.", ""]

    def _steps_list(self) -> list[str]:
        steps = self.steps()
        if not steps:
            return []
        out = ["## Manual steps", ""]
        for number, (step, locs) in enumerate(steps, 1):
            where = ", ".join(f"`{loc}`" for loc in locs[:8])
            more = f" and {len(locs) - 8} more" if len(locs) > 8 else ""
            out.append(f"{number}. {step} ({where}{more})")
        return [*out, ""]

    def _section(self, title: str) -> list[str]:
        out = [f"## {title}", ""]
        out += [*self.headers[title], ""] if self.headers[title] else []
        rows = [n for s, n in self._ordered() if s == title]
        if rows:
            out += ["| line | input | outcome |", "|---|---|---|"]
            out += [_row(n) for n in rows]
            out.append("")
        return out

    def to_json(self) -> dict[str, Any]:
        counts = self.line_outcomes()
        return {
            "counts": {o.value: counts.get(o, 0) for o in SEVERITY},
            "manual_steps": [{"step": s, "lines": [str(loc) for loc in locs]}
                             for s, locs in self.steps()],
            "entries": [{"section": s, "loc": str(n.loc), "file": n.loc.file,
                         "line": n.loc.line, "end": n.loc.last, "input": n.subject,
                         "outcome": n.outcome.value, "detail": n.detail, "step": n.step}
                        for s, n in self._ordered()],
            "skipped": [{"file": name, "reason": reason} for name, reason in self.skipped],
        }


def _section_rank(title: str) -> int:
    """Cluster first, then packages, then files that belong to neither."""
    return next((i for i, word in enumerate(("Cluster", "Package")) if title.startswith(word)),
                2)


def _row(entry: Note) -> str:
    outcome = f"**{entry.outcome.value}**: {_cell(entry.detail)}"
    if entry.step:
        outcome += f"; *manual step*: {_cell(entry.step)}"
    return f"| `{entry.loc}` | {_code(entry.subject)} | {outcome} |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    text = _cell(text)
    if not text.strip():
        return ""
    return f"`` {text} ``" if "`" in text else f"`{text}`"
