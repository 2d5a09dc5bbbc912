"""The redaction rules of support bundles (tutela.lcd.redact): which names are secret, and
that secrets leave data and text while everything else stays as it was."""

from __future__ import annotations

import json

import pytest

from tutela.lcd.redact import REDACTED, Scrubber, is_secret_name, redact_tree, secret_values


@pytest.mark.parametrize("name", [
    "password", "db_passwd", "monpassword", "APP_PASSWORD", "passphrase", "secret",
    "client_secret", "token", "api-token", "cluster_key", "cluster_key_other", "key_file",
    "auth", "smtp.auth", "auth_key", "priv_password", "community", "snmp_community",
    "credentials"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "address", "mountpoint", "unauthenticated", "monkey", "command", "node", "generation",
    "heartbeat_interval", "fence_command"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


CONFIG = {"name": "c", "resources": [
    {"tag": "db", "kit": "ocf:heartbeat:mysql",
     "params": {"test_passwd": "s3cr3t-db", "binary": "/usr/sbin/mysqld"}},
    {"tag": "web", "kit": "process",
     "params": {"command": "app --password=inline-pw", "env": {"APP_TOKEN": "tok-123456",
                                                               "LANG": "C"}}},
    {"tag": "none", "kit": "x", "params": {"password": ""}}]}


def test_redact_tree_at_any_depth_keeps_everything_else() -> None:
    redacted = redact_tree(CONFIG)
    db, web, none = redacted["resources"]
    assert db["params"] == {"test_passwd": REDACTED, "binary": "/usr/sbin/mysqld"}
    assert web["params"]["env"] == {"APP_TOKEN": REDACTED, "LANG": "C"}
    assert none["params"] == {"password": ""}  # none set: says so
    assert CONFIG["resources"][0]["params"]["test_passwd"] == "s3cr3t-db"  # not changed


def test_secret_values_are_those_under_secret_names() -> None:
    assert secret_values(CONFIG) == {"s3cr3t-db", "tok-123456"}
    assert secret_values({"cluster_key": "ab" * 32, "node": "n1"}) == {"ab" * 32}


@pytest.mark.parametrize(("text", "expected"), [
    ("password=abc rest", f"password={REDACTED} rest"),
    ("run --token Zq9_abc now", f"run --token {REDACTED} now"),
    ("witness add 1.2.3.4:7366 --token=ABCdef", f"witness add 1.2.3.4:7366 --token={REDACTED}"),
    ('{"db_passwd": "pw1", "x": 1}', f'{{"db_passwd": "{REDACTED}", "x": 1}}'),
    ("APP_TOKEN: 'q q'", f"APP_TOKEN: '{REDACTED}'"),
    ("the key is held by node1 --auth-required\n    2     0 S",
     "the key is held by node1 --auth-required\n    2     0 S"),  # never across a line
    ("unauthenticated: 3, heartbeat_interval: 0.2", "unauthenticated: 3, heartbeat_interval: 0.2"),
    ("restored by s3cr3t-db's script", f"restored by {REDACTED}'s script"),
    ("ab", "ab"),
])
def test_scrubber_text(text: str, expected: str) -> None:
    assert Scrubber(secret_values(CONFIG) | {"ab"}).text(text) == expected


def test_json_file_stays_json() -> None:
    scrub = Scrubber({"tok-123456"})
    text = json.dumps({"unauthenticated": 3, "auth_key": 7, "note": "sent tok-123456",
                       "args": ["--password", "x"], "command": "a --password=inline-pw"})
    cleaned = json.loads(scrub.file("status.json", text))
    assert cleaned == {"unauthenticated": 3, "auth_key": REDACTED,
                       "note": f"sent {REDACTED}", "args": ["--password", "x"],
                       "command": f"a --password={REDACTED}"}
    assert scrub.file("broken.json", "{token: tok-123456") == f"{{token: {REDACTED}"


def test_with_values_adds_to_what_it_knows() -> None:
    scrub = Scrubber({"first-secret"}).with_values({"second|secret"})
    assert scrub.text("first-secret second|secret") == f"{REDACTED} {REDACTED}"
