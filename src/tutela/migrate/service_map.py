"""A package's services (service_*, SERVICE_*[]) become process resources.

service_restart becomes the local-recovery policy; service_halt_timeout the stop timeout.
"""

from __future__ import annotations

import re
from typing import Any

from tutela.migrate.context import check_params
from tutela.migrate.lexer import Value, is_number
from tutela.migrate.scope import PackageScope
from tutela.migrate.scripts import written_name
from tutela.migrate.sgmodel import Group, Outcome
from tutela.model.config import RecoveryPolicy, Resource

UNLIMITED_ATTEMPTS = 100
"""'unlimited' restarts: with quick checks every 5 s, 100 in 300 s are never used up."""
REMOVE_MARGIN = 10.0
DEFAULT_ACTION_TIMEOUT = 60.0
MAX_STOP_TIMEOUT = 3600.0
_SERVICEGUARD_WORDS = re.compile(r"\bcm[a-z]+\b|\$\{?SG")


def parse_restarts(text: str) -> tuple[int | None, str]:
    """Restarts allowed (None = unlimited) from none/unlimited/N or legacy ""/-r N/-R."""
    words = text.split()
    lowered = [w.lower() for w in words]
    if lowered in ([], ["none"]):
        return 0, ""
    if lowered == ["unlimited"] or words == ["-R"]:
        return None, ""
    if len(words) == 1 and is_number(words[0]):
        return int(words[0]), ""
    if len(words) == 2 and words[0] == "-r" and is_number(words[1]):
        return int(words[1]), ""
    return 0, f"{text!r} is not a restart count"


class ServiceMapper:
    def __init__(self, scope: PackageScope) -> None:
        self.scope = scope

    def services(self) -> list[Resource]:
        """One resource per service, in the order Serviceguard started them."""
        found = (self.service(group) for group in self.scope.package.services)
        return [resource for resource in found if resource is not None]

    def service(self, group: Group) -> Resource | None:
        scope = self.scope
        name, command = group.text("service_name").strip(), group.text("service_cmd").strip()
        if scope.empty_group(group):
            return None
        if not name or not command:
            scope.skip_group(group, f"service {name} has no command (service_cmd, or "
                             "SERVICE_CMD[] in the control script)" if name else
                             "a service command without service_name",
                             "complete it and run the import again")
            return None
        tag = scope.ctx.tag(scope.base, "svc", name)
        params: dict[str, Any] = {"command": command}
        env = {written_name(v): v.text for v in scope.variables_used(command, tag, False)
               if "$" not in v.text}
        if env:
            params["env"] = env
        stop = self.stop_timeout(group)
        if stop is not None:
            params["stop_timeout"] = stop
        problem = check_params("process", params)
        if problem:
            scope.skip_group(group, f"not valid for the process kit: {problem}", "correct it")
            return None
        recovery = self.recovery(group, tag)
        self.record(group, tag, params)
        timeouts = {"remove": stop + REMOVE_MARGIN} if stop is not None and \
            stop + REMOVE_MARGIN > DEFAULT_ACTION_TIMEOUT else {}
        return Resource(tag=tag, kit="process", params=params, recovery=recovery,
                        timeouts=timeouts)

    @staticmethod
    def stop_timeout(group: Group) -> float | None:
        value = group.get("service_halt_timeout")
        if value is None or not is_number(value.text.strip()):
            return None
        return min(float(value.text.strip()), MAX_STOP_TIMEOUT)

    def recovery(self, group: Group, tag: str) -> RecoveryPolicy:
        """service_restart as local recovery; Serviceguard's default is none: 0 attempts."""
        value = group.get("service_restart")
        restarts, error = parse_restarts(value.text if value else "")
        if value is not None and error:
            self.scope.record(value, Outcome.ERROR, error + "; no restarts assumed",
                              "use none, unlimited or a number (legacy: \"\", -r N or -R)")
        elif value is not None:
            self.scope.record(value, Outcome.MAPPED, f"resources[{tag}].recovery: "
                              + _attempts_text(restarts))
        return RecoveryPolicy(attempts=UNLIMITED_ATTEMPTS if restarts is None else restarts)

    def record(self, group: Group, tag: str, params: dict[str, Any]) -> None:
        where, record = f"resources[{tag}]", self.scope.record
        for key, value in sorted(group.values.items(), key=lambda kv: kv[1].loc.line):
            if key == "service_name":
                default = "" if "service_restart" in group.values else (
                    "; no service_restart: Serviceguard's default none, so recovery.attempts 0")
                record(value, Outcome.MAPPED, f"{where} (process){default}")
            elif key == "control_service_name":
                record(value, Outcome.MAPPED, f"the control-script entry of {where}")
            elif key == "service_cmd":
                self.record_command(value, where, params)
            elif key == "service_halt_timeout":
                self.record_stop(value, where, params)
            elif key == "service_fail_fast_enabled":
                self.record_fail_fast(value)

    def record_command(self, value: Value, where: str, params: dict[str, Any]) -> None:
        step = ("the command uses Serviceguard commands or variables; rewrite those parts"
                if _SERVICEGUARD_WORDS.search(value.text) else "")
        env = f" with env {', '.join(params['env'])}" if "env" in params else ""
        self.scope.record(value, Outcome.MAPPED, f"{where}.params.command (run with /bin/sh "
                          f"-c, in the foreground, supervised by PID{env})", step)

    def record_stop(self, value: Value, where: str, params: dict[str, Any]) -> None:
        if "stop_timeout" not in params:
            self.scope.record(value, Outcome.ERROR, f"{value.text!r} is not a number of "
                              "seconds", "correct it")
            return
        stop = params["stop_timeout"]
        extra = f"; timeouts.remove {stop + REMOVE_MARGIN:g} s to leave room" if \
            stop + REMOVE_MARGIN > DEFAULT_ACTION_TIMEOUT else ""
        self.scope.record(value, Outcome.MAPPED, f"{where}.params.stop_timeout: {stop:g} s "
                          f"(TERM, then KILL){extra}")

    def record_fail_fast(self, value: Value) -> None:
        if value.text.strip().lower() in ("no", ""):
            self.scope.record(value, Outcome.NOTHING, "no reboot on service failure, as in "
                              "tutela")
        else:
            self.scope.record(value, Outcome.MANUAL, "tutela does not reboot a node when a "
                              "service fails", "if you relied on it, set "
                              "settings.quorum_loss_action: fastboot (it acts on quorum loss "
                              "only)")


def _attempts_text(restarts: int | None) -> str:
    if restarts is None:
        return (f"attempts {UNLIMITED_ATTEMPTS} in 300 s (unlimited: quick checks every 5 s "
                "never use them up)")
    if restarts == 0:
        return "attempts 0 (the hierarchy fails at once, as the package did)"
    return (f"attempts {restarts} in 300 s; Serviceguard counted restarts over the package's "
            "whole run")
