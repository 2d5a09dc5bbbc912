"""The package being mapped: its values, where their report lines go, its shell variables.

Shared by the mappers of resources, generated scripts and hierarchy settings of one package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tutela.migrate.context import Context, safe_name
from tutela.migrate.lexer import Value
from tutela.migrate.sgmodel import Group, Note, Outcome, SgPackage

EMPTY = "empty template entry"
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")


@dataclass
class PackageScope:
    package: SgPackage
    ctx: Context
    variable_uses: dict[str, list[str]] = field(default_factory=dict)
    """Control-script variable -> what uses it (a tag, or a description)."""

    @property
    def section(self) -> str:
        return f"Package `{self.package.title}`"

    @property
    def base(self) -> str:
        """The start of every tag of this package."""
        return safe_name(self.package.title, "package")

    def record(self, value: Value, outcome: Outcome, detail: str, step: str = "") -> None:
        self.ctx.ledger.record(self.section, value, outcome, detail, step)

    def note(self, entry: Note) -> None:
        self.ctx.ledger.add(self.section, entry)

    def record_all(self, values: list[Value], outcome: Outcome, detail: str,
                   step: str = "") -> None:
        """The same outcome for several lines; the step is listed once, on the first."""
        for i, value in enumerate(sorted(values, key=lambda v: v.loc.line)):
            self.record(value, outcome, detail, step if i == 0 else "")

    def skip_group(self, group: Group, detail: str, step: str = "") -> None:
        self.record_all(list(group.values.values()), Outcome.MANUAL, detail, step)

    def empty_group(self, group: Group) -> bool:
        """Record a template entry whose values are all empty; say whether it was one."""
        if any(v.text.strip() for v in group.values.values()):
            return False
        self.record_all(list(group.values.values()), Outcome.NOTHING, EMPTY)
        return True

    def variables_used(self, text: str, user: str, with_path: bool = True) -> list[Value]:
        """Control-script variables `text` refers to (and PATH, which every command uses)."""
        names = {m.group(1).lower() for m in _VARIABLE.finditer(text)} | (
            {"path"} if with_path else set())
        found = [v for k, v in self.package.variables.items() if k in names]
        for value in found:
            self.variable_uses.setdefault(value.key, []).append(user)
        return sorted(found, key=lambda v: v.loc.line)

    def expand(self, text: str, user: str) -> str:
        """Replace $NAME / ${NAME} with the control script's literal values, as data."""
        def value_of(match: re.Match[str]) -> str:
            variable = self.package.variables.get((match.group(1) or match.group(2)).lower())
            if variable is None or "$" in variable.text or "`" in variable.text:
                return match.group(0)
            self.variable_uses.setdefault(variable.key, []).append(user)
            return variable.text
        return _REFERENCE.sub(value_of, text)

    def record_variables(self) -> None:
        """Each control-script variable: what used it, or that only shell code did."""
        variables = self.package.variables
        for key, value in sorted(variables.items(), key=lambda kv: kv[1].loc.line):
            users = sorted(set(self.variable_uses.get(key, [])))
            if users:
                self.record(value, Outcome.MAPPED, f"used by {', '.join(users)}")
            else:
                self.record(value, Outcome.NOTHING, "control-script variable used only by "
                            "shell code, which tutela does not run")
