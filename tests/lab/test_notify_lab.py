"""Notifications in a lab failover (docs/notifications.md): two nodes and a witness, a
process hierarchy on node1; in the client namespace webhook receivers (tests/notify_receiver.py,
a real HTTP server), Debian's snmptrapd (a v2c community and a v3 authPriv user,
tests/snmp_receiver.py) and an SMTP server requiring STARTTLS and a login
(tests/smtp_receiver.py); an event script on the nodes. `tutela notify test` reaches the
targets that are up; node1 powered off, the survivor's node.down, lease.won and
restore.finished arrive signed at the receiver, at the script, as v2c and v3 traps (checked
as snmptrapd translated them with the MIB) and as mails (checked as the server took them);
`tutela why`, the mail and the trap of that failover are printed (docs/notifications.md
shows them); a receiver that was down gets its record on a retry once it is started; a
webhook that accepts and never answers does not stop a failover: two more failovers after
the same steps (power on, switchover back, targets set again), without and with it, their
times printed."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from smtp_receiver import certificate, received, text_of
from snmp_receiver import Trap, TrapReceiver, V3User
from tutela.daemon.protocol import LOG_NAME
from tutela.lab import Lab
from tutela.lab.driver import (
    all_alive,
    form_cluster_with_witness,
    status,
    tutela,
    witness_lab,
)
from tutela.notifications.snmp import engine_id_of

pytestmark = pytest.mark.lab
ROOT = "notified"
SECRET = "S3cr3t-of-the-hook"
RECEIVER = Path(__file__).resolve().parents[1] / "notify_receiver.py"
PORTS = {"hook": 8081, "late": 8082, "hang": 8083, "traps": 1162, "smtp": 2587}
SMTP_RECEIVER = RECEIVER.with_name("smtp_receiver.py")
COMMUNITY = "c0mmunity-of-the-lab"
V3 = {"user": "tutela", "auth_key": "auth-passphrase-of-the-lab",
      "priv_key": "priv-passphrase-of-the-lab"}
SMTP_LOGIN = ("oncall-bot", "smtp-passw0rd-of-the-lab")
MAILED_KINDS = "[node.down, lease.won, restore.finished, restore.failed]"
FAILOVER_KINDS = ["node.down", "lease.won", "restore.finished"]
timings: dict[str, dict[str, float]] = {}
"""Seconds from power-off to each step on the survivor, without and with a hang."""


class Receivers:
    """The webhook receivers in the client namespace (each a process of this test) and the
    files they and the event script write."""

    def __init__(self, lab: Lab, directory: Path) -> None:
        self.lab, self.directory = lab, directory
        self.processes: list[subprocess.Popen[str]] = []

    def url(self, name: str) -> str:
        return f"http://{self.lab.client_address()}:{PORTS[name]}/{name}"

    def record(self, name: str) -> Path:
        return self.directory / f"{name}.jsonl"

    def start(self, name: str, hang: bool = False) -> None:
        self._start([sys.executable, str(RECEIVER), self.lab.client_address(),
                     str(PORTS[name]), str(self.record(name)), *(["--hang"] if hang else [])])

    def start_snmp_and_smtp(self) -> None:
        """snmptrapd (a v3 user for each node's engine) and the SMTP server, in the client
        namespace."""
        users = [V3User(V3["user"], engine_id_of(node), V3["auth_key"], V3["priv_key"])
                 for node in self.lab.nodes]
        self.traps = TrapReceiver(self.directory / "snmptrapd", self.lab.client_address(),
                                  PORTS["traps"], COMMUNITY, users, self.lab.client_argv([]))
        self.cert, key = certificate(self.directory, self.lab.client_address())
        argv = [sys.executable, str(SMTP_RECEIVER), self.lab.client_address(),
                str(PORTS["smtp"]), str(self.mailbox), str(self.cert), str(key), *SMTP_LOGIN]
        self._start(argv)

    @property
    def mailbox(self) -> Path:
        return self.directory / "mails.jsonl"

    def _start(self, argv: list[str]) -> None:
        process = subprocess.Popen(self.lab.client_argv(argv), env=self.lab.client_environment(),
                                   stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.processes.append(process)
        assert process.stdout is not None and process.stdout.readline() == "listening\n"

    def trapped(self, security: str) -> list[Trap]:
        """The traps snmptrapd logged with this security ('community X' or 'user Y')."""
        return [t for t in self.traps.received() if security in t.security]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
        if hasattr(self, "traps"):
            self.traps.stop()

    def posts(self, name: str) -> list[dict[str, Any]]:
        path = self.record(name)
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def records(self, name: str) -> list[dict[str, Any]]:
        """The records that arrived, each checked against its signature."""
        found = []
        for post in self.posts(name):
            expected = hmac.new(SECRET.encode(), post["body"].encode(), hashlib.sha256)
            assert post["headers"]["X-Tutela-Signature"] == f"sha256={expected.hexdigest()}"
            found.append(json.loads(post["body"]))
        return found

    def scripted(self, node: str) -> list[dict[str, Any]]:
        """What the event script on `node` was given: its stdin record, with the kind and
        target it read from its environment."""
        path = self.directory / f"script-{node}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]


def script(directory: Path) -> Path:
    path = directory / "event.sh"
    path.write_text(
        "#!/bin/sh\n"
        "record=$(cat)\n"
        'printf \'{"record": %s, "kind": "%s", "target": "%s"}\\n\' "$record" '
        '"$TUTELA_EVENT_KIND" "$TUTELA_NOTIFICATION" '
        f'>> {directory}/script-$TUTELA_EVENT_NODE.jsonl\n')
    path.chmod(0o755)
    return path


def targets(receivers: Receivers, event_script: Path, hang: bool = False) -> str:
    entries = [
        f"{{name: hook, kind: webhook, url: '{receivers.url('hook')}', secret: {SECRET}, "
        "kinds: [node.down, lease.won, 'restore.*'], min_severity: info}",
        f"{{name: late, kind: webhook, url: '{receivers.url('late')}', secret: {SECRET}, "
        "kinds: [restore.finished], retries: 8, timeout: 5}",
        f"{{name: script, kind: script, command: '{event_script}', "
        "kinds: [node.down, 'lease.*', 'restore.*']}"]
    traps = f"kind: snmp, host: '{receivers.lab.client_address()}:{PORTS['traps']}'"
    entries += [
        f"{{name: traps-v2c, {traps}, community: {COMMUNITY}, "
        "kinds: [node.down, lease.won, 'restore.*']}",
        f"{{name: traps-v3, {traps}, version: '3', user: {V3['user']}, auth_protocol: SHA, "
        f"auth_key: {V3['auth_key']}, priv_protocol: AES, priv_key: {V3['priv_key']}, "
        "kinds: [node.down, lease.won, 'restore.*']}",
        f"{{name: mail, kind: mail, host: '{receivers.lab.client_address()}:{PORTS['smtp']}', "
        f"user: {SMTP_LOGIN[0]}, password: {SMTP_LOGIN[1]}, to: [oncall@example.net], "
        f"sender: tutela@example.net, ca_file: '{receivers.cert}', kinds: {MAILED_KINDS}}}"]
    if hang:
        entries.append(f"{{name: hang, kind: webhook, url: '{receivers.url('hang')}', "
                       "kinds: ['*'], timeout: 60, retries: 0}")
    return f"[{', '.join(entries)}]"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Receivers]]:
    directory = tmp_path_factory.mktemp("nt-files")
    with witness_lab(unique_lab_name("nt"), tmp_path_factory.mktemp("nt")) as (built, _):
        receivers = Receivers(built, directory)
        try:
            form_cluster_with_witness(built, "nt")
            tutela(built, "node1", "resource", "create", "process", ROOT,
                   "-p", "command=sleep 100000")
            tutela(built, "node1", "restore", ROOT)
            tutela(built, "node1", "hierarchy", "extend", ROOT, "--to", "node2",
                   "--priority", "2")
            tutela(built, "node1", "config", "set", "settings.failover_damping.hold", "0")
            receivers.start("hook")
            receivers.start_snmp_and_smtp()
            tutela(built, "node1", "config", "set", "notifications",
                   targets(receivers, script(directory)))
            yield built, receivers
        finally:
            receivers.stop()


def state_on(lab: Lab, node: str) -> str:
    return str(next(r["state"] for h in status(lab, node)["hierarchies"]
                    for r in h["resources"] if r["tag"] == ROOT))


def failover_timing(lab: Lab, powered_off: float) -> dict[str, float]:
    """Seconds from power-off to each step on node2 (its journal's times, same clock):
    node.down of node1, lease.won, restore.started and restore.finished of ROOT."""
    answer = json.loads(tutela(lab, "node2", "events", "--json", "--since", "5m").stdout)
    mine = [e for e in answer["events"] if e["node"] == "node2"
            and datetime.fromisoformat(e["at"]).timestamp() >= powered_off]
    steps = {(e["kind"], e["subject"]): datetime.fromisoformat(e["at"]).timestamp()
             for e in mine}  # the last of each
    print("".join(f"\n  +{datetime.fromisoformat(e['at']).timestamp() - powered_off:.2f}s "
                  f"{e['kind']} {e['subject']}: {e['cause']}" for e in mine))
    return {kind: round(steps[(kind, subject)] - powered_off, 2) for kind, subject in
            (("node.down", "node1"), ("lease.won", ROOT), ("restore.started", ROOT),
             ("restore.finished", ROOT))}


def power_off_and_fail_over(lab: Lab) -> dict[str, float]:
    powered_off = time.time()
    lab.power_off("node1")
    wait_until(lambda: state_on(lab, "node2") == "ISP", timeout=90,
               what=f"{ROOT} in service on node2")
    return failover_timing(lab, powered_off)


def test_notify_test_reaches_each_target_that_is_up(lab: tuple[Lab, Receivers]) -> None:
    built, receivers = lab
    sent = tutela(built, "node2", "notify", "test", "--json", check=False)
    results = {r["name"]: r for r in json.loads(sent.stdout)["results"]}
    assert results["hook"]["delivered"] and results["script"]["delivered"], results
    assert not results["late"]["delivered"] and "refused" in results["late"]["error"]
    assert sent.returncode == 1  # one target did not take it
    [tested] = receivers.records("hook")
    assert (tested["kind"], tested["node"], tested["cluster"]) == ("notify.test", "node2", "nt")
    assert [s["kind"] for s in receivers.scripted("node2")] == ["notify.test"]
    one = tutela(built, "node2", "notify", "test", "--name", "hook")
    assert one.stdout.startswith("hook (webhook): delivered in ")
    assert all(results[name]["delivered"] for name in ("traps-v2c", "traps-v3", "mail")), results
    for security, name in ((f"community {COMMUNITY}", "traps-v2c"),
                           (f"user {V3['user']}", "traps-v3")):
        [trap] = receivers.trapped(security)
        assert (trap.varbinds["TUTELA-MIB::tutelaEventKind.0"],
                trap.varbinds["TUTELA-MIB::tutelaEventSubject.0"]) == ("notify.test", name)
    [mail] = received(receivers.mailbox)
    assert mail["tls"] and mail["auth"]["login"] == SMTP_LOGIN[0]
    assert mail["message"]["Subject"].strip().startswith("[tutela nt] INFO notify.test mail ")


def test_failover_records_reach_the_receiver_and_the_script(lab: tuple[Lab, Receivers]
                                                            ) -> None:
    built, receivers = lab
    timings["first"] = power_off_and_fail_over(built)

    def told(records: list[dict[str, Any]]) -> list[str]:
        return [r["kind"] for r in records if r["node"] == "node2"
                and (r["subject"], r["kind"]) in {("node1", "node.down"),
                                                  (ROOT, "lease.won"),
                                                  (ROOT, "restore.finished")}]

    wait_until(lambda: told(receivers.records("hook"))[-3:] == FAILOVER_KINDS, timeout=30,
               what="node.down, lease.won, restore.finished at the hook, signed")
    wait_until(lambda: told([s["record"] for s in receivers.scripted("node2")])[-3:]
               == FAILOVER_KINDS, timeout=30, what="the same records at the script")
    scripted = receivers.scripted("node2")
    assert all(s["record"]["kind"] == s["kind"] and s["target"] == "script"
               for s in scripted), scripted


def failover_traps(receivers: Receivers, security: str) -> list[dict[str, str]] | None:
    """The traps of node2's node.down of node1, lease.won and restore.finished of ROOT,
    once all three arrived."""
    wanted = {("node.down", "node1"), ("lease.won", ROOT), ("restore.finished", ROOT)}
    found = [t.varbinds for t in receivers.trapped(security)
             if (t.varbinds["TUTELA-MIB::tutelaEventKind.0"],
                 t.varbinds["TUTELA-MIB::tutelaEventSubject.0"]) in wanted
             and t.varbinds["TUTELA-MIB::tutelaEventNode.0"] == "node2"]
    return found if len(found) == len(wanted) else None


def test_failover_records_arrive_as_traps_and_mails(lab: tuple[Lab, Receivers]) -> None:
    """After the failover of the test before: v2c and v3 traps and mails of it, checked as
    they arrived; `tutela why`, one mail and one trap printed for docs/notifications.md."""
    built, receivers = lab
    for security in (f"community {COMMUNITY}", f"user {V3['user']}"):
        found = wait_until(partial(failover_traps, receivers, security), timeout=30,
                           what=f"node.down, lease.won, restore.finished as traps ({security})")
        assert found is not None
        down, won, finished = found
        assert (down["SNMPv2-MIB::snmpTrapOID.0"], down["TUTELA-MIB::tutelaEventSeverity.0"]
                ) == ("TUTELA-MIB::tutelaEventWarning", "warning(2)")
        assert won["SNMPv2-MIB::snmpTrapOID.0"] == "TUTELA-MIB::tutelaEventInfo"
        assert (won["TUTELA-MIB::tutelaEventCorrelation.0"]
                == finished["TUTELA-MIB::tutelaEventCorrelation.0"] != "")
        assert all(t["TUTELA-MIB::tutelaEventCluster.0"] == "nt" for t in (down, won, finished))

    def mailed() -> list[dict[str, Any]]:
        return [m for m in received(receivers.mailbox) if m["message"]["X-Tutela-Node"] == "node2"
                and m["message"]["X-Tutela-Kind"] in FAILOVER_KINDS]

    wait_until(lambda: [m["message"]["X-Tutela-Kind"] for m in mailed()] == FAILOVER_KINDS,
               timeout=30, what="a mail each of node.down, lease.won, restore.finished")
    down_mail = mailed()[0]
    assert down_mail["tls"] and down_mail["rcpt_tos"] == ["oncall@example.net"]
    assert down_mail["message"]["Subject"].strip().startswith(
        "[tutela nt] WARNING node.down node1 (on node2): ")
    assert "node.down node1: a peer is DEAD" in text_of(down_mail["message"])
    why = tutela(built, "node2", "why", ROOT).stdout
    trap = next(t for t in receivers.traps.log.read_text().splitlines()
                if f"user {V3['user']}" in t and "STRING: node.down" in t)
    print("\n--- tutela why", ROOT, "\n" + why + "--- the mail of node.down, as received\n"
          + down_mail["data"] + "--- the v3 trap of node.down, as snmptrapd logged it\n"
          + trap.replace("\t", "\n  ") + "\n--- the subjects of the failover's mails\n"
          + "\n".join(m["message"]["Subject"].strip() for m in mailed()))


def test_a_receiver_down_gets_the_record_once_started(lab: tuple[Lab, Receivers]) -> None:
    built, receivers = lab
    log = built.state_dir("node2") / LOG_NAME
    wait_until(lambda: "notification late: not delivered (attempt" in log.read_text(),
               timeout=30, what="node2 logging the failed delivery to 'late'")
    receivers.start("late")
    wait_until(lambda: any(r["kind"] == "restore.finished" and r["subject"] == ROOT
                           for r in receivers.records("late")),
               timeout=120, what="the retried restore.finished at 'late'")
    # The receiver has it before node2 has logged its answer.
    wait_until(lambda: "notification late: delivered (attempt" in log.read_text(),
               timeout=10, what="node2 logging the delivery to 'late'")


def fail_over_again(lab: Lab, receivers: Receivers, hang: bool) -> dict[str, float]:
    """node1 powered on and the hierarchy moved back to it, the targets set again (with the
    hanging one or not), node1 powered off: the same steps for both measured failovers."""
    lab.power_on("node1")
    wait_until(lambda: all_alive(lab), timeout=90, what="node1 back in the cluster")
    tutela(lab, "node2", "switchover", ROOT, "--to", "node1")
    tutela(lab, "node2", "config", "set", "notifications",
           targets(receivers, script(receivers.directory), hang=hang))
    if hang:
        wait_until(lambda: hanging_connections(lab), timeout=30,
                   what="a delivery to 'hang' waiting for its answer")
    return power_off_and_fail_over(lab)


def test_a_failover_without_a_hanging_webhook(lab: tuple[Lab, Receivers]) -> None:
    built, receivers = lab
    timings["without"] = fail_over_again(built, receivers, hang=False)
    assert state_on(built, "node2") == "ISP"


def test_a_hanging_webhook_does_not_stop_the_failover(lab: tuple[Lab, Receivers]) -> None:
    built, receivers = lab
    receivers.start("hang", hang=True)
    timings["with"] = fail_over_again(built, receivers, hang=True)
    print(f"\nfailover time, seconds from power-off to restore.finished on node2: "
          f"{timings['without']['restore.finished']:.2f} without a hanging webhook, "
          f"{timings['with']['restore.finished']:.2f} with one (the first failover: "
          f"{timings['first']['restore.finished']:.2f}); each step: without "
          f"{timings['without']}, with {timings['with']}")
    assert state_on(built, "node2") == "ISP"
    assert hanging_connections(built)  # still waiting: it hung through the failover
    assert receivers.posts("hang") == []


def hanging_connections(lab: Lab) -> int:
    """Connections the hanging receiver holds open (accepted, never answered)."""
    listed = lab.client_exec(["ss", "-Htn", "state", "established", "sport",
                              f"= :{PORTS['hang']}"])
    return len(listed.stdout.splitlines())
