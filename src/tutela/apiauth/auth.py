"""Who is asking: PAM logins with their sessions, API tokens, the login rate limit and the
CSRF rule (docs/api.md, "Authentication"). Time is an argument wherever it matters.
"""

from __future__ import annotations

import grp
import hashlib
import hmac
import json
import os
import pwd
import secrets
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tutela.apiauth.roles import LEVEL, ROLES, Principal, Role
from tutela.model.config import ApiGroups, ClusterConfig, User

TOKENS_FILE = "tokens.json"
TOKEN_PREFIX = "tta"
"""A token reads tta_ID_SECRET: the id finds its record, the secret is checked by hash."""
PAM_SERVICE = "login"
"""The PAM service a login is checked against (docs/api.md)."""
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuthError(Exception):
    """Not authenticated (401) or not allowed to use the API at all (403)."""

    def __init__(self, status: int, message: str, fix: str) -> None:
        super().__init__(message)
        self.status = status
        self.fix = fix


# --- PAM users and their role -------------------------------------------------------------

def pam_login(user: str, password: str, service: str = PAM_SERVICE) -> bool:
    """Whether PAM accepts `user` with `password` (slow on failure: PAM's delay)."""
    import pam  # python-pam: loads libpam only in the API process

    return bool(pam.pam().authenticate(user, password, service=service))


def group_names(user: str) -> set[str]:
    """The system groups `user` belongs to (primary and supplementary)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return set()
    names = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def principal_of(user: str, users: tuple[User, ...], groups: ApiGroups,
                 member_of: set[str]) -> Principal:
    """`user`'s role: its entry in the configuration's `users` if any, else the highest of
    the role groups it is a member of; AuthError 403 if neither."""
    entry = next((u for u in users if u.name == user), None)
    if entry is not None:
        return Principal(user, entry.role, frozenset(entry.hierarchies))
    by_group: dict[str, Role] = {getattr(groups, role): role for role in ROLES}
    roles = [role for name, role in by_group.items() if name in member_of]
    if not roles:
        raise AuthError(403, f"{user} has no tutela role",
                        f"add {user} to one of the groups {', '.join(by_group)} (or to "
                        "the configuration's users)")
    return Principal(user, max(roles, key=LEVEL.__getitem__))


# --- sessions ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str
    expires: float
    """Wall-clock time (time.time()) after which it is refused."""


class Sessions:
    """The login sessions of this API process (a restart logs everybody out)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, principal: Principal, now: float, lifetime: float) -> tuple[str, Session]:
        session = Session(principal, secrets.token_urlsafe(24), now + lifetime)
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._by_id = {k: s for k, s in self._by_id.items() if s.expires > now}
            self._by_id[key] = session
        return key, session

    def find(self, key: str, now: float) -> Session | None:
        with self._lock:
            session = self._by_id.get(key)
        return session if session is not None and session.expires > now else None

    def close(self, key: str) -> None:
        with self._lock:
            self._by_id.pop(key, None)


def csrf_ok(method: str, by_cookie: bool, header: str | None, session: Session | None
            ) -> bool:
    """A state-changing request authenticated by the session cookie must carry the
    session's CSRF token in X-CSRF-Token (a cross-site form cannot read it); bearer tokens
    are not sent by browsers on their own and need none."""
    if method not in STATE_CHANGING or not by_cookie:
        return True
    return session is not None and header is not None and hmac.compare_digest(
        header, session.csrf)


# --- the login rate limit ---------------------------------------------------------------

@dataclass
class LoginLimiter:
    """At most `failures` failed logins per key (a client address, a user name) within
    `window` seconds; beyond that, logins with that key are refused until the oldest
    failure is `window` old."""

    failures: int = 5
    window: float = 60.0
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, keys: list[str], now: float) -> float:
        """Seconds until a login with these keys is taken again; 0: now."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.failures:
                wait = max(wait, times[0] + self.window - now)
        return wait

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            self._recent(key, now).append(now)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times


# --- API tokens -------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    """Whose it is or what for (shown in the journal as the user)."""
    role: Role
    hierarchies: tuple[str, ...]
    created: float
    expires: float
    digest: str
    """SHA-256 of the secret, hex; the secret itself is shown once and never stored."""

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "digest"}


def tokens_path(api_dir: Path) -> Path:
    """The node-local token file of releases before the tokens were kept in the cluster
    configuration: still read and revoked from, never added to."""
    return api_dir / TOKENS_FILE


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load_tokens(api_dir: Path) -> list[TokenRecord]:
    """The tokens of the node-local file (see tokens_path)."""
    try:
        rows = json.loads(tokens_path(api_dir).read_text())
    except FileNotFoundError:
        return []
    return [TokenRecord(**{**row, "hierarchies": tuple(row["hierarchies"])}) for row in rows]


def cluster_tokens(config: ClusterConfig) -> list[TokenRecord]:
    """The tokens of the replicated configuration: valid on every node."""
    return [TokenRecord(**t.model_dump()) for t in config.api_tokens]


def all_tokens(config: ClusterConfig, api_dir: Path) -> list[TokenRecord]:
    """Every token this node's API takes: the cluster's and the node-local file's."""
    return [*cluster_tokens(config), *load_tokens(api_dir)]


def store_tokens(api_dir: Path, records: list[TokenRecord]) -> None:
    """Write the node-local token file (see tokens_path)."""
    api_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = tokens_path(api_dir)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        json.dump([asdict(r) for r in records], stream, indent=1)
    os.replace(temporary, path)


def new_token(name: str, role: Role, hierarchies: tuple[str, ...], lifetime: float,
              now: float) -> tuple[str, TokenRecord]:
    """A new token (the string to give the script) and the record to keep of it."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}_{token_id}_{secret}", TokenRecord(
        token_id, name, role, hierarchies, now, now + lifetime, _digest(secret))


def revoke_token(api_dir: Path, token_id: str) -> bool:
    """Take `token_id` out of the node-local file; whether it was there."""
    records = load_tokens(api_dir)
    kept = [r for r in records if r.id != token_id]
    if len(kept) == len(records):
        return False
    store_tokens(api_dir, kept)
    return True


def check_token(records: list[TokenRecord], token: str, now: float) -> Principal:
    """The principal of a valid, unexpired token; AuthError 401 otherwise."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    record = next((r for r in records if r.id == token_id), None)
    if prefix != TOKEN_PREFIX or record is None or not hmac.compare_digest(
            record.digest, _digest(secret)):
        raise AuthError(401, "the API token is not valid",
                        "create one with 'tutela api token create --role ROLE'")
    if record.expires <= now:
        raise AuthError(401, f"the API token {record.id} expired",
                        "create a new one with 'tutela api token create --role ROLE'")
    return Principal(f"token:{record.name}", record.role, frozenset(record.hierarchies))
