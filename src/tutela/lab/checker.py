"""Watches physical truth on every lab node while a test runs: an address or a mount held
by two nodes at the same instant is a split brain, and the checker records it. The
instances of a multi-node hierarchy, on several nodes by design, are never counted: they
hold no address and no mount (lcd.validate refuses an ip or filesystem resource in them).

It reads the kernel's state (addresses per network namespace, mounts per mount namespace),
and it refuses to vouch for a window it did not see: a node that is not powered off but
cannot be read, too few samples, or a gap between samples longer than `max_gap` make it
fail at exit (CheckerBlind), so a checker that went blind never reports "no split brain".
"""

from __future__ import annotations

import errno
import threading
import time
from dataclasses import dataclass, field

from tutela.lab import Lab, netns
from tutela.lab.lab import parse_mounts

PERIOD = 0.05
"""Seconds from the end of one sample to the start of the next (a sample of three nodes
takes about as long again: some 10 samples a second, longest gap 0.15 s, measured on a
loaded 2-core machine)."""
GAP_PERIODS = 20
"""Default max_gap in periods (1 s at 50 ms): a sample is three `ip` runs, and a busy 2-core
machine may hold one up for a few hundred milliseconds, but never for a second."""
MIN_SAMPLES = 2
"""At least the samples taken at entry and exit."""
JOIN_TIMEOUT = 10.0
SHOWN = 5
"""Failed reads quoted in full in a verdict; the rest are counted."""


class CheckerBlind(AssertionError):
    """The checker cannot vouch for the window: the message says what it did not see."""


@dataclass
class Coverage:
    """How completely a watch saw its window (sans-IO: times are time.monotonic() values).
    A sample is complete when every node that is not off was read."""

    started: float
    min_samples: int = MIN_SAMPLES
    max_gap: float = PERIOD * GAP_PERIODS
    samples: int = 0
    longest_gap: float = 0.0
    blind: list[str] = field(default_factory=list)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._last = self.started

    def complete(self, now: float) -> None:
        """A sample that read every node that is not off."""
        self.samples += 1
        self.longest_gap = max(self.longest_gap, now - self._last)
        self._last = now

    def failed(self, what: str) -> None:
        """A read that failed for a node that is not off: that sample saw nothing of it."""
        self.blind.append(what)

    def problems(self, now: float) -> list[str]:
        """Why the window from `started` to `now` cannot be vouched for; [] if it can."""
        found = self.blind[:SHOWN]
        if len(self.blind) > SHOWN:
            found.append(f"... and {len(self.blind) - SHOWN} more failed reads")
        if self.samples < self.min_samples:
            found.append(f"only {self.samples} complete sample(s), fewer than "
                         f"{self.min_samples}")
        gap = max(self.longest_gap, now - self._last)
        if gap > self.max_gap:
            found.append(f"{gap:.3f}s without a complete sample, more than max_gap "
                         f"{self.max_gap:g}s")
        return found


