"""Finds a kit by name; the single list of kits tutela ships.

Unknown names raise a ConfigError that lists the kits there are. `ocf:PROVIDER:AGENT`
names an OCF resource agent installed on this node (kits.ocf).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from tutela.kits.base import Kit
from tutela.kits.device import DeviceKit
from tutela.kits.filesystem import FilesystemKit
from tutela.kits.generic import GenericKit
from tutela.kits.ip import IpKit
from tutela.kits.mariadb import MariadbKit
from tutela.kits.nfs import NfsKit
from tutela.kits.ocf import kit_for
from tutela.kits.ocf_agents import PREFIX as OCF_PREFIX
from tutela.kits.ocf_agents import AgentError
from tutela.kits.postfix import PostfixKit
from tutela.kits.postgresql import PostgresqlKit
from tutela.kits.process import ProcessKit
from tutela.kits.samba import SambaKit
from tutela.kits.web import ApacheKit, NginxKit
from tutela.model.errors import ConfigError, Problem

KITS: dict[str, Kit[Any]] = {
    kit.name: kit for kit in (IpKit(), FilesystemKit(), GenericKit(), ProcessKit(), DeviceKit(),
                              MariadbKit(), ApacheKit(), NginxKit(),
                              PostfixKit(), SambaKit(), NfsKit(), PostgresqlKit())
}


def get_kit(name: str, field: str = "kit") -> Kit[Any]:
    """The kit `name`: a built-in one, or an OCF agent's (`ocf:PROVIDER:AGENT`)."""
    if name.startswith(f"{OCF_PREFIX}:"):
        try:
            return kit_for(name)
        except AgentError as exc:
            raise ConfigError([Problem(field, str(exc), "see: tutela kit list")]) from None
    try:
        return KITS[name]
    except KeyError:
        raise ConfigError([Problem(
            field, f"unknown kit {name!r}",
            f"use one of: {', '.join(sorted(KITS))}, or an OCF agent as ocf:PROVIDER:AGENT "
            "(tutela kit list shows them)",
        )]) from None


def read_agents(kits: Iterable[str]) -> None:
    """Run the meta-data of every OCF agent among `kits` that this process has not read
    yet, so that `get_kit` answers from memory afterwards. tutelad calls it in a worker
    thread before it takes in a configuration from a peer: in its event loop, an agent's
    `meta-data` (a shell start-up, up to its timeout) would delay heartbeats and lease
    renewals. A kit that cannot be read is left to the validation that follows, which
    says why."""
    for name in set(kits):
        if name.startswith(f"{OCF_PREFIX}:"):
            with contextlib.suppress(AgentError):
                kit_for(name)
