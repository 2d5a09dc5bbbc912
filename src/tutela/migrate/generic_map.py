"""A package's scripts become generic resources whose wrappers tutela writes out.

external_pre_script and external_script are called with start/stop; customer commands copied.
"""

from __future__ import annotations

import re

from tutela.kits.registry import get_kit
from tutela.migrate.lexer import Function, Value, is_number
from tutela.migrate.scope import EMPTY, PackageScope
from tutela.migrate.scripts import (
    GeneratedScript,
    customer_wrapper,
    external_wrapper,
    script_name,
)
from tutela.migrate.sgmodel import Note, Outcome, SgPackage
from tutela.model.config import Resource

NO_TIMEOUT = 3600.0
"""tutela bounds every action; a no_timeout script gets an hour."""
DEFAULT_ACTION_TIMEOUT = 60.0
TIMEOUTS = (("restore", "run_script_timeout"), ("remove", "halt_script_timeout"))
TEMPLATE_LINE = re.compile(r"^\s*(:|test_return\s+\d+)?\s*(#.*)?$")
"""A line of the customer_defined_* template: `:`, `test_return N`, a comment."""
SCRIPT_KITS = ("generic", "process", "ip", "filesystem")
"""Kits whose action timeouts the importer does not derive from a package's: an application
kit (a toolkit's) takes run_script_timeout and halt_script_timeout when they are longer."""


def script_timeout(package: SgPackage, key: str) -> tuple[float | None, str]:
    """run_script_timeout or halt_script_timeout in seconds, and how it was read."""
    value = package.settings.get(key)
    text = value.text.strip().lower() if value else ""
    if text == "no_timeout":
        return NO_TIMEOUT, f"no_timeout: {NO_TIMEOUT:g} s (tutela bounds every action)"
    if is_number(text) and int(text) > 0:
        return float(text), f"{text} s"
    return None, ""


def package_timeouts(package: SgPackage) -> dict[str, float]:
    """The package's script timeouts as tutela action timeouts (restore, remove)."""
    found = {action: script_timeout(package, key)[0] for action, key in TIMEOUTS}
    return {action: seconds for action, seconds in found.items() if seconds is not None}


def has_commands(function: Function) -> bool:
    """Whether a customer_defined_* body does more than the template's ':' and test_return."""
    return any(not TEMPLATE_LINE.match(line) for line in function.body.split("\n"))


