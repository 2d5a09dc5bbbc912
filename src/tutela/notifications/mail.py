"""Mail of the event journal's records over SMTP: one mail per record, written for an
administrator woken by it (docs/notifications.md, "Mail").

STARTTLS on a plain connection (port 587), TLS from the start (465), or neither (25, only
without a password); the server's certificate is checked against `ca_file` or the system's
CAs, its name against `host`. With `user`, the login is the best the server offers of
PLAIN and LOGIN (smtplib's choice, CRAM-MD5 first when offered). A mail the server accepted
for at least one recipient is delivered; refused recipients are named in the log.
"""

from __future__ import annotations

import datetime
import json
import logging
import smtplib
import socket
import ssl
import textwrap
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from tutela.journal.events import BY_NAME
from tutela.model.config import Notification
from tutela.notifications.channels import endpoint

log = logging.getLogger("tutela.notifications")
PORTS = {"starttls": 587, "implicit": 465, "none": 25}
HEADER_PREFIX = "X-Tutela-"
LINE_WIDTH = 76
CAUSE_IN_SUBJECT = 80
"""Characters of the cause the subject shows (the body has all of it)."""


class MailNotSent(Exception):
    """The server did not take the mail; the message says why."""


def subject_of(record: Mapping[str, Any]) -> str:
    """e.g. '[tutela prod] WARNING node.down node1 (seen by node2): no heartbeat on ...'"""
    cause = str(record.get("cause") or "")
    if len(cause) > CAUSE_IN_SUBJECT:
        cause = cause[:CAUSE_IN_SUBJECT - 3] + "..."
    return (f"[tutela {record['cluster']}] {str(record['severity']).upper()} "
            f"{record['kind']} {record['subject']} (on {record['node']})"
            + (f": {cause}" if cause else ""))


def body_text(record: Mapping[str, Any]) -> str:
    """What happened, why, and what to look at next, then every field."""
    kind = BY_NAME.get(str(record["kind"]))
    meaning = kind.meaning if kind else "a test record sent by 'tutela notify test'"
    lines = [
        f"Cluster {record['cluster']}, node {record['node']}, at {record['at']}:",
        "",
        f"  {record['kind']} {record['subject']}: {meaning}.",
        f"  Cause: {record.get('cause') or '(none given)'}",
        "",
        "What to look at next, on any node of the cluster:",
        *next_commands(record, kind.subject if kind else ""),
        "",
        "The record:",
        *(f"  {name:<12} {value}" for name, value in fields(record)),
        "",
        f"-- tutela on {record['node']}; a mail is sent for every record of the kinds "
        "the notification names (docs/notifications.md).",
    ]
    return "".join(wrapped(line) for line in lines)


def wrapped(line: str) -> str:
    """`line` cut at LINE_WIDTH, the rest indented under its text: readable on a phone,
    and plain 7-bit text with no quoted-printable soft breaks when it is ASCII."""
    indent = " " * (len(line) - len(line.lstrip()))
    if len(line) <= LINE_WIDTH:
        return line + "\n"
    return textwrap.fill(line, LINE_WIDTH, subsequent_indent=indent + "  ",
                         break_on_hyphens=False) + "\n"


def next_commands(record: Mapping[str, Any], subject_is: str) -> list[str]:
    if subject_is == "hierarchy":
        return [f"  tutela why {record['subject']}      (why it moved or failed)",
                f"  tutela events --hierarchy {record['subject']} --since 1h"]
    if subject_is == "resource":
        return [f"  tutela why {record['subject']}      (its hierarchy's last move or failure)",
                "  tutela status"]
    return ["  tutela status", "  tutela why      (the last move of any hierarchy)",
            "  tutela events --since 1h"]


def fields(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    shown = ["kind", "subject", "severity", "node", "cluster", "at", "correlation", "cause"]
    found = [(name, str(record.get(name) or "")) for name in shown]
    if record.get("details"):
        found.append(("details", json.dumps(record["details"], sort_keys=True)))
    return found


def message_of(target: Notification, record: Mapping[str, Any], now: datetime.datetime
               ) -> EmailMessage:
    message = EmailMessage()
    sender = target.sender or f"tutela@{socket.getfqdn()}"
    message["From"] = sender
    message["To"] = ", ".join(target.to)
    message["Subject"] = subject_of(record)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("tutela", sender.partition("@")[2] or None)
    for name in ("cluster", "node", "kind", "subject", "severity", "correlation"):
        message[f"{HEADER_PREFIX}{name.capitalize()}"] = str(record.get(name) or "")
    message.set_content(body_text(record))
    return message


def connect(target: Notification) -> smtplib.SMTP:
    """A connection ready to send: TLS as the target says, logged in when it has a user."""
    host, port = endpoint(target, PORTS[target.tls])
    context = ssl.create_default_context(cafile=target.ca_file)
    smtp: smtplib.SMTP
    if target.tls == "implicit":
        smtp = smtplib.SMTP_SSL(host, port, timeout=target.timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=target.timeout)
    try:
        smtp.ehlo()
        if target.tls == "starttls":
            if not smtp.has_extn("starttls"):
                raise MailNotSent(f"{host}:{port} does not offer STARTTLS (tls: starttls)")
            smtp.starttls(context=context)
            smtp.ehlo()
        if target.user:
            smtp.login(target.user, target.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_mail(target: Notification, record: Mapping[str, Any]) -> None:
    """One mail of `record` to the target's recipients; MailNotSent when it did not go."""
    host, port = endpoint(target, PORTS[target.tls])
    try:
        with connect(target) as smtp:
            refused = smtp.send_message(message_of(target, record,
                                                   datetime.datetime.now(datetime.UTC)))
    except smtplib.SMTPAuthenticationError as error:
        answer = error.smtp_error
        shown = answer.decode(errors="replace") if isinstance(answer, bytes) else answer
        raise MailNotSent(f"{host}:{port} refused the login of {target.user!r}: "
                          f"{error.smtp_code} {shown}") from None
    except smtplib.SMTPException as error:
        raise MailNotSent(f"{host}:{port}: {error}") from None
    except (OSError, ssl.SSLError) as error:  # refused, unreachable, timed out, bad cert
        raise MailNotSent(f"{host}:{port}: {error}") from None
    if refused:  # some recipients, not all (all refused raised SMTPRecipientsRefused)
        log.warning("notification %s: %s:%d refused %s (the others got the mail)",
                    target.name, host, port, ", ".join(sorted(refused)))
