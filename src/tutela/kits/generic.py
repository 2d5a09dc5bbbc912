"""The generic kit: administrator scripts called LifeKeeper-style as `SCRIPT -t TAG -i ID`.

Exit status 0 means success; output goes to the log line by line; a timeout kills the group.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field

from tutela.kits import procutil
from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams

DEFAULT_LKROOT = "/opt/LifeKeeper"


def _absolute(value: str) -> str:
    if not Path(value).is_absolute():
        raise ValueError("must be an absolute path to the script")
    return value


def script_problem(value: str) -> str | None:
    """Why the script at `value` cannot run on this node, or None."""
    path = Path(value)
    if not path.is_file():
        return f"{value} does not exist or is not a regular file on this node"
    if not os.access(path, os.X_OK):
        return f"{value} is not executable; chmod +x it"
    return None


Script = Annotated[str, AfterValidator(_absolute)]


class GenericParams(KitParams):
    restore: Script = Field(
        description="Executable that brings the resource in service; exit 0 on success.")
    remove: Script = Field(
        description="Executable that takes the resource out of service; exit 0 on success.")
    quick_check: Script | None = Field(
        default=None,
        description="Executable that exits 0 when the resource is healthy; default: always "
                    "healthy.")
    recover: Script | None = Field(
        default=None,
        description="Executable that repairs the resource in place; default: remove, then "
                    "restore.")


def script_env(ctx: ActionContext[GenericParams], action: str) -> dict[str, str]:
    """The environment a script runs with: the daemon's, plus what says who and why."""
    env = dict(os.environ)
    env.update({
        "TUTELA_TAG": ctx.tag,
        "TUTELA_ID": ctx.resource_id,
        "TUTELA_ACTION": action,
        "TUTELA_STATE_DIR": str(ctx.state_dir),
        "TUTELA_TIMEOUT": f"{ctx.timeout:g}",
        "LKROOT": os.environ.get("LKROOT", DEFAULT_LKROOT),
    })
    return env


class GenericKit(Kit[GenericParams]):
    name: ClassVar[str] = "generic"
    description: ClassVar[str] = (
        "Administrator scripts for restore, remove, quick_check and recover, called as "
        "SCRIPT -t TAG -i ID (LifeKeeper gen/app compatible).")
    Params: ClassVar[type[KitParams]] = GenericParams

    def check_here(self, params: GenericParams) -> list[tuple[str, str]]:
        scripts = {"restore": params.restore, "remove": params.remove,
                   "quick_check": params.quick_check, "recover": params.recover}
        return [(name, problem) for name, path in scripts.items()
                if path is not None and (problem := script_problem(path))]

    def restore(self, ctx: ActionContext[GenericParams]) -> None:
        self._run_checked(ctx, "restore", ctx.params.restore)

    def remove(self, ctx: ActionContext[GenericParams]) -> None:
        self._run_checked(ctx, "remove", ctx.params.remove)

    def recover(self, ctx: ActionContext[GenericParams]) -> None:
        if ctx.params.recover is None:
            ctx.log.info("no recover script; recovering by remove, then restore")
            super().recover(ctx)
            return
        self._run_checked(ctx, "recover", ctx.params.recover)

    def quick_check(self, ctx: ActionContext[GenericParams]) -> CheckResult:
        script = ctx.params.quick_check
        if script is None:
            return CheckResult(True, "no quick_check script")
        try:
            result = self._run(ctx, "quick_check", script)
        except KitError as exc:
            return CheckResult(False, str(exc))
        if result.returncode != 0:
            return CheckResult(False, f"{script} exited {result.returncode}"
                                      + _last_line(result))
        return CheckResult(True)

    def _run(self, ctx: ActionContext[GenericParams], action: str,
             script: str) -> procutil.Completed:
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        ctx.log.info("running %s script %s -t %s -i %s", action, script, ctx.tag,
                     ctx.resource_id)
        return procutil.run([script, "-t", ctx.tag, "-i", ctx.resource_id],
                            timeout=ctx.timeout, log=ctx.log, env=script_env(ctx, action),
                            cwd=ctx.state_dir, log_output=True, what=f"{action} script")

    def _run_checked(self, ctx: ActionContext[GenericParams], action: str,
                     script: str) -> None:
        result = self._run(ctx, action, script)
        if result.returncode != 0:
            raise KitError(f"{action} script {script} exited {result.returncode}"
                           f"{_last_line(result)}; see the log for its full output")
        ctx.log.info("%s script succeeded", action)


def _last_line(result: procutil.Completed) -> str:
    lines = result.output.splitlines()
    return f": {lines[-1]}" if lines else ""
