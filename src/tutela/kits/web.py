"""The apache and nginx kits: Debian's ocf:heartbeat:apache and ocf:heartbeat:nginx agents
with tutela's defaults and checks.

The agents start the server with its configuration file, stop it (TERM, then KILL), and
their monitors fetch a page with curl or wget and match it against a regular expression.
tutela sets that page to the one clients use (http://ADDRESS:PORT/check_path), checks
that the configuration file is there before a start, and after the start waits until the
server accepts connections on that address and port.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from tutela.kits.agentkit import AgentKit
from tutela.kits.base import ActionContext, KitError, KitParams
from tutela.kits.ocf import OcfParams


class WebParams(KitParams):
    address: str | None = Field(None, description="the (virtual) address clients use; the "
                                "check fetches its page there (default: localhost)")
    port: int = Field(80, ge=1, le=65535, description="the TCP port clients use; the server's "
                      "configuration must listen there")
    check_path: str = Field("/", description="the page the check fetches, e.g. /index.html")
    check_regex: str = Field(".", min_length=1, description="an extended regular expression "
                             "the page must match (default: any content)")
    options: str = Field("", description="more command-line options for the server")

    @field_validator("check_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be a path starting with /, e.g. /index.html")
        return value

    def check_url(self) -> str:
        return f"http://{self.address or 'localhost'}:{self.port}{self.check_path}"


class ApacheParams(WebParams):
    configfile: Path = Field(Path("/etc/apache2/apache2.conf"),
                             description="the server's configuration file (-f)")
    httpd: Path = Field(Path("/usr/sbin/apache2"), description="the server binary")


class NginxParams(WebParams):
    configfile: Path = Field(Path("/etc/nginx/nginx.conf"),
                             description="the server's configuration file (-c)")
    httpd: Path = Field(Path("/usr/sbin/nginx"), description="the server binary")


class _WebKit(AgentKit[ApacheParams | NginxParams]):
    """The agents' page fetch runs with wget: it binds its socket to 127.0.0.1, from where
    the virtual IP (an address of the node) is reachable; their curl binds to the device
    lo (--interface lo), from where it is not, so the check could not fetch the page at
    the address clients use."""

    package: ClassVar[str]
    """The Debian package of the server."""

    def answer_address(self, params: ApacheParams | NginxParams) -> tuple[str, int]:
        return params.address or "127.0.0.1", params.port

    def check_here(self, params: ApacheParams | NginxParams) -> list[tuple[str, str]]:
        problems = [] if os.access(params.httpd, os.X_OK) else [
            ("httpd", f"{params.httpd} is not an executable on this node; install it "
                      f"(Debian: apt-get install {self.package})")]
        if shutil.which("wget") is None:
            problems.append(("kit", "wget is not installed on this node; the check fetches "
                                    "its page with it (Debian: apt-get install wget)"))
        return problems + super().check_here(params)

    def before_start(self, ctx: ActionContext[ApacheParams | NginxParams]) -> None:
        if not ctx.params.configfile.is_file():
            raise KitError(f"configfile {ctx.params.configfile} does not exist on this node; "
                           "create it there (or on the shared disk, mounted by a filesystem "
                           "resource this one depends on)")


class ApacheKit(_WebKit):
    name: ClassVar[str] = "apache"
    description: ClassVar[str] = "Apache httpd: ocf:heartbeat:apache plus tutela's checks"
    Params: ClassVar[type[KitParams]] = ApacheParams
    agent_name: ClassVar[str] = "ocf:heartbeat:apache"
    package: ClassVar[str] = "apache2"
    default_timeouts = {"restore": 65.0, "remove": 60.0, "quick_check": 20.0,
                        "recover": 100.0}
    """The agent's advertised timeouts (restore: probe, validate-all and start)."""

    def agent_params(self, params: ApacheParams | NginxParams) -> OcfParams:
        # statusurl and testregex: what its start waits for and its monitor checks
        return OcfParams(values={
            "configfile": str(params.configfile), "httpd": str(params.httpd),
            "port": str(params.port), "statusurl": params.check_url(),
            "testregex": params.check_regex, "options": params.options, "client": "wget"})


class NginxKit(_WebKit):
    name: ClassVar[str] = "nginx"
    description: ClassVar[str] = "nginx: ocf:heartbeat:nginx plus tutela's checks"
    Params: ClassVar[type[KitParams]] = NginxParams
    agent_name: ClassVar[str] = "ocf:heartbeat:nginx"
    package: ClassVar[str] = "nginx"
    default_timeouts = {"restore": 105.0, "remove": 60.0, "quick_check": 45.0,
                        "recover": 100.0}
    """The agent's advertised timeouts (restore: probe, validate-all and start; the check:
    its depth-20 monitor)."""

    def agent_params(self, params: ApacheParams | NginxParams) -> OcfParams:
        # depth 20: the monitor fetches test20url and matches test20regex (depth 10 would
        # want the stub_status page). status10url too: without it the agent makes one up
        # from the configuration's listen, without a path, and its validate-all refuses that
        url = params.check_url()
        return OcfParams(values={
            "configfile": str(params.configfile), "httpd": str(params.httpd),
            "port": str(params.port), "status10url": url, "test20url": url,
            "test20regex": params.check_regex, "options": params.options,
            # the agent reads OCF_RESKEY_client, though its meta-data calls it testclient
            "client": "wget"}, check_level=20)
