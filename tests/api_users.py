"""Real system users and groups for the API tests (PAM logins): unique names, created with
useradd/groupadd and removed after the test; nothing else in /etc is touched."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SystemUser:
    name: str
    password: str


@dataclass(frozen=True)
class RoleGroups:
    admin: str
    operator: str
    guest: str

    def settings(self) -> dict[str, str]:
        return {"admin": self.admin, "operator": self.operator, "guest": self.guest}


@contextlib.contextmanager
def role_groups() -> Iterator[RoleGroups]:
    """Three new groups, one per role."""
    suffix = uuid.uuid4().hex[:6]
    groups = RoleGroups(f"tadm{suffix}", f"topr{suffix}", f"tgst{suffix}")
    made: list[str] = []
    try:
        for name in (groups.admin, groups.operator, groups.guest):
            subprocess.run(["groupadd", name], check=True)
            made.append(name)
        yield groups
    finally:
        for name in made:
            subprocess.run(["groupdel", name], check=False)


@contextlib.contextmanager
def system_user(*groups: str) -> Iterator[SystemUser]:
    """A new user with a password, member of `groups`, without a home or a shell."""
    user = SystemUser(f"tut{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}")
    command = ["useradd", "-M", "-s", "/usr/sbin/nologin", user.name]
    subprocess.run(command + (["-G", ",".join(groups)] if groups else []), check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{user.name}:{user.password}", text=True,
                       check=True)
        yield user
    finally:
        subprocess.run(["userdel", user.name], check=True)
