"""The lease protocol under the deterministic simulation: thousands of hostile seeds.

A failure prints the one command that replays its seed with the full event trace.
"""

from __future__ import annotations

import os

import pytest
from simulate import Outcome, run_parallel, simulate

SEEDS = int(os.environ.get("TUTELA_SIM_SEEDS", "2000"))
LIVENESS_SEEDS = int(os.environ.get("TUTELA_SIM_LIVENESS_SEEDS", "500"))
FIRST_SEED = int(os.environ.get("TUTELA_SIM_FIRST_SEED", "0"))
"""CI runs seeds 0..N-1; soak runs may start elsewhere (TUTELA_SIM_FIRST_SEED)."""
TIGHT_SEEDS = int(os.environ.get("TUTELA_SIM_TIGHT_SEEDS", "500"))
WORKERS = int(os.environ.get("TUTELA_SIM_WORKERS", str(min(2, os.cpu_count() or 1))))


def _explain(failures: list[Outcome]) -> str:
    return "\n\n".join(f.report() for f in failures[:3]) + (
        f"\n\n({len(failures)} failing seeds: {[f.seed for f in failures][:20]})")


def test_never_two_holders_of_one_lease() -> None:
    failures, totals = run_parallel(range(FIRST_SEED, FIRST_SEED + SEEDS), "chaos",
                                    workers=WORKERS)
    assert not failures, _explain(failures)
    # Not vacuous: leases change hands, holders freeze, voters forget, timing is attacked.
    # (Per seed, when written: 1.5 handovers, 0.4 frozen holders, 0.7 snipes, 0.23 amnesia
    # and flap attacks each, 0.8 stale-reply attacks, 10 messages handled from backlogs.)
    expected = {"handovers": 1.0, "holder_pauses": 0.2, "snipes": 0.4, "amnesia_snipes": 0.1,
                "flap_snipes": 0.1, "stale_replies": 0.4, "backlog": 5.0}
    for key, per_seed in expected.items():
        assert SEEDS < 500 or totals[key] >= per_seed * SEEDS, (key, totals)


def test_a_healed_network_hands_each_lease_to_its_candidate_within_the_bound() -> None:
    """After chaos the network heals for good; one candidate per name keeps trying and
    must hold it, without a break, from at most `bound` after the heal (simulate.py,
    Simulation._on_heal, states the bound)."""
    failures, _ = run_parallel(range(FIRST_SEED, FIRST_SEED + LIVENESS_SEEDS), "liveness",
                               workers=WORKERS)
    assert not failures, _explain(failures)


def test_safe_with_the_smallest_margin_the_proof_allows() -> None:
    """Drift 5 % and a margin 0.01 % above L rho (1-rho)/(1+rho): still never two holders
    (while half that margin is caught: mutant half-minimum-margin)."""
    failures, _ = run_parallel(range(FIRST_SEED, FIRST_SEED + TIGHT_SEEDS), "chaos",
                               "tightest-margin", workers=WORKERS)
    assert not failures, _explain(failures)


@pytest.mark.parametrize("family", ["chaos", "liveness"])
def test_a_seed_replays_exactly(family: str) -> None:
    first, second = (simulate(17, family, trace=True) for _ in range(2))
    assert first.trace == second.trace and first.events == second.events
    assert len(first.trace) > 50


def test_the_replay_command_names_the_seed_family_and_mutant() -> None:
    outcome = simulate(5, "liveness")
    assert outcome.replay_command().endswith(
        "tests/sim/simulate.py --seed 5 --family liveness --verbose")
    assert outcome.bound is not None and outcome.bound > 1.0
