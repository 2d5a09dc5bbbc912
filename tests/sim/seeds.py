"""Which seeds the simulation tests run, and the rule that CI may not run fewer.

Every run covers a fixed range (the same seeds each time: a regression shows at once) and a
fresh range drawn anew for each run (seeds nobody ran before: over many runs the fresh
ranges find what the fixed range misses). The fresh range is printed with the results and
in every failure; any seed replays with `simulate.py --seed N --family F`, and a whole run's
fresh range with TUTELA_SIM_FRESH_SEED.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from simulate import _python

DEFAULT_COUNTS = {
    "TUTELA_SIM_SEEDS": 1500,
    "TUTELA_SIM_LIVENESS_SEEDS": 375,
    "TUTELA_SIM_TIGHT_SEEDS": 375,
    "TUTELA_SIM_PATHS_SEEDS": 240,
    "TUTELA_SIM_SUSPEND_SEEDS": 240,
    "TUTELA_SIM_LEASE_CHANGE_SEEDS": 240,
    "TUTELA_SIM_DISK_SEEDS": 300,
    "TUTELA_SIM_DISK_FAULT_SEEDS": 150,
    "TUTELA_SIM_CONFIG_SEEDS": 1500,
    "TUTELA_SIM_CONFIG_CALM_SEEDS": 450,
    "TUTELA_SIM_CONFIG_OVERLAP_SEEDS": 600,
    "TUTELA_SIM_OWNERSHIP_SEEDS": 1500,
}
"""Fixed seeds per family (chaos, liveness, chaos at the tightest margin, paths, suspend,
lease-change, disk, disk-fault; configuration replication: config, config-calm,
config-overlap in tests/sim/config_sim.py; ownership in tests/sim/ownership_sim.py)."""
LABELS = {"TUTELA_SIM_SEEDS": "chaos", "TUTELA_SIM_LIVENESS_SEEDS": "liveness",
          "TUTELA_SIM_TIGHT_SEEDS": "chaos tightest-margin", "TUTELA_SIM_PATHS_SEEDS": "paths",
          "TUTELA_SIM_SUSPEND_SEEDS": "suspend", "TUTELA_SIM_LEASE_CHANGE_SEEDS": "lease-change",
          "TUTELA_SIM_DISK_SEEDS": "disk", "TUTELA_SIM_DISK_FAULT_SEEDS": "disk-fault",
          "TUTELA_SIM_CONFIG_SEEDS": "config", "TUTELA_SIM_CONFIG_CALM_SEEDS": "config-calm",
          "TUTELA_SIM_CONFIG_OVERLAP_SEEDS": "config-overlap",
          "TUTELA_SIM_OWNERSHIP_SEEDS": "ownership"}
FRESH_SHARE = 3
"""Each family also runs a fresh range of a third of its fixed count (2,000 chaos seeds in
all, as many as the fixed range alone had before the fresh ones came)."""
FRESH_SPAN = 10**9
"""Fresh ranges start anywhere in [FRESH_SPAN, 2 x FRESH_SPAN): far from the fixed seeds."""


@dataclass(frozen=True)
class SeedPlan:
    counts: dict[str, int]
    first: int
    """The first fixed seed (TUTELA_SIM_FIRST_SEED; 0 by default)."""
    fresh_first: int
    """The first fresh seed of this run (TUTELA_SIM_FRESH_SEED replays a run's range)."""
    ci: bool

    def fixed(self, variable: str) -> range:
        return range(self.first, self.first + self.counts[variable])

    def fresh(self, variable: str) -> range:
        return range(self.fresh_first, self.fresh_first + self.counts[variable] // FRESH_SHARE)

    def problems(self) -> list[str]:
        """Under CI nothing may run fewer seeds than the defaults (nor switch checks off)."""
        if not self.ci:
            return []
        return [f"{name}={self.counts[name]} is below the CI minimum {least}: unset it "
                f"(CI must run the full simulation)"
                for name, least in DEFAULT_COUNTS.items() if self.counts[name] < least]

    def describe(self) -> str:
        ranges = ", ".join(f"{label} {self.fresh(name).start}..{self.fresh(name).stop - 1}"
                           for name, label in LABELS.items())
        return (f"simulation fresh seeds this run: {ranges} (rerun them: "
                f"TUTELA_SIM_FRESH_SEED={self.fresh_first}; one seed: "
                f"{_python()} tests/sim/simulate.py --seed N --family F --verbose)")


def plan_from(environ: dict[str, str] | os._Environ[str]) -> SeedPlan:
    """The plan `environ` asks for; a bad value is an error naming the variable."""
    counts = {name: _integer(environ, name, default)
              for name, default in DEFAULT_COUNTS.items()}
    fresh = environ.get("TUTELA_SIM_FRESH_SEED")
    return SeedPlan(counts, _integer(environ, "TUTELA_SIM_FIRST_SEED", 0),
                    _integer(environ, "TUTELA_SIM_FRESH_SEED", 0) if fresh
                    else FRESH_SPAN + random.SystemRandom().randrange(FRESH_SPAN),
                    bool(environ.get("CI")))


def _integer(environ: dict[str, str] | os._Environ[str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} must be a whole number") from None
    if number < 0:
        raise ValueError(f"{name}={value!r} must not be negative")
    return number


PLAN = plan_from(os.environ)
"""This run's plan: one fresh range for every test of the run."""
