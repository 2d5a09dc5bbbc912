"""Ownership under the deterministic simulation (ownership_sim.py, family `ownership`): the
real ownership core over the real lease holder and voters keeps one hierarchy in service on
at most one node at every instant, takes it over in priority order in calm weather, and
puts it (and the hierarchy that depends on it) back in service once the faults stop; each
deliberately broken core is caught (docs/failover.md, "Ownership rules")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ownership_mutants import OWNERSHIP_MUTANTS
from ownership_sim import CORRECT, main, run_ownership_seeds, simulate_ownership
from seeds import PLAN

VARIABLE = "TUTELA_SIM_OWNERSHIP_SEEDS"
SEED_LIMIT = 200
"""Each mutant is caught within this many seeds (when written: first at seeds 1 to 22; see
CAUGHT for the rates)."""


PARTS = 4
"""The fixed seeds run in this many tests (pytest-xdist spreads them over its workers),
the fresh ones in one more."""


def _seed_ranges() -> list[range]:
    fixed = PLAN.fixed(VARIABLE)
    return [fixed[part::PARTS] for part in range(PARTS)] + [PLAN.fresh(VARIABLE)]


@pytest.mark.parametrize("part", range(PARTS + 1))
def test_ownership_is_safe_and_live_through_faults(part: int) -> None:
    """Crashes, restarts, restarts of tutelad alone, partitions, lost messages, restores
    that fail on one node: never two owners at once, the rank order kept, everything back
    in service after."""
    seeds = _seed_ranges()[part]
    failures, totals = run_ownership_seeds(seeds)
    assert not failures, "\n\n".join(f.report() for f in failures[:2]) + PLAN.describe()
    # Not vacuous: owners die and are cut off, fence themselves, restores fail, tutelad
    # restarts on owners that find what they ran without its lease, and calm power-offs
    # check the order.
    for key, per_seed in {"crashes": 1.0, "partitions": 0.5, "takeovers": 3.0,
                          "self_fences": 0.5, "restore_failures": 0.2,
                          "order_checks": 0.2, "daemon_restarts": 0.2,
                          "readoptions": 0.2}.items():
        assert totals[key] >= per_seed * len(seeds), (key, totals)


CAUGHT = {
    "restore-without-lease": "SAFETY",   # 189 of the first 300 seeds, first at seed 2
    "no-self-fence": "SAFETY",           # 33 of 300, first at seed 22
    "no-rank-wait": "ORDER",             # 34 of 300, first at seed 1
    "ignores-failed-on": "liveness",     # 94 of 300, first at seed 3: it keeps trying where
                                         # it failed, so app never settles
    "ignores-dependencies": "liveness",  # 84 of 300, first at seed 4: web ends where its
                                         # dependency is not met
    "keeps-what-it-readopted": "SAFETY",  # 14 of 300, first at seed 26 (as counted when
                                          # tutelad restarts joined the faults)
    "freed-by-any-end": "OVERLAP",       # 2 of 1,000, first at seed 334: a self-fence must
                                         # overtake a restore or give-up under way
}
SEED_LIMITS = {"freed-by-any-end": 400}
"""Mutants caught later than SEED_LIMIT -> their own bound."""


@pytest.mark.parametrize("name", sorted(OWNERSHIP_MUTANTS))
def test_the_simulation_catches_a_broken_ownership_core(name: str) -> None:
    mutant = OWNERSHIP_MUTANTS[name]
    for seed in range(SEED_LIMITS.get(name, SEED_LIMIT)):
        outcome = simulate_ownership(seed, mutant)
        if not outcome.ok:
            assert outcome.failure is not None and CAUGHT[name] in outcome.failure
            assert f"--variant {name}" in outcome.replay_command()
            assert simulate_ownership(seed).ok
            return
    pytest.fail(f"mutant {name} survived {SEED_LIMITS.get(name, SEED_LIMIT)} seeds of family "
                "ownership")


def test_an_ownership_seed_replays_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = (simulate_ownership(11, CORRECT, trace=True) for _ in range(2))
    assert first.trace == second.trace and first.events == second.events
    assert len(first.trace) > 20
    assert main(["--seed", "3", "--seeds", "2"]) == 0
    assert "2 of 2 seeds passed" in capsys.readouterr().out


def test_a_caught_mutant_replays_in_another_process() -> None:
    seed = next(s for s in range(SEED_LIMIT)
                if not simulate_ownership(s, OWNERSHIP_MUTANTS["no-self-fence"]).ok)
    script = Path(__file__).with_name("ownership_sim.py")
    outputs = [subprocess.run([sys.executable, str(script), "--seed", str(seed),
                               "--variant", "no-self-fence", "--verbose"],
                              env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
                              capture_output=True, text=True, timeout=60,
                              check=False).stdout  # exit 1: the seed fails, as it should
               for hash_seed in (1, 2)]
    assert outputs[0] == outputs[1]
    assert "SAFETY" in outputs[0]
