"""Tokens, sessions, the CSRF rule, the login rate limit and the role of a system user
(tutela.apiauth.auth). Users and groups are real: created with useradd/groupadd under unique
names and removed after the test."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from pydantic import ValidationError

from api_users import role_groups, system_user
from tutela.apiauth.auth import (
    AuthError,
    LoginLimiter,
    Sessions,
    all_tokens,
    check_token,
    csrf_ok,
    group_names,
    load_tokens,
    new_token,
    pam_login,
    principal_of,
    revoke_token,
    store_tokens,
)
from tutela.apiauth.roles import Principal
from tutela.lcd.document import diff, keep_unexported, to_yaml
from tutela.lcd.redact import is_secret_name
from tutela.model.config import ApiGroups, ApiToken, ClusterConfig, User

NOW = 1_800_000_000.0


def test_token_round_trip_expiry_and_revocation(tmp_path: Path) -> None:
    token, record = new_token("nightly", "operator", ("app",), 3600, NOW)
    store_tokens(tmp_path, [record])  # the node-local file of earlier releases
    stored = (tmp_path / "tokens.json").read_text()
    assert token.split("_", 2)[2] not in stored  # only the hash is kept
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    principal = check_token(load_tokens(tmp_path), token, NOW + 10)
    assert principal == Principal("token:nightly", "operator", frozenset({"app"}))
    with pytest.raises(AuthError, match="expired"):
        check_token(load_tokens(tmp_path), token, NOW + 3600)
    with pytest.raises(AuthError, match="not valid"):
        check_token(load_tokens(tmp_path), token[:-2] + "xx", NOW)
    with pytest.raises(AuthError, match="not valid"):
        check_token(load_tokens(tmp_path), "garbage", NOW)
    assert revoke_token(tmp_path, record.id)
    with pytest.raises(AuthError, match="not valid"):
        check_token(load_tokens(tmp_path), token, NOW)
    assert not revoke_token(tmp_path, record.id)


def test_cluster_tokens_come_from_the_configuration_and_keep_no_secret(tmp_path: Path
                                                                       ) -> None:
    token, record = new_token("cluster-script", "guest", (), 3600, NOW)
    config = ClusterConfig(name="c", api_tokens=(ApiToken(**asdict(record)),))
    assert token.split("_", 2)[2] not in config.model_dump_json()
    principal = check_token(all_tokens(config, tmp_path), token, NOW + 10)
    assert principal == Principal("token:cluster-script", "guest", frozenset())
    assert "api_tokens" not in to_yaml(config)  # export leaves them out
    kept = keep_unexported(config, ClusterConfig(name="c"))
    assert kept.api_tokens == config.api_tokens  # an exported document applied back
    assert is_secret_name("api_tokens")  # support bundles redact them
    with pytest.raises(ValidationError, match="listed twice"):
        ClusterConfig(name="c", api_tokens=config.api_tokens * 2)


def test_revoking_one_of_two_tokens_of_the_same_name_is_a_change() -> None:
    """Entries are named by id in the diff: by name, the two would look the same and the
    revocation would be taken for no change."""
    first, second = (ApiToken(**asdict(new_token("script", "guest", (), 60, NOW)[1]))
                     for _ in range(2))
    both = ClusterConfig(name="c", api_tokens=(first, second))
    changes = diff(both, both.model_copy(update={"api_tokens": (second,)}))
    assert changes and all(first.id in line for line in changes)


def test_sessions_expire_and_close() -> None:
    sessions = Sessions()
    key, session = sessions.open(Principal("alice", "guest"), NOW, 60)
    assert sessions.find(key, NOW + 59) == session
    assert sessions.find(key, NOW + 60) is None
    assert sessions.find("other", NOW) is None
    sessions.close(key)
    assert sessions.find(key, NOW) is None


@pytest.mark.parametrize(("method", "by_cookie", "header", "ok"), [
    ("GET", True, None, True),           # reading needs no CSRF token
    ("POST", False, None, True),         # a bearer token is not sent by a browser by itself
    ("POST", True, None, False),
    ("POST", True, "wrong", False),
    ("POST", True, "RIGHT", True),
    ("DELETE", True, None, False),
    ("PUT", True, "RIGHT", True),
])
def test_csrf(method: str, by_cookie: bool, header: str | None, ok: bool) -> None:
    sessions = Sessions()
    _, session = sessions.open(Principal("alice", "admin"), NOW, 60)
    sent = session.csrf if header == "RIGHT" else header
    assert csrf_ok(method, by_cookie, sent, session) is ok


def test_login_rate_limit_per_key_and_window() -> None:
    limiter = LoginLimiter(failures=5, window=60.0)
    keys = ["address:198.51.100.9", "user:alice"]
    for second in range(5):
        assert limiter.retry_after(keys, NOW + second) == 0
        limiter.failed(keys, NOW + second)
    assert limiter.retry_after(keys, NOW + 10) == pytest.approx(50)
    assert limiter.retry_after(["user:alice"], NOW + 10) > 0  # the user from anywhere
    assert limiter.retry_after(["address:198.51.100.10", "user:bob"], NOW + 10) == 0
    assert limiter.retry_after(keys, NOW + 60) == 0  # the oldest failure is a window old


def test_configured_user_wins_over_groups() -> None:
    users = (User(name="alice", role="operator", hierarchies=("app",)),)
    assert principal_of("alice", users, ApiGroups(), {"tutela-admin"}) == Principal(
        "alice", "operator", frozenset({"app"}))
    assert principal_of("bob", users, ApiGroups(), {"tutela-guest", "tutela-admin"}
                        ).role == "admin"
    with pytest.raises(AuthError, match="no tutela role") as refused:
        principal_of("carol", users, ApiGroups(), {"users"})
    assert refused.value.status == 403


def test_pam_login_and_role_by_group() -> None:
    with role_groups() as groups, system_user(groups.operator) as user:
        assert pam_login(user.name, user.password)
        assert not pam_login(user.name, user.password + "x")
        assert groups.operator in group_names(user.name)
        assert principal_of(user.name, (), ApiGroups(**groups.settings()),
                            group_names(user.name)) == Principal(user.name, "operator")
