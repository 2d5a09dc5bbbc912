"""The ocf kit: runs any OCF resource agent unchanged, as Pacemaker would.

Kit name `ocf:PROVIDER:AGENT`; the agent's meta-data gives the parameters, their types and
the default action timeouts. restore = probe (monitor, interval 0), validate-all, start;
remove = stop; quick_check = recurring monitor; exit codes are classed as Pacemaker classes
them (soft: recover here; hard: not on this node; fatal: not on any node).
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tutela.kits import procutil
from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams
from tutela.kits.ocf_agents import (
    BOOLEAN_WORDS,
    OCF_ROOT,
    PACEMAKER_TOOLS,
    AgentMeta,
    AgentName,
    Parameter,
    ToolUse,
    meta_data,
    pacemaker_tool_uses,
    parse_name,
)
from tutela.model.errors import ConfigError, Problem

OCF_RA_VERSION = ("1", "1")
EXIT_REASON_PREFIX = "ocf-exit-reason:"
RSCTMP_BASE = Path("/run/tutela/ocf")
CHECK_LEVEL = "OCF_CHECK_LEVEL"
"""The one parameter that is not the agent's: the depth of its monitor, as Pacemaker's
monitor operation attribute of the same name."""
LAST_CHECK = "last-check"
"""The class of the last failed quick check, in the state directory, for recover."""


class Recovery(enum.Enum):
    """Pacemaker's recovery classes of a failed action."""

    SOFT = "soft"
    """Transient: recover here (stop, start) within the resource's recovery policy."""
    HARD = "hard"
    """Specific to this node: no local recovery; another node may run it."""
    FATAL = "fatal"
    """The configuration is wrong, so every node would fail the same way."""


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str
    recovery: Recovery | None


EXIT_CODES = {e.code: e for e in (
    ExitCode(0, "OCF_SUCCESS", "success", None),
    ExitCode(1, "OCF_ERR_GENERIC", "generic error", Recovery.SOFT),
    ExitCode(2, "OCF_ERR_ARGS", "the parameters are not valid on this node",
             Recovery.HARD),
    ExitCode(3, "OCF_ERR_UNIMPLEMENTED", "the action is not implemented", Recovery.HARD),
    ExitCode(4, "OCF_ERR_PERM", "insufficient privileges", Recovery.HARD),
    ExitCode(5, "OCF_ERR_INSTALLED", "required software is not installed on this node",
             Recovery.HARD),
    ExitCode(6, "OCF_ERR_CONFIGURED", "the parameters are invalid (on every node)",
             Recovery.FATAL),
    ExitCode(7, "OCF_NOT_RUNNING", "not running", Recovery.SOFT),
    ExitCode(8, "OCF_RUNNING_PROMOTED", "running promoted (promotable clones are not "
             "supported by tutela)", Recovery.HARD),
    ExitCode(9, "OCF_FAILED_PROMOTED", "failed while promoted (promotable clones are not "
             "supported by tutela)", Recovery.HARD),
    ExitCode(190, "OCF_DEGRADED", "running, degraded", None),
    ExitCode(191, "OCF_DEGRADED_PROMOTED", "running promoted, degraded (promotable clones "
             "are not supported by tutela)", Recovery.HARD),
)}
SUCCESS, NOT_RUNNING, UNIMPLEMENTED, DEGRADED = 0, 7, 3, 190


def exit_code(code: int) -> ExitCode:
    """The named code, or a custom one (Pacemaker: soft)."""
    return EXIT_CODES.get(code, ExitCode(code, f"exit {code}", "custom error code",
                                         Recovery.SOFT))


class OcfError(KitError):
    """An agent action failed; `recovery` says how far the failure reaches."""

    def __init__(self, message: str, recovery: Recovery) -> None:
        super().__init__(message)
        self.recovery = recovery


class OcfParams(KitParams):
    values: dict[str, str]
    """The agent's parameters as given (checked against its meta-data), as strings."""
    check_level: int | None = None


# --- parameters -------------------------------------------------------------------------

