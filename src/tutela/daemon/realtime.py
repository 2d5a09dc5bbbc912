"""Real-time scheduling for threads whose timing is part of the safety argument: tutelad's
event loop (heartbeats, lease rounds, watchdog pets) and the lab's emulated watchdogs.

Threads and children (kit workers, applications, ip, mount) start with the normal policy.
"""

from __future__ import annotations

import os

PRIORITY = 50
"""SCHED_RR priority of tutelad's event loop: above all ordinary work, below the kernel's own
real-time threads and the lab's emulated watchdog hardware (LAB_HARDWARE_PRIORITY)."""

LAB_HARDWARE_PRIORITY = 60
"""The emulated hardware must not be starved by the node it watches, as real hardware is not."""


def make_realtime(priority: int = PRIORITY) -> OSError | None:
    """Put the calling thread under SCHED_RR at `priority`, its future threads and children
    not (SCHED_RESET_ON_FORK); the error if that is refused (no CAP_SYS_NICE, or no
    real-time budget in the cgroup)."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as error:
        return error
    return None
