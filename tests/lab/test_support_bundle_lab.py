"""`tutela support-bundle` on a two-node lab cluster with a witness: from node1 with both
daemons up it holds both nodes' configuration, status and logs; with node1's tutelad
stopped it still holds node1's own part and says what is missing and why. No secret (the
cluster key, the witness's enrolment token, resource passwords and tokens, the notification
targets' webhook secret, SNMP community and keys, SMTP password) is anywhere in either
bundle, in any file, logs included."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import (
    WITNESS_PORT,
    all_alive,
    form_cluster,
    tutela,
    witness_alive,
    witness_lab,
)

pytestmark = pytest.mark.lab
DB_PASSWORDS = {"test_passwd": "Db-Check-pw-4471", "replication_passwd": "Repl-pw-90210"}
APP_TOKEN = "app-tok-5Yq81"
APP_PASSWORD = "app-Pa55-3391"
NOTIFY_SECRETS = {"secret": "hook-hmac-7731", "community": "traps-c0mm-2207",
                  "auth_key": "snmp-auth-5512", "priv_key": "snmp-priv-6623",
                  "password": "smtp-pw-8834"}
"""One notification target of each kind with its secrets (docs/notifications.md)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, set[str]]]:
    """The lab, formed, with a witness and two resources with secrets on node1; the
    secrets' values (the cluster key read from the LCDs last, by the test)."""
    root = tmp_path_factory.mktemp("sb")
    with witness_lab(unique_lab_name("sb"), root) as (lab, _witness):
        form_cluster(lab, "sb")
        token = enrol_witness(lab)
        wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=60,
                   what="both nodes and the witness ALIVE")
        tutela(lab, "node1", "resource", "create", "ocf:heartbeat:mysql", "db",
               *(f"--param={name}={value}" for name, value in DB_PASSWORDS.items()))
        tutela(lab, "node1", "resource", "create", "process", "app", "--param",
               f"command=sh -c 'echo app started; exec sleep 600' app --password {APP_PASSWORD}",
               "--param", f"env={{APP_TOKEN: {APP_TOKEN}}}", "--restore")
        secret, host = NOTIFY_SECRETS, f"{lab.client_address()}:9"  # nothing listens
        tutela(lab, "node1", "config", "set", "notifications",
               f"[{{name: hook, kind: webhook, url: 'http://{host}/', "
               f"secret: {secret['secret']}}}, "
               f"{{name: v2, kind: snmp, host: '{host}', community: {secret['community']}}}, "
               f"{{name: v3, kind: snmp, host: '{host}', version: '3', user: u, "
               f"auth_key: {secret['auth_key']}, priv_key: {secret['priv_key']}}}, "
               f"{{name: mail, kind: mail, host: '{host}', to: [a@example.net], user: u, "
               f"password: {secret['password']}}}]")
        yield lab, {token, APP_TOKEN, APP_PASSWORD, *DB_PASSWORDS.values(),
                    *NOTIFY_SECRETS.values()}


def enrol_witness(lab: Lab) -> str:
    """Enrol the cluster at the lab's witness from node1; the token it used."""
    witness = str(Path(sys.executable).with_name("tutela-witness"))

    def token() -> str:
        return subprocess.run([witness, "token", "--state-dir", str(lab.root / "witness")],
                              text=True, capture_output=True, check=True).stdout.strip()

    value = wait_until(token, timeout=30, what="the witness to give a token")
    tutela(lab, "node1", "witness", "add", f"{lab.client_address()}:{WITNESS_PORT}",
           "--token", value)
    return value


def cluster_keys(lab: Lab) -> set[str]:
    keys = set()
    for node in lab.nodes:
        with sqlite3.connect(f"file:{lab.state_dir(node) / 'lcd.sqlite'}?mode=ro",
                             uri=True) as lcd:
            keys |= {row[0] for row in lcd.execute(
                "SELECT value FROM meta WHERE key LIKE 'cluster_key%'")}
    return keys


def bundle(lab: Lab, name: str) -> tuple[dict[str, Any], Path]:
    """`tutela support-bundle --json` on node1: its report and the unpacked top directory."""
    path = lab.root / f"{name}.tar.gz"
    result = lab.exec("node1", ["tutela", "support-bundle", "-o", str(path), "--json"],
                      timeout=300)
    into = lab.root / name
    with tarfile.open(path) as tar:
        tar.extractall(into, filter="data")
    (top,) = into.iterdir()
    return json.loads(result.stdout), top


def assert_no_secret(top: Path, secrets: set[str]) -> None:
    files = [p for p in top.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} in {path}"


def test_bundle_with_both_daemons_up(cluster: tuple[Lab, set[str]]) -> None:
    lab, secrets = cluster
    report, top = bundle(lab, "up")
    assert report["nodes"] == ["node1", "node2"] and report["missing"] == []
    for node in lab.nodes:
        part = top / "nodes" / node
        assert json.loads((part / "status.json").read_text())["node"] == node
        assert "tutelad" in (part / "logs" / "tutelad.log").read_text()
        assert "198.51.100." in (part / "system" / "addresses.txt").read_text()
        db = next(r for r in json.loads((part / "config.json").read_text())["resources"]
                  if r["tag"] == "db")
        assert db["params"] == {name: "[redacted]" for name in DB_PASSWORDS}
    assert (top / "nodes" / "node1" / "doctor.json").is_file()
    assert "app started" in (top / "nodes/node1/resources/app/output.log").read_text()
    assert "Everything was collected." in (top / "README.txt").read_text()
    assert_no_secret(top, secrets | cluster_keys(lab))


def test_bundle_with_node1_stopped(cluster: tuple[Lab, set[str]]) -> None:
    lab, secrets = cluster
    tutela(lab, "node1", "stop")
    report, top = bundle(lab, "down")
    assert report["nodes"] == ["node1"]
    readme = (top / "README.txt").read_text()
    for line in report["missing"]:
        assert line in readme
    assert any(m.startswith("node1: status.json: tutelad is not running")
               for m in report["missing"])
    assert any(m.startswith("node2: not collected: tutelad is not running on this node")
               for m in report["missing"])
    part = top / "nodes" / "node1"
    assert (part / "config.json").is_file() and (part / "logs" / "tutelad.log").is_file()
    assert not (part / "status.json").exists() and not (top / "nodes" / "node2").exists()
    assert_no_secret(top, secrets | cluster_keys(lab))