def check_value(parameter: Parameter, value: Any) -> tuple[str | None, str | None]:
    """(the value as the agent gets it, None) or (None, what is wrong with it)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        return None, f"must be a single {parameter.type} value, not a {type(value).__name__}"
    if parameter.type == "string":
        return text, None
    text = text.strip()  # the agents test numbers and booleans without blanks
    if parameter.type == "integer" and not re.fullmatch(r"[-+]?\d+", text):
        return None, f"must be an integer, e.g. {parameter.default or '10'}"
    if parameter.type == "boolean" and text.lower() not in BOOLEAN_WORDS:
        return None, "must be a boolean: true or false (also yes/no, on/off, 1/0)"
    return text, None


def parse_agent_params(meta: AgentMeta, raw: Mapping[str, Any], prefix: str) -> OcfParams:
    """OcfParams from a resource's params; a ConfigError names every bad one and the fix."""
    show = f"tutela kit show {meta.name.kit}"
    problems: list[Problem] = []
    values: dict[str, str] = {}
    check_level = None
    for key, value in raw.items():
        parameter = meta.parameter(key)
        if key == CHECK_LEVEL:
            check_level, problem = _check_level(meta, value)
            if problem:
                problems.append(Problem(f"{prefix}.{key}", problem, f"see: {show}"))
        elif parameter is None:
            known = ", ".join(p.name for p in meta.parameters) or "none"
            problems.append(Problem(f"{prefix}.{key}", f"{meta.name.kit} has no parameter "
                                    f"{key!r}", f"use one of: {known}, {CHECK_LEVEL}"))
        else:
            text, problem = check_value(parameter, value)
            if problem:
                problems.append(Problem(f"{prefix}.{key}", problem, f"see: {show}"))
            elif text is not None:
                values[key] = text
    problems += [Problem(f"{prefix}.{p.name}", f"{meta.name.kit} requires it"
                         + (f" ({p.shortdesc})" if p.shortdesc else ""),
                         f"give it, e.g. --param {p.name}=VALUE (see: {show})")
                 for p in meta.parameters if p.required and p.name not in raw]
    if problems:
        raise ConfigError(problems)
    return OcfParams(values=values, check_level=check_level)


def _check_level(meta: AgentMeta, value: Any) -> tuple[int | None, str | None]:
    levels = meta.check_levels() or [0]
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) not in levels:
        return None, (f"must be one of the monitor depths {meta.name.kit} advertises: "
                      f"{', '.join(map(str, levels))}")
    return int(text), None


# --- Pacemaker-only tools -----------------------------------------------------------------

_scans: dict[tuple[Path, int], list[ToolUse]] = {}
_scans_lock = threading.Lock()


def tool_uses(name: AgentName) -> list[ToolUse]:
    """pacemaker_tool_uses of the agent, cached per path and modification time."""
    key = (name.path, name.path.stat().st_mtime_ns)
    with _scans_lock:
        if key not in _scans:
            _scans[key] = pacemaker_tool_uses(name.path)
        return _scans[key]


def unsupported(name: AgentName) -> str | None:
    """Why the agent cannot run under tutela (it needs Pacemaker), or None."""
    required = [use for use in tool_uses(name) if not use.optional]
    if not required:
        return None
    what = sorted({PACEMAKER_TOOLS[use.tool] for use in required})
    return (f"not supported: {name.kit} uses {'; '.join(what)}, which only Pacemaker has "
            f"({', '.join(use.describe() for use in required[:3])}"
            f"{', ...' if len(required) > 3 else ''} of {name.path})")


# --- environment and runs -----------------------------------------------------------------

def rsctmp(state_dir: Path) -> Path:
    """HA_RSCTMP: agents keep their run-time markers there. Under /run, so a reboot clears
    them as it clears Pacemaker's /run/resource-agents; one per tutela state directory
    (the node's, two levels above the resource's), so the nodes of a lab, which share
    the host's /run, keep apart."""
    node_state = state_dir.resolve().parent.parent
    return RSCTMP_BASE / hashlib.sha256(str(node_state).encode()).hexdigest()[:16]


