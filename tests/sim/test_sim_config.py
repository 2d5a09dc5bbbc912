"""Configuration replication under the deterministic simulation (config_sim.py, families
`config` and `config-calm`): the core's rules keep every property in calm runs, the
findings that led to them kept as tests (mutant `before-fix`: the rules before the fix),
the one finding still open, the broken parts the checker catches, and replays
(docs/cluster.md, "Replication as a pure core")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from config_mutants import CONFIG_MUTANTS
from config_sim import CORRECT, main, run_config_seeds, simulate_config
from seeds import FRESH_SHARE, PLAN

SEED_LIMIT = 500
"""Each finding and mutant shows within this many seeds (when written: the first at seeds
13 to 22 of 2,000; docs/cluster.md has the rates)."""
GENERATION_FIRST_SEED = 371
"""The seed of family config in which the core's rules lose a commit (finding 2, open)."""
SPLIT_VERSION_SEED = 115
"""The seed of family config in which two nodes ended on one version with two
configurations under the rules before the fix."""
CALM_SEEDS = 1500
"""Fixed seeds of config-calm (TUTELA_SIM_CONFIG_SEEDS; under CI not fewer), plus a fresh
range a third as long from this run's fresh seed."""
BEFORE_FIX = CONFIG_MUTANTS["before-fix"]


def _calm_seeds() -> list[range]:
    count = int(os.environ.get("TUTELA_SIM_CONFIG_SEEDS") or CALM_SEEDS)
    assert not (PLAN.ci and count < CALM_SEEDS), (
        f"TUTELA_SIM_CONFIG_SEEDS={count} is below the CI minimum {CALM_SEEDS}: unset it")
    return [range(PLAN.first, PLAN.first + count),
            range(PLAN.fresh_first, PLAN.fresh_first + count // FRESH_SHARE)]


def test_the_core_loses_nothing_in_calm_runs() -> None:
    """The checker does not cry wolf: with messages that land within a lease and no frozen
    process, the core's rules keep every property through partitions, crashes, restarts
    during changes and concurrent requests (0 failures in seeds 0 to 11,999 when
    written)."""
    totals: dict[str, int] = {}
    seeds = 0
    for seed_range in _calm_seeds():
        failures, stats = run_config_seeds(seed_range, "config-calm", CORRECT.name)
        assert not failures, "\n\n".join(f.report() for f in failures[:2]) + PLAN.describe()
        totals = {k: totals.get(k, 0) + v for k, v in stats.items()}
        seeds += len(seed_range)
    # Not vacuous: changes commit, and nodes crash and are cut off while they are made.
    for key, per_seed in {"committed": 2.0, "crashes": 2.0, "partitions": 2.0,
                          "refused": 2.0}.items():
        assert totals[key] >= per_seed * seeds, (key, totals)


def test_before_the_fix_a_change_reported_committed_was_lost() -> None:
    """Finding 1, kept as a test: a holder whose lease lapsed during its change (it lost
    its majority while it waited for an answer) went on, counted peers that hold a newer
    version as holding its own, and reported its change committed; a rival's write of the
    same generation replaced it. Without frozen processes or late messages (config-calm)."""
    caught = next((o for o in (simulate_config(s, "config-calm", BEFORE_FIX)
                               for s in range(SEED_LIMIT)) if not o.ok), None)
    assert caught is not None, "the rules before the fix lost nothing in config-calm"
    assert caught.failure is not None and "committed, but only" in caught.failure
    assert caught.replay_command().endswith(
        f"tests/sim/config_sim.py --seed {caught.seed} --family config-calm "
        "--variant before-fix --verbose")
    assert simulate_config(caught.seed, "config-calm").ok


def test_generation_first_order_still_loses_a_commit() -> None:
    """Finding 2, open, kept as a test: versions order by (generation, epoch), so an
    earlier holder's minority write of a higher generation replaces a later holder's
    committed version wherever catch-up carries it, and the next change builds on it."""
    outcome = simulate_config(GENERATION_FIRST_SEED, "config", CORRECT)
    assert outcome.failure is not None and "was committed and is lost" in outcome.failure


def test_before_the_fix_two_holders_with_one_epoch_split_the_cluster_for_good() -> None:
    """Finding 3, kept as a test: a promise was given for an epoch equal to the one
    promised, so two holders whose changes overlapped could both pick it; their two
    configurations then shared one version and catch-up never reconciled them."""
    outcome = simulate_config(SPLIT_VERSION_SEED, "config", BEFORE_FIX)
    assert outcome.failure is not None and "end on different configurations" in outcome.failure
    assert simulate_config(SPLIT_VERSION_SEED, "config").ok


CAUGHT_MUTANTS = ["forgets-promise", "ignores-lease"]
"""forgets-promise: a restarted node has promised nothing, so a rival picks the epoch of
a write it did not see and two configurations share one version (first caught at seed 22).
ignores-lease: a holder whose lease lapsed commits and reports all the same (seed 85).
The other single-rule mutants are not caught within 2,000 seeds: the rules cover for one
another (docs/cluster.md)."""


@pytest.mark.parametrize("name", CAUGHT_MUTANTS)
def test_the_checker_catches_a_broken_rule(name: str) -> None:
    mutant = CONFIG_MUTANTS[name]
    for seed in range(SEED_LIMIT):
        outcome = simulate_config(seed, "config", mutant)
        if not outcome.ok and simulate_config(seed, "config").ok:
            assert f"--variant {name}" in outcome.replay_command()
            return
    raise AssertionError(f"{name} survived {SEED_LIMIT} seeds of family config")


def test_a_config_seed_replays_exactly() -> None:
    first, second = (simulate_config(18, "config", CORRECT, trace=True) for _ in range(2))
    assert first.trace == second.trace and first.events == second.events
    assert len(first.trace) > 50
    assert main(["--seed", "17", "--seeds", "2", "--family", "config-calm"]) == 0


def test_a_config_seed_replays_in_another_process() -> None:
    config_sim = Path(__file__).with_name("config_sim.py")
    outputs = [subprocess.run([sys.executable, str(config_sim), "--seed",
                               str(GENERATION_FIRST_SEED), "--verbose"],
                              env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
                              capture_output=True, text=True, timeout=60,
                              check=False).stdout  # exit 1: the seed fails, as it should
               for hash_seed in (1, 2)]
    assert outputs[0] == outputs[1]
    assert "was committed and is lost" in outputs[0]
