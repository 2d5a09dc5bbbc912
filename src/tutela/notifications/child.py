"""The delivery of one snmp or mail record, in a child process of tutelad (or of `tutela
notify test`): `python -m tutela.notifications.child` reads {"target", "body"} as JSON on
its standard input (secrets never on a command line), sends, and exits 0 when delivered or
1 with why on its standard error (tutela.notifications.channels.in_child runs it).

Why a process: pysnmp costs 0.4 s of CPU to import and 0.25 s per trap (its engine), all
holding the interpreter's lock; in a thread of tutelad that lock would be held, at normal
priority, away from the SCHED_RR event loop that must pet the watchdog within a fraction of
a second. A child runs at normal priority and holds only its own.
"""

from __future__ import annotations

import json
import sys

from tutela.model.config import Notification


def send(target: Notification, body: str) -> None:
    """Deliver or raise the channel's error (TrapNotSent, MailNotSent)."""
    record = json.loads(body)
    if target.kind == "snmp":
        from tutela.notifications.snmp import send_trap
        send_trap(target, record)
    elif target.kind == "mail":
        from tutela.notifications.mail import send_mail
        send_mail(target, record)
    else:
        raise ValueError(f"{target.kind} is not delivered in a child")


def main() -> None:
    request = json.load(sys.stdin)
    try:
        send(Notification.model_validate(request["target"]), request["body"])
    except Exception as error:  # noqa: BLE001 - whatever failed, the parent logs why
        print(error, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