def agent_env(name: AgentName, ctx: ActionContext[OcfParams], action: str, interval: float,
              timeout: float) -> dict[str, str]:
    """The environment Pacemaker's executor gives an agent (Pacemaker Administration,
    "OCF Environment Variables"), on top of the daemon's own minus any OCF_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCF_")}
    env.update({
        "OCF_ROOT": str(OCF_ROOT),
        "OCF_RA_VERSION_MAJOR": OCF_RA_VERSION[0],
        "OCF_RA_VERSION_MINOR": OCF_RA_VERSION[1],
        "OCF_RESOURCE_INSTANCE": ctx.tag,
        "OCF_RESOURCE_TYPE": name.agent,
        "OCF_RESOURCE_PROVIDER": name.provider,
        "OCF_EXIT_REASON_PREFIX": EXIT_REASON_PREFIX,
        "OCF_RESKEY_CRM_meta_name": action,
        "OCF_RESKEY_CRM_meta_timeout": str(max(int(timeout * 1000), 1)),
        "OCF_RESKEY_CRM_meta_interval": str(int(interval * 1000)),
        "HA_RSCTMP": str(rsctmp(ctx.state_dir)),
    })
    env.update({f"OCF_RESKEY_{key}": value for key, value in ctx.params.values.items()})
    if ctx.params.check_level is not None and action in ("monitor", "validate-all"):
        env[CHECK_LEVEL] = str(ctx.params.check_level)
    return env


@dataclass(frozen=True)
class Run:
    action: str
    code: ExitCode
    reason: str
    """The agent's ocf_exit_reason, else its last output line, else ''."""

    def describe(self) -> str:
        said = f": {self.reason}" if self.reason else ""
        return f"{self.action} exited {self.code.code} ({self.code.name}, {self.code.meaning})" \
               + said

    def error(self, what: str) -> OcfError:
        recovery = self.code.recovery or Recovery.SOFT
        advice = {Recovery.SOFT: "",
                  Recovery.HARD: "; a hard error: not retried on this node",
                  Recovery.FATAL: "; a fatal error: the parameters are wrong and would be "
                                  "on every node; correct them (tutela kit show "
                                  f"{what})"}[recovery]
        return OcfError(self.describe() + advice, recovery)


def exit_reason(result: procutil.Completed) -> str:
    for line in reversed(result.stderr.splitlines()):
        if EXIT_REASON_PREFIX in line:
            return line.split(EXIT_REASON_PREFIX, 1)[1].strip()
    lines = result.output.splitlines()
    return lines[-1].strip() if lines else ""


# --- the kit ----------------------------------------------------------------------------

