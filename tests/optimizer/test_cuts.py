"""CVaR by cutting planes: the oracle's cuts are valid and tight, and the warm cut loop reaches the optimum of the
full LP, cycle after cycle, with its cut pool pruned or not, or hands over to the full LP when it cannot."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optimizer.cuts
from optimizer import Limits, ModelCache, OptimizationInputs
from optimizer.cuts import TailOracle
from optimizer.optimize import optimize, prepare, shape_for
from optimizer.problem import AllocationModel
from optimizer.scenarios import ScenarioLosses, enumerate_scenarios, weighted_cvar
from optimizer.structure import Structure
from optimizer.synthetic import synthetic_universe
from tests.optimizer.invariants import check_invariants
from tests.optimizer.linprog_rebuild import rebuild_objective


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    nodes=st.integers(1, 15),
    beta=st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 0.999]),
    depth=st.integers(1, 4),
)
def test_the_oracle_cut_is_tight_at_its_point_and_below_cvar_everywhere(
    seed: int, nodes: int, beta: float, depth: int
) -> None:
    """g·x = CVaR bound(x) (`ScenarioLosses.cvar`: the tail of `weighted_cvar` plus the residual term), and
    g·y ≤ CVaR bound(y) for other weights y, whatever the enumeration depth."""
    universe, _ = synthetic_universe(12, nodes, seed=seed)
    structure = Structure(universe)
    losses = ScenarioLosses(structure, enumerate_scenarios(structure, beta=beta, depth=depth))
    oracle = TailOracle.of(losses, beta)
    rng = np.random.default_rng(seed)
    points = rng.dirichlet(np.full(structure.n_venues, 0.3), size=6)
    for x in points:
        g, cvar = oracle.cut(x)
        expected = losses.cvar(x, beta)
        assert expected >= weighted_cvar(losses.losses(x), losses.probabilities, beta)
        assert cvar == pytest.approx(expected, abs=1e-12)
        assert g @ x == pytest.approx(expected, abs=1e-12)
        for y in points:
            assert g @ y <= losses.cvar(y, beta) + 1e-12


def _cycles(count: int, seed: int = 3) -> list[OptimizationInputs]:
    """One book; every yield moving by up to ±10 % from cycle to cycle."""
    universe, yields = synthetic_universe(80, 25, seed=seed)
    rng = np.random.default_rng(seed)
    ids = [v.id for v in universe.venues]
    out = []
    for _ in range(count):
        jitter = {
            v: {c: x * float(rng.uniform(0.9, 1.1)) for c, x in comps.items()} for v, comps in yields.items()
        }
        out.append(
            OptimizationInputs(
                universe=universe,
                # every triple; the residual (mass ≈ 1e-4) is bounded: the loop, not the enumeration, is tested here
                limits=Limits(cvar_budget=0.12, risk_aversion=0.1, max_turnover=0.8, tail_tolerance=0.5),
                portfolio_eth=1000.0,
                holdings_eth={ids[0]: 700.0, ids[5]: 300.0},
                yields=jitter,
            )
        )
    return out


def _full_objective(inputs: OptimizationInputs) -> float:
    model = AllocationModel(inputs.universe, shape_for(inputs, "factored"))
    values, _, _ = prepare(model, inputs)
    res = model.solve(values, ("HIGHS",))
    assert res.objective is not None
    return res.objective


@pytest.mark.parametrize("max_idle", [0, 3, 10_000])
def test_warm_cut_loop_matches_the_full_lp_cycle_after_cycle(
    max_idle: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve cycles on one compiled model and one HiGHS instance (cuts kept between cycles, pruned at once, after
    three idle solves, or never): each optimum equals the factored LP's and an independent linprog rebuild."""
    monkeypatch.setattr(optimizer.cuts, "MAX_IDLE", max_idle)
    cache = ModelCache()
    highs = None
    added = []
    for inputs in _cycles(12):
        plan = optimize(inputs, cache=cache)
        assert plan.solver.risk_form == "cuts" and plan.solver.name == "HIGHS"
        check_invariants(plan)
        assert plan.problem.objective == pytest.approx(_full_objective(inputs), abs=1e-7)
        assert plan.problem.objective == pytest.approx(rebuild_objective(plan), abs=1e-6)
        model = next(iter(cache.models.values()))
        assert model.cut_loop is not None
        loop = model.cut_loop
        highs = highs or loop._highs
        assert loop._highs is highs  # re-solved warm, never rebuilt
        added.append(loop.cuts_added_total)
        assert loop.stats.cuts_kept == len(loop._cuts) > 0
    assert len(cache.models) == 1
    assert added[0] > 0  # the first cycle needed cuts


def test_a_cut_loop_that_cannot_finish_hands_over_to_the_full_lp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allowed a single round, the loop reports it did not converge; the next solver (Clarabel) solves the same
    model with every scenario row, and the plan says so."""
    monkeypatch.setattr(optimizer.cuts, "MAX_ROUNDS", 1)
    inputs = _cycles(1)[0]
    plan = optimize(inputs)
    assert plan.solver.attempts[0] == ("HIGHS", "no convergence after 1 cuts")
    assert plan.solver.name == "CLARABEL" and plan.solver.risk_form == "factored"
    check_invariants(plan)
    assert plan.problem.objective == pytest.approx(_full_objective(inputs), abs=1e-6)
