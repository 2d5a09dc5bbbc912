"""SNMP traps and mail (docs/notifications.md) against real receivers on this host:
Debian's snmptrapd (v2c community, v3 authPriv user) translating with mibs/TUTELA-MIB.txt,
which smilint and snmptranslate check; aiosmtpd requiring STARTTLS or TLS and a login.
Also the configuration's checks of the new fields, and their redaction."""

from __future__ import annotations

import datetime
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from helpers import wait_until
from smtp_receiver import certificate, received, serve, text_of
from snmp_receiver import (
    MIB_DIR,
    TrapReceiver,
    V3User,
    base_mib_dir,
    mib_path,
    net_snmp_environment,
)
from tutela.journal.events import make
from tutela.lcd.redact import REDACTED, redact_tree, secret_values
from tutela.model.config import Notification
from tutela.notifications.channels import DeliveryFailed, body_of, deliver
from tutela.notifications.snmp import engine_id_of

pytestmark = pytest.mark.filterwarnings(  # aiosmtpd's, of the implicit-TLS server: see
    "ignore:Requiring AUTH while not requiring TLS:UserWarning")  # smtp_receiver.serve
NOW = datetime.datetime(2026, 12, 7, 8, 0, tzinfo=datetime.UTC)
COMMUNITY = "tr4ps-community"
USER = V3User("tutela", engine_id_of("node2"), "auth-passphrase", "priv-passphrase",
              "SHA256", "AES")
TRAP_PORT = 16162
SMTP_PORTS = {"starttls": 16587, "implicit": 16465}
LOGIN = ("oncall-bot", "smtp-passw0rd")


def record_body(kind: str = "restore.failed", cause: str = "vip: restore exited 1") -> bytes:
    event = make(NOW, "node2", kind, "app", cause, "app/0123456789ab", None,
                 {"dead": ["node1"]})
    return body_of(event.to_json(), "prod")


@pytest.fixture(scope="module")
def traps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrapReceiver]:
    receiver = TrapReceiver(tmp_path_factory.mktemp("traps"), "127.0.0.1", TRAP_PORT,
                            COMMUNITY, [USER])
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("smtp")
    cert, key = certificate(directory, "127.0.0.1")
    mails = directory / "mails.jsonl"
    servers = [serve("127.0.0.1", port, mails, cert, key, *LOGIN, implicit=tls == "implicit")
               for tls, port in SMTP_PORTS.items()]
    yield mails, cert
    for server in servers:
        server.stop()


def snmp_target(**more: Any) -> Notification:
    return Notification(name="traps", kind="snmp", host=f"127.0.0.1:{TRAP_PORT}", **more)


def mail_target(cert: Path, tls: str = "starttls", **more: Any) -> Notification:
    fields: dict[str, Any] = {"user": LOGIN[0], "password": LOGIN[1],
                              "to": ("oncall@example.net", "ops@example.net"),
                              "sender": "tutela@example.net", "ca_file": str(cert), **more}
    return Notification(name="mail", kind="mail", host=f"127.0.0.1:{SMTP_PORTS[tls]}",
                        tls=tls, **fields)


def test_the_mib_passes_smilint_and_snmptranslate(tmp_path: Path) -> None:
    linted = subprocess.run(["smilint", "-l", "6", "-s", str(MIB_DIR / "TUTELA-MIB.txt")],
                            env={"SMIPATH": str(base_mib_dir())}, capture_output=True,
                            text=True, check=False)
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")
    translated = subprocess.run(["snmptranslate", "-M", mib_path(), "-m", "TUTELA-MIB",
                                 "-On", "TUTELA-MIB::tutelaEventError"],
                                env=net_snmp_environment(tmp_path / "snmp"),
                                capture_output=True, text=True, check=False)
    assert (translated.stdout, translated.stderr) == (".1.3.6.1.4.1.32473.0.3\n", "")


def trap_of(traps: TrapReceiver, security: str) -> dict[str, str]:
    wait_until(lambda: any(security in t.security for t in traps.received()), timeout=20,
               what=f"a trap with {security!r} at snmptrapd")
    return next(t.varbinds for t in traps.received() if security in t.security)


@pytest.mark.parametrize("version", ["2c", "3"])
def test_a_trap_arrives_translated_with_every_field(traps: TrapReceiver, version: str
                                                    ) -> None:
    target = (snmp_target(community=COMMUNITY) if version == "2c" else snmp_target(
        version="3", user=USER.name, auth_protocol="SHA256", auth_key=USER.auth_key,
        priv_key=USER.priv_key))
    deliver(target, record_body(cause=f"sent with SNMP v{version}"))
    security = f"community {COMMUNITY}" if version == "2c" else f"user {USER.name}"
    fields = trap_of(traps, security)
    assert fields["SNMPv2-MIB::snmpTrapOID.0"] == "TUTELA-MIB::tutelaEventError"
    assert {name.removeprefix("TUTELA-MIB::tutelaEvent"): value for name, value
            in fields.items() if name.startswith("TUTELA-MIB::")} == {
        "Cluster.0": "prod", "Node.0": "node2", "Kind.0": "restore.failed",
        "Subject.0": "app", "Cause.0": f"sent with SNMP v{version}",
        "Correlation.0": "app/0123456789ab", "Severity.0": "error(3)",
        "Time.0": "2026-12-07T08:00:00.000+00:00"}