@dataclass
class SplitBrainChecker:
    """`with SplitBrainChecker(lab, vip, mountpoint) as checker:` samples every `period`
    seconds in a thread, plus once at entry and once at exit. Afterwards:

    - `violations`: "HH:MM:SS <what> on <nodes>" for each sample where `address` was on,
      or `mountpoint` mounted on, more than one node;
    - `samples`: complete samples (every node that was not off read);
    - `longest_gap`: the longest stretch, in seconds, without a complete sample (also from
      entry to the first and from the last to exit);
    - `blind`: the failed reads of nodes that were not off.

    Exit raises CheckerBlind (an AssertionError) if any read failed, fewer than
    `min_samples` were complete or `longest_gap` exceeded `max_gap` (default 20 periods);
    with an exception already on its way out, the reasons become a note on that one.
    `problems()` lists the same reasons without raising. Violations are the caller's to
    assert. It reads through its own Lab (Lab.load), as a Lab is not thread-safe."""

    lab: Lab
    address: str
    mountpoint: str
    period: float = PERIOD
    max_gap: float | None = None
    min_samples: int = MIN_SAMPLES
    violations: list[str] = field(default_factory=list)
    coverage: Coverage | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _view: Lab | None = field(default=None, init=False)

    @property
    def gap_bound(self) -> float:
        """max_gap, or GAP_PERIODS periods when it is not given."""
        return self.max_gap if self.max_gap is not None else self.period * GAP_PERIODS

    @property
    def samples(self) -> int:
        return self.coverage.samples if self.coverage else 0

    @property
    def longest_gap(self) -> float:
        return self.coverage.longest_gap if self.coverage else 0.0

    @property
    def blind(self) -> list[str]:
        return self.coverage.blind if self.coverage else []

    def __enter__(self) -> SplitBrainChecker:
        self._view = Lab.load(self.lab.name, self.lab.root)
        self.coverage = Coverage(time.monotonic(), self.min_samples, self.gap_bound)
        self.sample()
        self._thread = threading.Thread(target=self._run, name="split-brain", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_TIMEOUT)
        if self._thread is not None and self._thread.is_alive():
            self._failed(f"the sampler did not stop within {JOIN_TIMEOUT:g}s (a read hangs)")
        else:
            self.sample()
        problems = self.problems()
        if not problems:
            return
        message = "the split-brain checker was blind: " + "; ".join(problems)
        if exc is not None:
            exc.add_note(message)
            return
        raise CheckerBlind(message)

    def problems(self) -> list[str]:
        """Why this checker cannot vouch for its window so far; [] if it can."""
        assert self.coverage is not None, "problems() of a checker never entered"
        return self.coverage.problems(time.monotonic())

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def sample(self) -> None:
        """Read every node that is not off; record a violation, a complete sample or the
        nodes it could not read."""
        lab, coverage = self._view, self.coverage
        assert lab is not None and coverage is not None, "sample() outside `with`"
        holders, mounted, complete = [], [], True
        for node in lab.nodes:
            try:
                if lab.node_state(node) == "off":
                    continue
                addresses, mounts = self._read(lab, node)
            except Exception as error:  # noqa: BLE001 - any failure is a blind read
                if self._is_off(lab, node):
                    continue  # powered off mid-read: nothing there to hold anything
                complete = False
                self._failed(f"could not read {node}, which is not off: {error}")
                continue
            if self.address in addresses:
                holders.append(node)
            if self.mountpoint in mounts:
                mounted.append(node)
        when = time.strftime("%H:%M:%S")
        if len(holders) > 1:
            self.violations.append(f"{when} {self.address} on {', '.join(holders)}")
        if len(mounted) > 1:
            self.violations.append(f"{when} {self.mountpoint} mounted on {', '.join(mounted)}")
        if complete:
            coverage.complete(time.monotonic())

    @staticmethod
    def _read(lab: Lab, node: str) -> tuple[set[str], set[str]]:
        """The node's addresses and mount points, or an exception: unlike Lab.addresses and
        Lab.mounts, a read that fails is never an empty list."""
        pid = lab.node_pid(node)
        if pid is None:
            raise RuntimeError("it has no PID 1")
        found = netns.addresses(lab.netns(node))
        try:
            with open(f"/proc/{pid}/mounts") as f:
                mounts = {m for _, m in parse_mounts(f.read())}
        except OSError as error:
            if error.errno != errno.EINVAL and not exited(pid):
                raise
            # Powered off or reset while we read: its PID 1 is exiting or has exited. The
            # kernel answers EINVAL exactly when the process has already let go of its
            # namespaces (proc_mounts: no nsproxy), and its mount namespace, which only its
            # processes kept, goes with them. Its addresses were read above all the same.
            mounts = set()
        return {a.split("/")[0] for _, a in found}, mounts

    @staticmethod
    def _is_off(lab: Lab, node: str) -> bool:
        try:
            return lab.node_state(node) == "off"
        except Exception:  # noqa: BLE001 - a lab we cannot read is not proof of "off"
            return False

    def _failed(self, what: str) -> None:
        assert self.coverage is not None
        self.coverage.failed(f"{time.strftime('%H:%M:%S')} {what}")


def exited(pid: int) -> bool:
    """Whether process `pid` is gone or a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True
