"""The samba kit: a Samba file server (smbd) with its configuration and state on the
hierarchy's shared filesystem.

Debian's resource-agents has no agent for smbd itself (ocf:heartbeat:smb-share edits shares
of an smbd that runs already), so this kit runs smbd in the foreground under the process
kit; before a start, `testparm` must accept the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from tutela.kits import procutil
from tutela.kits.base import ActionContext, KitError, KitParams
from tutela.kits.daemon import (
    DaemonKit,
    DaemonParams,
    absolute,
    expect_file,
    missing_programs,
)


class SambaParams(DaemonParams):
    config_file: str = Field(
        description="Absolute path of this server's smb.conf, best on the hierarchy's "
                    "shared filesystem; its lock, state, cache and private directories and "
                    "its shares belong there too, so the server that takes over has them.")
    smbd: str = Field(default="/usr/sbin/smbd", description="The smbd program.")
    testparm: str = Field(default="/usr/bin/testparm",
                          description="Samba's testparm, which checks the configuration "
                                      "before each start.")

    _programs = field_validator("smbd", "testparm")(absolute)


class SambaKit(DaemonKit[SambaParams]):
    name: ClassVar[str] = "samba"
    description: ClassVar[str] = (
        "A Samba file server: smbd in the foreground under the process kit, its "
        "configuration checked by testparm before each start.")
    Params: ClassVar[type[KitParams]] = SambaParams

    def check_here(self, params: SambaParams) -> list[tuple[str, str]]:
        return missing_programs(("smbd", params.smbd), ("testparm", params.testparm))

    def command(self, params: SambaParams, state_dir: Path) -> list[str]:
        # --no-process-group: smbd stays in the process group the process kit stops
        return [params.smbd, "--foreground", "--no-process-group", "--debug-stdout",
                f"--configfile={params.config_file}"]

    def check_before_start(self, ctx: ActionContext[SambaParams]) -> None:
        p = ctx.params
        expect_file("config_file", p.config_file)
        checked = procutil.run([p.testparm, "--suppress-prompt", p.config_file],
                               timeout=ctx.timeout, log=ctx.log, what="testparm")
        if checked.returncode != 0:
            problems = [line for line in checked.stderr.splitlines()
                        if "ERROR" in line or "WARNING" in line]
            raise KitError(f"testparm rejects {p.config_file}: "
                           f"{'; '.join(problems) or checked.output}")
