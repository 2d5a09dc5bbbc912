"""Notifications (docs/notifications.md): the filter, the signature, the backoff schedule,
the bound of a target's queue, the configuration's checks, and delivery to a real HTTP
receiver and a real script on this host."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from helpers import wait_until
from notify_receiver import received, serve
from tutela.daemon.protocol import LOG_NAME
from tutela.daemon.support import collect_node
from tutela.journal.events import Event, make
from tutela.lcd.redact import REDACTED, redact_tree, secret_values
from tutela.lcd.store import Lcd
from tutela.lcd.validate import validate_config
from tutela.model.config import ClusterConfig, Notification
from tutela.model.errors import ConfigError
from tutela.notifications.channels import (
    SIGNATURE_HEADER,
    DeliveryFailed,
    body_of,
    deliver,
    signature,
)
from tutela.notifications.dispatch import Dispatcher, Outbox, backoff, send_tests, wanted

NOW = datetime.datetime(2026, 12, 7, 8, 0, tzinfo=datetime.UTC)


def event(kind: str, severity: Any = None) -> Event:
    return make(NOW, "node2", kind, "app", "because", "app/0123456789ab", severity,
                {"dead": ["node1"]})


def webhook(url: str, **more: Any) -> Notification:
    return Notification(name="hook", kind="webhook", url=url, **more)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    record = tmp_path / "received.jsonl"
    server = serve("127.0.0.1", 0, record)
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", record
    server.shutdown()
    server.server_close()


def test_filter_by_kind_prefix_and_severity() -> None:
    everything = webhook("http://x/", min_severity="info")
    assert wanted(everything, event("path.up"))
    leases = webhook("http://x/", kinds=("lease.*", "node.down"))
    assert wanted(leases, event("lease.won")) and wanted(leases, event("lease.lost"))
    assert wanted(leases, event("node.down")) and not wanted(leases, event("node.up"))
    assert not wanted(leases, event("restore.finished"))
    warnings = webhook("http://x/", min_severity="warning")
    assert not wanted(warnings, event("lease.won"))
    assert wanted(warnings, event("node.down")) and wanted(warnings, event("lease.lost"))
    assert wanted(warnings, event("lease.won", severity="error"))  # raised by its emitter


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = body_of(event("lease.won").to_json(), "prod")
    assert json.loads(body)["cluster"] == "prod" and json.loads(body)["kind"] == "lease.won"
    expected = hmac.new(b"S3cr3t", body, hashlib.sha256).hexdigest()
    assert signature("S3cr3t", body) == f"sha256={expected}"
    # a published vector (RFC 4231 test case 2) holds for the same construction
    assert signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_backoff_schedule_doubles_up_to_a_minute() -> None:
    assert [backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    outbox = Outbox(webhook("http://x/"), limit=3)  # not started: nothing is taken out
    for n in range(5):
        outbox.put(f"{n}".encode())
    assert list(outbox.waiting) == [b"2", b"3", b"4"]
    assert outbox.dropped == 2


def test_webhook_posts_the_record_signed(receiver: tuple[str, Path]) -> None:
    url, record = receiver
    body = body_of(event("node.down").to_json(), "prod")
    deliver(webhook(url, secret="S3cr3t"), body)
    [got] = received(record)
    assert got["body"] == body.decode() and got["path"] == "/hook"
    headers: dict[str, str] = got["headers"]
    assert headers[SIGNATURE_HEADER] == signature("S3cr3t", body)
    assert headers["Content-Type"] == "application/json"


def test_webhook_down_or_refusing_fails_with_why(tmp_path: Path) -> None:
    server = serve("127.0.0.1", 0, tmp_path / "r.jsonl")
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(DeliveryFailed, match="refused"):
        deliver(webhook(f"http://127.0.0.1:{port}/"), b"{}")


def test_a_hanging_webhook_fails_at_its_timeout(tmp_path: Path) -> None:
    server = serve("127.0.0.1", 0, tmp_path / "r.jsonl", hang=True)
    try:
        with pytest.raises(DeliveryFailed, match="timed out"):
            deliver(webhook(f"http://127.0.0.1:{server.server_address[1]}/", timeout=0.5),
                    b"{}")
    finally:
        server.server_close()


def test_script_gets_the_record_on_stdin_and_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "script.out"
    script = tmp_path / "event.sh"
    script.write_text(f'#!/bin/sh\n{{ env | grep ^TUTELA_ | sort; cat; }} > {out}\n')
    script.chmod(0o755)
    target = Notification(name="lk", kind="script", command=f"{script} --verbose")
    deliver(target, body_of(event("lease.won").to_json(), "prod"))
    lines = out.read_text().splitlines()
    assert "TUTELA_EVENT_KIND=lease.won" in lines and "TUTELA_CLUSTER=prod" in lines
    assert "TUTELA_EVENT_CORRELATION=app/0123456789ab" in lines
    assert "TUTELA_NOTIFICATION=lk" in lines and "TUTELA_EVENT_SUBJECT=app" in lines
    assert json.loads(lines[-1])["details"] == {"dead": ["node1"]}


def test_script_failing_or_hanging_fails_with_why(tmp_path: Path) -> None:
    failing = Notification(name="f", kind="script", command="sh -c 'echo broken; exit 3'")
    with pytest.raises(DeliveryFailed, match="exited 3: broken"):
        deliver(failing, b'{"cluster": "c"}')
    hanging = Notification(name="h", kind="script", command="sleep 30", timeout=0.3)
    with pytest.raises(DeliveryFailed, match=r"did not finish within 0\.3s"):
        deliver(hanging, b'{"cluster": "c"}')


def test_dispatcher_sends_only_what_a_target_wants(receiver: tuple[str, Path]) -> None:
    url, record = receiver
    config = ClusterConfig(name="prod", notifications=(
        webhook(url, kinds=("restore.*",)),))
    dispatcher = Dispatcher(lambda: config)
    dispatcher.record(event("lease.won"))
    dispatcher.record(event("restore.finished"))
    got = wait_until(lambda: received(record), what="the restore.finished record")
    assert [json.loads(g["body"])["kind"] for g in got] == ["restore.finished"]
    dispatcher.outboxes["hook"].stop()


def test_notify_test_reports_each_target(receiver: tuple[str, Path]) -> None:
    url, record = receiver
    targets = (webhook(url), Notification(name="broken", kind="script", command="false"))
    results = send_tests(ClusterConfig(name="prod", notifications=targets), "node1", targets)
    assert [(r.name, r.delivered) for r in results] == [("hook", True), ("broken", False)]
    assert "exited 1" in results[1].error
    assert json.loads(received(record)[0]["body"])["kind"] == "notify.test"


@pytest.mark.parametrize(("entry", "says"), [
    ({"kind": "webhook"}, "needs 'url'"),
    ({"kind": "script"}, "needs 'command'"),
    ({"kind": "script", "command": "x", "secret": "s"}, "secret is not used by a script"),
    ({"kind": "webhook", "url": "ftp://h/"}, "is not an http:// or https:// URL"),
    ({"kind": "webhook", "url": "http://h/", "kinds": ["lease"]}, "kinds.0"),
    ({"kind": "webhook", "url": "http://h/", "min_severity": "debug"}, "min_severity"),
    ({"kind": "snmp"}, "kind"),
])
def test_bad_targets_are_refused_naming_the_field(entry: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ClusterConfig(name="c", notifications=({"name": "n", **entry},))


def test_unknown_kinds_and_two_targets_of_one_name_are_refused() -> None:
    one = Notification(name="n", kind="script", command="x", kinds=("lease.wom", "lease.*"))
    with pytest.raises(ConfigError) as refused:
        validate_config(ClusterConfig(name="c", notifications=(one, one)))
    assert [(p.field, p.message) for p in refused.value.problems] == [
        ("notifications[n]", "'n' is defined 2 times"),
        ("notifications[n].kinds", "'lease.wom' is no event kind"),
        ("notifications[n].kinds", "'lease.wom' is no event kind")]
    assert "lease.*" in refused.value.problems[1].fix


def test_the_webhook_secret_is_redacted_by_the_one_rule() -> None:
    config = ClusterConfig(name="c", notifications=(webhook("http://h/", secret="S3cr3t"),))
    dumped = config.model_dump(mode="json")
    assert redact_tree(dumped)["notifications"][0]["secret"] == REDACTED
    assert "S3cr3t" in secret_values(dumped)


def test_a_fault_while_queueing_is_logged_not_raised(caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    def broken() -> ClusterConfig:
        raise RuntimeError("no configuration")

    Dispatcher(broken).record(event("lease.won"))  # the emitter goes on
    assert "record lease.won of app not queued" in caplog.text


def test_the_support_bundle_part_holds_no_notification_secret(tmp_path: Path) -> None:
    """The webhook's HMAC secret, the SNMP community and v3 keys, the SMTP password."""
    secrets = {"secret": "S3cr3t-of-the-hook", "community": "c0mmunity-of-traps",
               "auth_key": "auth-key-of-traps", "priv_key": "priv-key-of-traps",
               "password": "passw0rd-of-smtp"}
    lcd = Lcd.create(tmp_path, "c", "node1")
    try:
        config = lcd.load().model_copy(update={"notifications": (
            webhook("http://h/", secret=secrets["secret"]),
            Notification(name="v2", kind="snmp", host="h", community=secrets["community"]),
            Notification(name="v3", kind="snmp", host="h", version="3", user="u",
                         auth_key=secrets["auth_key"], priv_key=secrets["priv_key"]),
            Notification(name="mail", kind="mail", host="h", to=("a@b.c",), user="u",
                         password=secrets["password"]))})
        lcd.commit(config, "one target of each kind with a secret")
    finally:
        lcd.close()
    (tmp_path / LOG_NAME).write_text("".join(f"a log line repeating it: {value}\n"
                                             for value in secrets.values()))
    part = collect_node(tmp_path, "node1")
    stored = json.loads(part.files["config.json"])["notifications"]
    assert {name: t[name] for t in stored for name in secrets if t.get(name)} == dict.fromkeys(
        secrets, REDACTED)
    assert "[redacted]" in next(t for n, t in part.files.items() if n.endswith(LOG_NAME))
    assert not [(name, value) for name, text in part.files.items()
                for value in secrets.values() if value in text]
