"""The request bodies of the API: pydantic models, so the OpenAPI description names every
field and a bad one is refused with its name before anything happens."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tutela.model.config import Name


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Body):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(max_length=4096)


class Place(Body):
    on: Name | None = None
    """The node to do it on; default: where it runs (remove) or the answering node."""


class Switchover(Body):
    to: Name


class ResourceCreate(Body):
    kit: str = Field(min_length=1, max_length=200, examples=["ip"])
    tag: Name
    params: dict[str, Any] = Field(default_factory=dict,
                                   examples=[{"address": "198.51.100.100/24"}])
    depends_on: list[Name] = Field(default_factory=list)
    check_interval: float | None = Field(default=None, gt=0, le=86400)
    recovery_attempts: int | None = Field(default=None, ge=0, le=1000)
    recovery_window: float | None = Field(default=None, gt=0, le=86400 * 7)
    timeouts: dict[str, float] = Field(default_factory=dict)
    unprotected: bool = False
    restore: bool = False


class Dependency(Body):
    parent: Name
    child: Name


class Extend(Body):
    to: Name
    priority: int | None = Field(default=None, ge=1, le=1000)


class NodeFailover(Body):
    allow: bool


class PathAdd(Body):
    peer: Name
    local: str = Field(min_length=1, max_length=200)
    remote: str = Field(min_length=1, max_length=200)
    kind: Literal["tcp", "tty"] = "tcp"
    priority: int = Field(default=1, ge=1, le=1000)


class WitnessAdd(Body):
    address: str = Field(min_length=3, max_length=260, examples=["198.51.100.250:7366"])
    token: str = Field(min_length=1, max_length=4096)


class Apply(Body):
    yaml: str = Field(max_length=16 << 20)
    dry_run: bool = False


class ConfigSet(Body):
    key: str = Field(min_length=1, max_length=300, examples=["settings.quorum"])
    value: Any = None
    dry_run: bool = False


class Maintenance(Body):
    force: bool = False
    """Stop even with a hierarchy that has no other node (tutela stop --force)."""
