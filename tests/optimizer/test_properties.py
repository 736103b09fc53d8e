"""Property tests: random feasible universes and random current allocations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import LadderRung, Limits, ModelCache, OptimizationInputs
from optimizer.optimize import optimize
from optimizer.synthetic import synthetic_universe
from tests.optimizer.invariants import check_invariants
from tests.optimizer.linprog_rebuild import rebuild_objective

_CACHE = ModelCache()


@st.composite
def problems(draw: st.DrawFn) -> OptimizationInputs:
    n_nodes = draw(st.integers(6, 20))
    universe, yields = synthetic_universe(
        draw(st.integers(8, 30)), n_nodes, seed=draw(st.integers(0, 10_000))
    )
    ids = [v.id for v in universe.venues]
    weights = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=len(ids), max_size=len(ids))))
    weights[0] += 0.01
    raw = weights / weights.sum() * 1000.0
    holdings = {v: float(a) for v, a in zip(ids, raw, strict=True) if a > 0}
    total = sum(holdings.values())
    limits = Limits(
        cvar_budget=draw(st.sampled_from([None, 0.05, 0.15, 0.3])),
        risk_aversion=draw(st.sampled_from([0.0, 0.05, 0.5])),
        max_turnover=draw(st.sampled_from([None, 0.3, 1.0])),
        ladder=(LadderRung(days=1, min_share=draw(st.sampled_from([0.0, 0.05]))),),
        horizon_days=draw(st.sampled_from([90.0, 365.0])),
        tail_tolerance=draw(st.sampled_from([1e-6, 1e-3, 0.5])),
    )
    return OptimizationInputs(
        universe=universe, limits=limits, portfolio_eth=total, holdings_eth=holdings, yields=yields
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_plan_meets_every_limit_or_explains_why_not(inputs: OptimizationInputs) -> None:
    """Any random universe and book gives either a plan meeting every limit (1e-7) or a diagnosed hold."""
    plan = optimize(inputs, cache=_CACHE)
    if plan.problem.objective is None:
        assert plan.status == "hold" and (plan.diagnosis or "solver" in plan.reason)
        return
    check_invariants(plan)
    if plan.status == "rebalance":
        assert plan.moves
        # Moving at a loss is allowed only when the current book breaks a limit, and the plan must say so.
        assert plan.gain_bps >= 0 or "breaks limits" in plan.reason
    assert plan.problem.objective == pytest.approx(rebuild_objective(plan), abs=1e-6)