class OcfKit(Kit[OcfParams]):
    """One OCF agent; `kit_for` makes one subclass per agent (name, timeouts, meta-data)."""

    name: ClassVar[str] = "ocf"
    description: ClassVar[str] = "Any OCF resource agent: ocf:PROVIDER:AGENT"
    Params: ClassVar[type[KitParams]] = OcfParams
    meta: ClassVar[AgentMeta]
    agent: ClassVar[AgentName]

    def parse_params(self, raw: Mapping[str, Any], field_prefix: str = "params") -> OcfParams:
        problem = unsupported(self.agent)
        if problem is not None:
            field = field_prefix.removesuffix(".params") + ".kit" \
                if field_prefix.endswith(".params") else "kit"
            raise ConfigError([Problem(field, problem, "use another agent, or the generic "
                                       "or process kit with scripts of your own")])
        return parse_agent_params(self.meta, raw, field_prefix)

    def check_here(self, params: OcfParams) -> list[tuple[str, str]]:
        if not os.access(self.agent.path, os.X_OK):
            return [("kit", f"{self.agent.path} is not executable on this node")]
        return []

    def restore(self, ctx: ActionContext[OcfParams]) -> None:
        deadline = procutil.Deadline(ctx.timeout)
        probe = self._run(ctx, "monitor", deadline, interval=0)
        if probe.code.code == SUCCESS:
            ctx.log.info("the probe finds it running; nothing to do")
            return
        if probe.code.code != NOT_RUNNING:
            if probe.code.recovery in (Recovery.HARD, Recovery.FATAL):
                raise probe.error(self.agent.kit)
            ctx.log.warning("the probe %s; stopping it before the start", probe.describe())
            self._expect_stopped(self._run(ctx, "stop", deadline))
        if self.meta.supports("validate-all"):
            check = self._run(ctx, "validate-all", deadline)
            if check.code.code not in (SUCCESS, UNIMPLEMENTED):
                raise check.error(self.agent.kit)
        started = self._run(ctx, "start", deadline)
        if started.code.code != SUCCESS:
            raise started.error(self.agent.kit)
        ctx.log.info("started")

    def remove(self, ctx: ActionContext[OcfParams]) -> None:
        self._expect_stopped(self._run(ctx, "stop", procutil.Deadline(ctx.timeout)))

    def _expect_stopped(self, stopped: Run) -> None:
        if stopped.code.code not in (SUCCESS, NOT_RUNNING):
            raise stopped.error(self.agent.kit)

    def quick_check(self, ctx: ActionContext[OcfParams]) -> CheckResult:
        interval = self.meta.monitor_interval() or 10.0
        try:
            run = self._run(ctx, "monitor", procutil.Deadline(ctx.timeout), interval=interval)
        except KitError as exc:
            return CheckResult(False, str(exc))
        code = run.code.code
        if code in (SUCCESS, DEGRADED) or code == UNIMPLEMENTED:
            # Pacemaker: a recurring monitor's OCF_ERR_UNIMPLEMENTED causes no recovery
            return CheckResult(True, "" if code == SUCCESS else run.describe())
        recovery = run.code.recovery or Recovery.SOFT
        procutil.write_atomic(ctx.state_dir / LAST_CHECK, recovery.value + "\n")
        return CheckResult(False, run.error(self.agent.kit).args[0])

    def recover(self, ctx: ActionContext[OcfParams]) -> None:
        """Stop, then start again, unless the failed check was a hard or fatal error: then
        no local recovery (Pacemaker's hard and fatal classes), so the node gives it up."""
        marker = ctx.state_dir / LAST_CHECK
        try:
            recovery = Recovery(marker.read_text().strip())
        except (FileNotFoundError, ValueError):
            recovery = Recovery.SOFT
        marker.unlink(missing_ok=True)
        if recovery is not Recovery.SOFT:
            raise OcfError(f"no local recovery after a {recovery.value} error of the "
                           "monitor; this node gives it up", recovery)
        super().recover(ctx)

    def _run(self, ctx: ActionContext[OcfParams], action: str, deadline: procutil.Deadline,
             interval: float = 0.0) -> Run:
        timeout = deadline.left()
        if timeout <= 0:
            raise OcfError(f"no time left for {action} within the {ctx.timeout:g}s timeout",
                           Recovery.SOFT)
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        env = agent_env(self.agent, ctx, action, interval, timeout)
        Path(env["HA_RSCTMP"]).mkdir(parents=True, exist_ok=True)
        what = "probe" if action == "monitor" and interval == 0 else action
        result = procutil.run([str(self.agent.path), action], timeout=timeout, log=ctx.log,
                              env=env, cwd=ctx.state_dir, log_output=True,
                              what=f"{self.agent.agent} {what}")
        run = Run(what, exit_code(result.returncode), exit_reason(result))
        ctx.log.info("%s", run.describe())
        return run


_kits: dict[str, OcfKit] = {}
_kits_lock = threading.Lock()


def kit_for(kit_name: str) -> OcfKit:
    """The kit of agent `ocf:PROVIDER:AGENT`, made again when the agent changed on disk;
    AgentError when the name or the agent is not usable."""
    agent = parse_name(kit_name)
    meta = meta_data(agent)
    with _kits_lock:
        kit = _kits.get(kit_name)
        if kit is None or kit.meta is not meta:
            kit = _make_kit(agent, meta)
            _kits[kit_name] = kit
        return kit


def _make_kit(agent: AgentName, meta: AgentMeta) -> OcfKit:
    start, stop = meta.action_timeout("start"), meta.action_timeout("stop")
    restore = meta.action_timeout("monitor") + meta.action_timeout("validate-all") + start
    timeouts = {"restore": restore, "remove": stop,
                "quick_check": meta.action_timeout("monitor"), "recover": start + stop}
    kit_class = type(f"OcfKit_{agent.provider}_{agent.agent}", (OcfKit,), {
        "name": agent.kit, "description": meta.shortdesc or agent.kit,
        "default_timeouts": timeouts, "meta": meta, "agent": agent})
    kit: OcfKit = kit_class()
    return kit
