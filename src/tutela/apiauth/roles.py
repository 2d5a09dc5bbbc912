"""Every permission of the HTTPS API, decided here and nowhere else (docs/api.md, "Roles").

Roles as LifeKeeper's lkadmin / lkoper / lkguest: a guest reads, an operator also moves
hierarchies (restore, remove, switchover) and stops a node for maintenance, an admin also
changes the configuration and manages API tokens. A role may be limited to some hierarchies
(Serviceguard's per-package PACKAGE_ADMIN): then it acts only on those, and cluster-wide
changes (nodes, comm paths, witnesses, settings, a whole document) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

Role = Literal["admin", "operator", "guest"]
ROLES: tuple[Role, ...] = ("admin", "operator", "guest")


class Action(Enum):
    """What a request does, as far as permissions go."""

    READ = "read"
    """status, events, why, export, kits."""
    OPERATE = "operate"
    """restore, remove, switchover of one hierarchy."""
    MAINTAIN = "maintain"
    """a maintenance stop of the answering node (every hierarchy on it)."""
    CONFIGURE = "configure"
    """a configuration change of one hierarchy: resources, dependencies, extend."""
    CONFIGURE_CLUSTER = "configure-cluster"
    """a cluster-wide configuration change: nodes, paths, witnesses, settings, apply."""
    TOKENS = "tokens"
    """list or revoke API tokens."""


LEVEL: dict[Role, int] = {"guest": 0, "operator": 1, "admin": 2}
NEEDED: dict[Action, Role] = {
    Action.READ: "guest", Action.OPERATE: "operator", Action.MAINTAIN: "operator",
    Action.CONFIGURE: "admin", Action.CONFIGURE_CLUSTER: "admin", Action.TOKENS: "admin"}
CLUSTER_WIDE = frozenset({Action.MAINTAIN, Action.CONFIGURE_CLUSTER, Action.TOKENS})
"""Actions no hierarchy-limited role may take: they reach every hierarchy."""


@dataclass(frozen=True)
class Principal:
    """Who asks: a user (PAM) or a token's owner, with a role and its limit."""

    name: str
    role: Role
    hierarchies: frozenset[str] = frozenset()
    """The roots the role is limited to; empty: all."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    """Why it is refused, and what would allow it."""


def decide(principal: Principal, action: Action, hierarchy: str | None) -> Decision:
    """Whether `principal` may take `action` on `hierarchy` (its root; None: no one
    hierarchy)."""
    needed = NEEDED[action]
    if LEVEL[principal.role] < LEVEL[needed]:
        return Decision(False, f"{action.value} needs the {needed} role; {principal.name} "
                               f"has {principal.role}")
    if not principal.hierarchies or action is Action.READ:
        return Decision(True)
    limit = ", ".join(sorted(principal.hierarchies))
    if action in CLUSTER_WIDE or hierarchy is None:
        return Decision(False, f"{action.value} reaches every hierarchy; {principal.name}'s "
                               f"role is limited to {limit}")
    if hierarchy not in principal.hierarchies:
        return Decision(False, f"{principal.name}'s role is limited to {limit}, not "
                               f"{hierarchy}")
    return Decision(True)