def test_a_v3_trap_with_a_wrong_key_is_not_taken(traps: TrapReceiver) -> None:
    wrong = snmp_target(version="3", user=USER.name, auth_protocol="SHA256",
                        auth_key="not-the-passphrase", priv_key=USER.priv_key)
    deliver(wrong, record_body(cause="the wrong key"))  # a trap has no answer: sent is sent
    deliver(snmp_target(community=COMMUNITY), record_body(cause="after the wrong key"))
    wait_until(lambda: any("after the wrong key" in t.varbinds.values()
                           for t in traps.received()), timeout=20, what="the later trap")
    assert not any("the wrong key" in t.varbinds.values() for t in traps.received())


def test_an_unresolvable_trap_host_fails_the_delivery() -> None:
    with pytest.raises(DeliveryFailed, match=r"trap to no-such-host\.invalid"):
        deliver(Notification(name="t", kind="snmp", host="no-such-host.invalid",
                             community=COMMUNITY, timeout=5), record_body())


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_a_mail_arrives_over_tls_after_a_login(smtp: tuple[Path, Path], tls: str) -> None:
    mails, cert = smtp
    deliver(mail_target(cert, tls), record_body(cause=f"mailed with {tls}"))
    [mail] = [m for m in received(mails) if f"mailed with {tls}" in m["data"]]
    assert mail["tls"] and mail["auth"]["login"] == LOGIN[0]
    assert mail["auth"]["mechanism"] in ("PLAIN", "LOGIN")
    assert mail["rcpt_tos"] == ["oncall@example.net", "ops@example.net"]
    message = mail["message"]
    assert message["Subject"].strip() == (f"[tutela prod] ERROR restore.failed app (on node2): "
                                          f"mailed with {tls}")
    assert (message["From"], message["X-Tutela-Kind"], message["X-Tutela-Correlation"]) == (
        "tutela@example.net", "restore.failed", "app/0123456789ab")
    text = text_of(message)
    assert "restore.failed app: the restore failed (cause says why)." in text
    assert f"Cause: mailed with {tls}" in text and "tutela why app" in text


def test_a_mail_is_not_sent_to_a_server_that_is_not_trusted_or_refuses_the_login(
        smtp: tuple[Path, Path]) -> None:
    mails, cert = smtp
    with pytest.raises(DeliveryFailed, match="CERTIFICATE_VERIFY_FAILED"):
        deliver(mail_target(cert, ca_file=None), record_body())
    with pytest.raises(DeliveryFailed, match="refused the login of 'oncall-bot': 535"):
        deliver(mail_target(cert, password="wrong"), record_body())
    with pytest.raises(DeliveryFailed, match="Connection refused"):
        deliver(Notification(name="m", kind="mail", host="127.0.0.1:1", to=("a@b.c",)),
                record_body())
    assert not any("wrong" in m["data"] for m in received(mails))


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "snmp", "host": "h"}, "an snmp notification needs 'community'"),
    ({"kind": "snmp", "host": "h", "version": 3, "user": "u", "auth_key": "short",
      "priv_key": "12345678"}, "auth_key has fewer than 8 characters"),
    ({"kind": "snmp", "host": "h", "community": "c", "user": "u"},
     "user is not used by SNMP version 2c; remove it or set version 3"),
    ({"kind": "snmp", "host": "h", "community": "c", "url": "http://x/"},
     "url is not used by an snmp notification"),
    ({"kind": "snmp", "host": "h", "version": "3", "user": "u", "auth_key": "12345678",
      "priv_key": "12345678", "engine_id": "xyz"}, "engine_id 'xyz' is not 5 to 32 octets"),
    ({"kind": "mail", "host": "smtp.example.net"}, "a mail notification needs 'to'"),
    ({"kind": "mail", "host": "smtp.example.net", "to": ["oncall"]},
     "'oncall' is not a mail address"),
    ({"kind": "mail", "host": "smtp.example.net", "to": ["a@b.c"], "password": "p"},
     "password without user"),
    ({"kind": "mail", "host": "smtp.example.net", "to": ["a@b.c"], "tls": "none",
      "user": "u", "password": "p"}, "a password is never sent without TLS"),
    ({"kind": "mail", "host": "smtp.example.net:x", "to": ["a@b.c"]},
     "host 'smtp.example.net:x' is not HOST or HOST:PORT"),
    ({"kind": "webhook", "url": "http://x/", "community": "c"},
     "community is not used by a webhook notification"),
])
def test_bad_snmp_and_mail_fields_are_refused_naming_the_fix(fields: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Notification(name="n", **fields)


def test_every_kind_reads_back_what_it_writes(smtp: tuple[Path, Path]) -> None:
    """The configuration travels and is stored with every field (defaults included)."""
    for target in (snmp_target(community=COMMUNITY), mail_target(smtp[1], "implicit"),
                   snmp_target(version="3", user=USER.name, auth_key=USER.auth_key,
                               priv_key=USER.priv_key, priv_protocol="AES256"),
                   Notification(name="hook", kind="webhook", url="http://h/", secret="s")):
        assert Notification.model_validate(target.model_dump()) == target
        assert Notification.model_validate_json(target.model_dump_json()) == target


def test_the_snmp_and_smtp_secrets_are_redacted() -> None:
    targets = [snmp_target(community=COMMUNITY).model_dump(exclude_none=True),
               snmp_target(version="3", user=USER.name, auth_key=USER.auth_key,
                           priv_key=USER.priv_key).model_dump(exclude_none=True),
               mail_target(Path("/ca.pem")).model_dump(exclude_none=True)]
    redacted = redact_tree({"notifications": targets})["notifications"]
    assert [t.get(f) for t, f in zip(redacted, ("community", "auth_key", "password"),
                                     strict=True)] == [REDACTED] * 3
    assert redacted[1]["priv_key"] == REDACTED and redacted[2]["user"] == LOGIN[0]
    assert secret_values({"notifications": targets}) >= {
        COMMUNITY, USER.auth_key, USER.priv_key, LOGIN[1]}
