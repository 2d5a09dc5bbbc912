"""Finds a kit by name; the single list of kits tutela ships.

Unknown names raise a ConfigError that lists the kits there are.
"""

from __future__ import annotations

from typing import Any

from tutela.kits.base import Kit
from tutela.kits.filesystem import FilesystemKit
from tutela.kits.generic import GenericKit
from tutela.kits.ip import IpKit
from tutela.kits.process import ProcessKit
from tutela.model.errors import ConfigError, Problem

KITS: dict[str, Kit[Any]] = {
    kit.name: kit for kit in (IpKit(), FilesystemKit(), GenericKit(), ProcessKit())
}


def get_kit(name: str, field: str = "kit") -> Kit[Any]:
    try:
        return KITS[name]
    except KeyError:
        raise ConfigError([Problem(
            field, f"unknown kit {name!r}", f"use one of: {', '.join(sorted(KITS))}",
        )]) from None
