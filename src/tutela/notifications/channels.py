"""How one record reaches one target: one function per channel (`CHANNELS`), called in a
delivery thread, raising DeliveryFailed with why.

webhook: the record as JSON, POSTed with `X-Tutela-Signature: sha256=HEX` (HMAC-SHA256 of
the body with the target's secret) when it has one; any 2xx answer is a delivery.
script: LifeKeeper-style event script, the record as JSON on stdin and its fields in
TUTELA_EVENT_* variables; exit 0 within the timeout is a delivery.
snmp: a trap of TUTELA-MIB (tutela.notifications.snmp); sent is delivered.
mail: one mail over SMTP (tutela.notifications.mail); accepted by the server is delivered.
Both in a child process (tutela.notifications.child says why).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from tutela.model.config import Notification

SIGNATURE_HEADER = "X-Tutela-Signature"
OUTPUT_SHOWN = 300
"""Characters of a failed script's output (or a refused POST's answer) that the log shows."""


class DeliveryFailed(Exception):
    """The target did not take the record; the message says why."""


def body_of(record: Mapping[str, Any], cluster: str) -> bytes:
    """What every channel sends: the record with the cluster's name, as compact JSON."""
    return json.dumps({**record, "cluster": cluster}, separators=(",", ":"),
                      sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    """The X-Tutela-Signature value: sha256= and the hex HMAC-SHA256 of `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(target: Notification, body: bytes) -> None:
    assert target.url is not None  # the model requires it of a webhook
    headers = {"Content-Type": "application/json", "User-Agent": "tutela"}
    if target.secret:
        headers[SIGNATURE_HEADER] = signature(target.secret, body)
    request = urllib.request.Request(target.url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=target.timeout) as answer:
            answer.read(OUTPUT_SHOWN)
    except urllib.error.HTTPError as error:
        raise DeliveryFailed(f"{target.url} answered {error.code} {error.reason}") from None
    except (OSError, ValueError) as error:  # refused, unreachable, timed out, bad answer
        raise DeliveryFailed(f"{target.url}: {getattr(error, 'reason', error)}") from None


def script_environment(record: Mapping[str, Any], cluster: str, name: str) -> dict[str, str]:
    """TUTELA_EVENT_<FIELD> of each scalar field, TUTELA_CLUSTER, TUTELA_NOTIFICATION."""
    fields = {f"TUTELA_EVENT_{key.upper()}": str(value) for key, value in record.items()
              if not isinstance(value, dict | list)}
    return {**os.environ, **fields, "TUTELA_CLUSTER": cluster, "TUTELA_NOTIFICATION": name}


def run_script(target: Notification, body: bytes) -> None:
    assert target.command is not None  # the model requires it of a script
    record = json.loads(body)
    try:
        process = subprocess.Popen(
            shlex.split(target.command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=script_environment(record, record["cluster"],
                                                             target.name),
            start_new_session=True)
    except OSError as error:
        raise DeliveryFailed(f"{target.command!r} cannot run: {error}") from None
    try:
        output, _ = process.communicate(body, timeout=target.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the script and whatever it started
        process.wait()
        raise DeliveryFailed(f"{target.command!r} did not finish within "
                             f"{target.timeout:g}s (killed)") from None
    if process.returncode != 0:
        shown = output.decode(errors="replace").strip()[-OUTPUT_SHOWN:]
        raise DeliveryFailed(f"{target.command!r} exited {process.returncode}: {shown}")


def endpoint(target: Notification, default_port: int) -> tuple[str, int]:
    """The (host, port) of an snmp or mail target's HOST[:PORT]."""
    assert target.host is not None  # the model requires it of these kinds
    host, colon, port = target.host.rpartition(":")
    return (host, int(port)) if colon else (target.host, default_port)


CHILD_START = 10.0
"""Seconds a delivery child may take beyond the target's timeout to start (the import of
pydantic and pysnmp on a busy machine)."""
CHILD_ERROR_PREFIX = {"snmp": "trap to {host}: ", "mail": "mail via "}


def in_child(target: Notification, body: bytes) -> None:
    """snmp and mail: delivered by `python -m tutela.notifications.child` (why a process:
    its docstring), the target and record on its standard input."""
    request = json.dumps({"target": target.model_dump(mode="json"), "body": body.decode()})
    try:
        done = subprocess.run([sys.executable, "-m", "tutela.notifications.child"],
                              input=request, capture_output=True, text=True, check=False,
                              timeout=target.timeout + CHILD_START, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise DeliveryFailed(f"{target.kind} delivery did not finish within "
                             f"{target.timeout + CHILD_START:g}s (killed)") from None
    if done.returncode != 0:
        why = done.stderr.strip()[-OUTPUT_SHOWN:] or f"exited {done.returncode}"
        raise DeliveryFailed(CHILD_ERROR_PREFIX[target.kind].format(host=target.host) + why)


CHANNELS: Mapping[str, Callable[[Notification, bytes], None]] = {
    "webhook": post_webhook, "script": run_script, "snmp": in_child, "mail": in_child}
"""Notification.kind -> its delivery."""


def deliver(target: Notification, body: bytes) -> None:
    """One attempt at sending `body` to `target`; DeliveryFailed says why it did not go."""
    CHANNELS[target.kind](target, body)
