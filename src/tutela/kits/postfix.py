"""The postfix kit: a Postfix instance whose mail queue lives on the hierarchy's shared
filesystem, so that mail accepted before a failover is delivered after it.

The kit is Debian's OCF agent ocf:heartbeat:postfix (start, stop, status and its
validate-all) run through the ocf kit (kits.agentkit), plus tutela's own checks: before a
start, the instance's queue_directory must be on a shared disk; after it, and in every
health check, the SMTP address must greet with 220.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from tutela.kits import procutil
from tutela.kits.agentkit import AgentKit, expect_on_shared_disk
from tutela.kits.base import ActionContext, CheckResult, KitError, KitParams
from tutela.kits.daemon import absolute, host_port, missing_programs
from tutela.kits.ocf import OcfParams
from tutela.kits.process import split_host_port

LOOKUP_TIMEOUT = 10.0


class PostfixParams(KitParams):
    config_dir: str = Field(
        description="Absolute path of the instance's configuration directory (main.cf, "
                    "master.cf); its queue_directory must be on the hierarchy's shared "
                    "filesystem.")
    binary: str = Field(default="/usr/sbin/postfix", description="The postfix program.")
    smtp_probe: str | None = Field(
        default=None, description="HOST:PORT that must answer with an SMTP 220 greeting "
                                  "for Postfix to count as healthy, normally the virtual "
                                  "IP and port 25; without it only `postfix status` is "
                                  "asked.")
    probe_timeout: float = Field(
        default=5.0, gt=0.0, le=60.0, description="Seconds one SMTP probe may take.")

    _absolute = field_validator("config_dir", "binary")(absolute)
    _smtp_probe = field_validator("smtp_probe")(host_port)


class PostfixKit(AgentKit[PostfixParams]):
    name: ClassVar[str] = "postfix"
    description: ClassVar[str] = (
        "A Postfix instance with its queue on shared storage: Debian's "
        "ocf:heartbeat:postfix agent, plus a queue-location check and an SMTP probe.")
    Params: ClassVar[type[KitParams]] = PostfixParams
    agent_name: ClassVar[str] = "ocf:heartbeat:postfix"
    default_timeouts = {"restore": 60.0, "remove": 30.0, "quick_check": 20.0,
                        "recover": 60.0}  # the agent advises 20 s per action

    def agent_params(self, params: PostfixParams) -> OcfParams:
        return OcfParams(values={"binary": params.binary, "config_dir": params.config_dir})

    def check_here(self, params: PostfixParams) -> list[tuple[str, str]]:
        missing = missing_programs(("binary", params.binary), ("binary", _postconf(params)))
        return super().check_here(params) + (missing or _unlisted(params))

    def answer_address(self, params: PostfixParams) -> tuple[str, int] | None:
        return split_host_port(params.smtp_probe) if params.smtp_probe else None

    def before_start(self, ctx: ActionContext[PostfixParams]) -> None:
        p = ctx.params
        found = procutil.run([_postconf(p), "-c", p.config_dir, "-h", "queue_directory"],
                             timeout=ctx.timeout, log=ctx.log, what="postconf")
        queue = found.stdout.strip()
        if found.returncode != 0 or not queue:
            raise KitError(f"postconf cannot read queue_directory in {p.config_dir}: "
                           f"{found.output or 'no value'}; check config_dir")
        expect_on_shared_disk(Path(queue), f"queue_directory (of {p.config_dir}/main.cf)")

    def quick_check(self, ctx: ActionContext[PostfixParams]) -> CheckResult:
        """The agent's monitor (`postfix status`), then the SMTP greeting."""
        deadline = procutil.Deadline(ctx.timeout)
        result = super().quick_check(ctx)
        if not result.healthy or ctx.params.smtp_probe is None:
            return result
        failure = smtp_greeting(ctx.params.smtp_probe,
                                deadline.left(ctx.params.probe_timeout))
        return CheckResult(failure is None, failure or "")


def smtp_greeting(address: str, timeout: float) -> str | None:
    """None if an SMTP server at HOST:PORT greets with 220, else what went wrong."""
    host, port = split_host_port(address)
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.01)) as conn:
            greeting = conn.makefile("rb").readline(512)
            conn.sendall(b"QUIT\r\n")
    except OSError as exc:
        return f"SMTP probe {address} failed: {exc}"
    if not greeting.startswith(b"220"):
        return f"SMTP probe {address} got no 220 greeting but {greeting[:80]!r}"
    return None


def _unlisted(params: PostfixParams) -> list[tuple[str, str]]:
    """The agent's rule, told at create time rather than at the first start: Postfix's
    set-gid commands (postdrop, postqueue) accept an instance's configuration directory
    only if the node's default main.cf lists it in alternate_config_directories."""
    try:
        found = subprocess.run([_postconf(params), "-h", "alternate_config_directories"],
                               capture_output=True, text=True, timeout=LOOKUP_TIMEOUT,
                               check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [("config_dir", f"cannot ask postconf for alternate_config_directories: "
                               f"{exc}")]
    listed = {entry.rstrip("/") for entry in re.split(r"[\s,]+", found.stdout) if entry}
    if params.config_dir.rstrip("/") in listed:
        return []
    return [("config_dir", f"{params.config_dir} is not listed in alternate_config_directories "
                           "of this node's default Postfix configuration (/etc/postfix/"
                           "main.cf), which ocf:heartbeat:postfix requires; add it, e.g. "
                           f"postconf -e 'alternate_config_directories = {params.config_dir}'")]


def _postconf(params: PostfixParams) -> str:
    return str(Path(params.binary).with_name("postconf"))
