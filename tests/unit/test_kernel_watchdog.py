"""The lab's kernel-mode watchdog (tutela.lab.kernel_watchdog) against the semantics of
Linux's drivers/watchdog/watchdog_dev.c over a softdog-like driver, as data: each scenario is
a list of steps (time, operation, argument, expected answer, expected events).

Operations: open, write, ioctl (argument: (command, int passed)), release, expire, stale
(a write on the file of the boot before it fired). An expected answer that is an errno name
means the call fails with it.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

from tutela.lab.kernel_watchdog import IDENTITY, KernelWatchdog, WatchdogError
from tutela.watchdog_device import (
    INT,
    WATCHDOG_INFO,
    WDIOC_GETBOOTSTATUS,
    WDIOC_GETSTATUS,
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMELEFT,
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETOPTIONS,
    WDIOC_SETTIMEOUT,
    WDIOF_KEEPALIVEPING,
    WDIOF_MAGICCLOSE,
    WDIOF_SETTIMEOUT,
    WDIOS_DISABLECARD,
    WDIOS_ENABLECARD,
)

ARMED_60 = [("armed", {"timeout": "60"})]
Step = tuple[float, str, Any, Any, list[tuple[str, dict[str, str]]]]

SCENARIOS: dict[str, list[Step]] = {
    "open arms with softdog's 60 s; a second open is EBUSY": [
        (0.0, "open", None, "handle", ARMED_60),
        (1.0, "open", None, "EBUSY", []),
        (59.9, "expire", None, False, []),
        (60.0, "expire", None, True, []),
    ],
    "SETTIMEOUT takes whole seconds in [1, 65535], pets and answers the value": [
        (0.0, "open", None, "handle", ARMED_60),
        (1.0, "ioctl", (WDIOC_SETTIMEOUT, 2), 2, [("timeout", {"timeout": "2"})]),
        (1.5, "ioctl", (WDIOC_GETTIMEOUT, 0), 2, []),
        (1.5, "ioctl", (WDIOC_SETTIMEOUT, 0), "EINVAL", [("bad-timeout", {"value": "0"})]),
        (1.5, "ioctl", (WDIOC_SETTIMEOUT, -1), "EINVAL",
         [("bad-timeout", {"value": "4294967295"})]),  # the kernel's unsigned int
        (1.5, "ioctl", (WDIOC_SETTIMEOUT, 65536), "EINVAL",
         [("bad-timeout", {"value": "65536"})]),
        (1.5, "ioctl", (WDIOC_GETTIMEOUT, 0), 2, []),  # unchanged by the refusals
        (2.9, "expire", None, False, []),  # petted at 1.0 by the SETTIMEOUT
        (3.0, "expire", None, True, []),
    ],
    "writes and KEEPALIVE pet; GETTIMELEFT counts whole seconds down": [
        (0.0, "open", None, "handle", ARMED_60),
        (0.0, "ioctl", (WDIOC_SETTIMEOUT, 3), 3, [("timeout", {"timeout": "3"})]),
        (2.0, "write", b".", None, []),
        (2.5, "ioctl", (WDIOC_GETTIMELEFT, 0), 2, []),
        (4.0, "ioctl", (WDIOC_KEEPALIVE, 7), 7, []),  # the argument comes back untouched
        (6.9, "expire", None, False, []),
        (7.0, "expire", None, True, []),
    ],
    "a V anywhere in a write, then close: stopped (magic close)": [
        (0.0, "open", None, "handle", ARMED_60),
        (1.0, "write", b"xVx", None, []),
        (1.0, "ioctl", (WDIOC_GETSTATUS, 0), WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING, []),
        (1.0, "ioctl", (WDIOC_GETSTATUS, 0), WDIOF_MAGICCLOSE, []),  # ping reported once
        (1.1, "release", None, None, [("disarmed", {})]),
        (1000.0, "expire", None, False, []),
        (1000.0, "open", None, "handle", ARMED_60),  # re-opened: armed afresh
    ],
    "a write without V after one forgets it: the close leaves it running": [
        (0.0, "open", None, "handle", ARMED_60),
        (0.0, "ioctl", (WDIOC_SETTIMEOUT, 1), 1, [("timeout", {"timeout": "1"})]),
        (0.2, "write", b"V", None, []),
        (0.4, "write", b".", None, []),
        (0.4, "ioctl", (WDIOC_GETSTATUS, 0), WDIOF_KEEPALIVEPING, []),
        (0.5, "release", None, None, [("unexpected-close", {"remaining": "1.000"})]),
        (1.4, "expire", None, False, []),  # the kernel pinged it once more at the close
        (1.5, "expire", None, True, []),
    ],
    "reopened after an unexpected close: still running, not re-armed": [
        (0.0, "open", None, "handle", ARMED_60),
        (1.0, "release", None, None, [("unexpected-close", {"remaining": "60.000"})]),
        (2.0, "open", None, "handle", []),
        (2.0, "ioctl", (WDIOC_GETTIMELEFT, 0), 59, []),
    ],
    "SETOPTIONS: DISABLECARD stops, ENABLECARD starts": [
        (0.0, "open", None, "handle", ARMED_60),
        (1.0, "ioctl", (WDIOC_SETOPTIONS, WDIOS_DISABLECARD), WDIOS_DISABLECARD,
         [("disarmed", {"by": "WDIOS_DISABLECARD"})]),
        (100.0, "expire", None, False, []),
        (100.0, "ioctl", (WDIOC_GETTIMELEFT, 0), 0, []),
        (100.0, "ioctl", (WDIOC_SETOPTIONS, WDIOS_ENABLECARD), WDIOS_ENABLECARD, ARMED_60),
        (160.0, "expire", None, True, []),
    ],
    "GETBOOTSTATUS is 0; unknown ioctls are ENOTTY": [
        (0.0, "open", None, "handle", ARMED_60),
        (0.0, "ioctl", (WDIOC_GETBOOTSTATUS, 0), 0, []),
        (0.0, "ioctl", (0x80045703, 0), "ENOTTY", []),  # WDIOC_GETTEMP: no sensor
        (0.0, "ioctl", (0x5401, 0), "ENOTTY", []),  # TCGETS
    ],
    "after it fired, the files of the old boot are gone": [
        (0.0, "open", None, "handle", ARMED_60),
        (60.0, "expire", None, True, []),
        (60.0, "stale", None, "ENODEV", []),
        (61.0, "open", None, "handle", ARMED_60),
    ],
}


def run(dog: KernelWatchdog, handle: int | None, step: Step) -> tuple[Any, list[Any], int | None]:
    now, operation, arg, _, _ = step
    events: list[Any] = []
    try:
        if operation == "open":
            handle, events = dog.open(now)
            return "handle", events, handle
        assert handle is not None
        if operation == "write":
            return None, dog.write(handle, arg, now), handle
        if operation == "release":
            return None, dog.release(handle, now), handle
        if operation == "stale":
            return None, dog.write(handle, b".", now), handle
        if operation == "expire":
            return dog.expire(now), [], handle
        command, value = arg
        out, events = dog.ioctl(handle, command, INT.pack(value), now)
        return INT.unpack(out)[0], events, handle
    except WatchdogError as error:
        return errno.errorcode[error.errno], error.events, handle


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenario(steps: list[Step]) -> None:
    dog = KernelWatchdog()
    handle = None
    for number, step in enumerate(steps, 1):
        answer, events, handle = run(dog, handle, step)
        assert (answer, events) == (step[3], step[4]), f"step {number}: {step[:3]}"


def test_getsupport_names_the_options_and_identity() -> None:
    dog = KernelWatchdog()
    handle, _ = dog.open(0.0)
    out, _ = dog.ioctl(handle, WDIOC_GETSUPPORT, bytes(WATCHDOG_INFO.size), 0.0)
    options, firmware, identity = WATCHDOG_INFO.unpack(out)
    assert options == WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING
    assert (firmware, identity.rstrip(b"\0").decode()) == (0, IDENTITY)