class GenericMapper:
    def __init__(self, scope: PackageScope) -> None:
        self.scope = scope
        self.scripts: list[GeneratedScript] = []
        self.external_tags: list[str] = []
        self.copied_helpers: list[Function] = []

    # --- external scripts (modular) -------------------------------------------------------

    def externals(self, key: str, kind: str) -> list[Resource]:
        """external_pre_script (kind 'pre') or external_script ('ext') lines, in order."""
        resources = []
        for value in (v for v in self.scope.package.scripts if v.key == key):
            path = value.text.strip()
            if not path:
                self.scope.record(value, Outcome.NOTHING, EMPTY)
            elif not path.startswith(("/", "$")):
                self.scope.record(value, Outcome.MANUAL, "not an absolute path",
                                  "give the script's full path and run the import again")
            else:
                stem = path.rsplit("/", 1)[-1].split(".")[0]
                resources.append(self.external(value, self.scope.ctx.tag(
                    self.scope.base, kind, stem)))
        return resources

    def external(self, value: Value, tag: str) -> Resource:
        package = self.scope.package
        wrappers = [external_wrapper(tag, action, value, package.title, package.environment)
                    for action in ("restore", "remove")]
        when = ("before the storage is activated" if value.key == "external_pre_script"
                else "after the addresses are up, before the services")
        self.scope.record(value, Outcome.MAPPED, f"resources[{tag}] (generic): its restore and "
                          f"remove scripts call it with start and stop, {when}",
                          "make sure the script exists on every node and does not depend on "
                          "Serviceguard commands (cmmodpkg, cmviewcl, sg_source_pkg_env ...)")
        self.external_tags.append(tag)
        return self.generic(tag, wrappers)

    def generic(self, tag: str, wrappers: list[GeneratedScript]) -> Resource:
        """A generic resource whose restore and remove scripts are `wrappers`."""
        self.scripts += wrappers
        directory = self.scope.ctx.scripts_dir
        params = {action: str(w.path(directory))
                  for action, w in zip(("restore", "remove"), wrappers, strict=True)}
        return Resource(tag=tag, kit="generic", params=params, timeouts=self.timeouts())

    # --- customer-defined commands (legacy) -----------------------------------------------

    def customer_commands(self) -> list[Resource]:
        """customer_defined_run_cmds / _halt_cmds as one resource, unless both are empty."""
        package = self.scope.package
        run = next((f for f in package.functions if f.name.endswith("_run_cmds")), None)
        halt = next((f for f in package.functions if f.name.endswith("_halt_cmds")), None)
        real = [f for f in (run, halt) if f is not None and has_commands(f)]
        for function in (run, halt):
            if function is not None and function not in real:
                self.scope.note(Note(function.loc, f"function {function.name}", Outcome.NOTHING,
                                     "the template's empty body: no commands"))
        if not real:
            return []
        tag = self.scope.ctx.tag(self.scope.base, "cmds")
        helpers = self.helpers_used(real)
        variables = self.scope.variables_used(" ".join(f.body for f in [*real, *helpers]), tag)
        wrappers = [customer_wrapper(tag, action, function if function in real else None,
                                     package.title, variables, helpers)
                    for action, function in (("restore", run), ("remove", halt))]
        for function in real:
            action = "restore" if function is run else "remove"
            self.scope.note(Note(
                function.loc, f"function {function.name}", Outcome.MAPPED,
                f"resources[{tag}] (generic): copied verbatim into its {action} script "
                f"{script_name(tag, action)}", "review the generated script: the commands now "
                "run outside Serviceguard's control script (bash, with test_return and print "
                "defined)"))
        return [self.generic(tag, wrappers)]

    def helpers_used(self, functions: list[Function]) -> list[Function]:
        """Control-script functions the customer commands call, directly or not."""
        text = " ".join(f.body for f in functions)
        changed = True
        while changed:
            changed = False
            for helper in self.scope.package.helpers:
                if helper not in self.copied_helpers and helper.name != "test_return" and \
                        re.search(rf"\b{re.escape(helper.name)}\b", text):
                    self.copied_helpers.append(helper)
                    text += " " + helper.body
                    changed = True
        return self.copied_helpers

    def record_helpers(self) -> None:
        for helper in self.scope.package.helpers:
            if helper in self.copied_helpers:
                outcome, detail = Outcome.MAPPED, "copied into the customer-command scripts, " \
                                                  "which call it"
            elif helper.name == "test_return":
                outcome, detail = Outcome.SHELL, "Serviceguard's helper: the generated " \
                                                 "scripts define their own"
            else:
                outcome, detail = Outcome.SHELL, f"function {helper.name}: control-script " \
                                                 "code, not run by tutela"
            self.scope.note(Note(helper.loc, f"function {helper.name}", outcome, detail))

    # --- package-wide script settings -----------------------------------------------------

    def script_timeout(self, key: str) -> tuple[float | None, str]:
        return script_timeout(self.scope.package, key)

    def timeouts(self) -> dict[str, float]:
        return package_timeouts(self.scope.package)

    def record_timeouts(self, resources: list[Resource]) -> None:
        applications = [r for r in resources if r.kit not in SCRIPT_KITS]
        for action, key in TIMEOUTS:
            value = self.scope.package.settings.get(key)
            if value is None:
                continue
            seconds, how = self.script_timeout(key)
            on = [r.tag for r in resources if r.kit == "generic" or (
                r in applications and r.timeouts.get(action) == seconds)]
            if seconds is None:
                self.scope.record(value, Outcome.ERROR, f"{value.text!r} is neither no_timeout "
                                  "nor a number of seconds", "correct it")
            elif on:
                recover = ("; timeouts.recover that plus the kit's remove timeout on "
                           f"{', '.join(r.tag for r in applications if r.tag in on)}"
                           if any(r.tag in on for r in applications) else "")
                self.scope.record(value, Outcome.MAPPED, f"timeouts.{action}: {how}, on "
                                  f"{', '.join(on)}{recover}")
            elif applications:
                kit = applications[0].kit
                why = ("is longer, and kept" if action == "restore" else "is kept: its remove "
                       "escalates on its own, and a longer timeout would only delay a forced "
                       "removal on quorum loss when a stop hangs")
                self.scope.record(value, Outcome.NOTHING, f"the {kit} kit's own {action} "
                                  f"timeout ({get_kit(kit).default_timeouts[action]:g} s) {why}")
            else:
                self.scope.record(value, Outcome.NOTHING, "no script resource; each resource "
                                  f"has its own timeouts ({action} "
                                  f"{DEFAULT_ACTION_TIMEOUT:g} s)")

    def record_environment(self) -> None:
        """pev_ parameters reach the external scripts only, as Serviceguard passed them."""
        for value in self.scope.package.environment:
            if self.external_tags:
                self.scope.record(value, Outcome.MAPPED, f"exported as {value.key.upper()} by "
                                  f"the wrapper scripts of {', '.join(self.external_tags)}")
            else:
                self.scope.record(value, Outcome.NOTHING, "no external script to pass it to")
