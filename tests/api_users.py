"""Real system users and groups for the API tests (PAM logins): unique names, created with
useradd/groupadd and removed after the test; nothing else in /etc is touched."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

ACCOUNTS_LOCK = "/run/lock/tutela-tests-accounts.lock"
"""Taken around every useradd, groupadd, chpasswd, userdel and groupdel: tests on two xdist
workers change accounts at once, and shadow's tools give up ("cannot lock /etc/passwd; try
again later") when another holds /etc's lock files."""


def _accounts(argv: list[str], check: bool, input: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    with open(ACCOUNTS_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(argv, check=check, input=input, text=True)


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
            _accounts(["groupadd", name], check=True)
            made.append(name)
        yield groups
    finally:
        for name in made:
            _accounts(["groupdel", name], check=False)


@contextlib.contextmanager
def system_user(*groups: str) -> Iterator[SystemUser]:
    """A new user with a password, member of `groups`, without a home or a shell."""
    user = SystemUser(f"tut{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}")
    command = ["useradd", "-M", "-s", "/usr/sbin/nologin", user.name]
    _accounts(command + (["-G", ",".join(groups)] if groups else []), check=True)
    try:
        _accounts(["chpasswd"], input=f"{user.name}:{user.password}", check=True)
        yield user
    finally:
        _accounts(["userdel", user.name], check=True)
