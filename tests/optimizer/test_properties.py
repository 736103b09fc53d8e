"""Property tests: random feasible universes and random current allocations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import LadderRung, Limits, ModelCache, OptimizationInputs, VenueKind
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


@st.composite
def books_with_a_minimum_move(draw: st.DrawFn) -> OptimizationInputs:
    """Small random universes and sparse books, with a minimum move and (often) a tight liquid-restaking layer
    cap, so that sales that would leave a small remainder behind are common."""
    universe, yields = synthetic_universe(
        draw(st.integers(8, 16)), draw(st.integers(6, 10)), seed=draw(st.integers(0, 10_000))
    )
    ids = [v.id for v in universe.venues]
    amounts = draw(
        st.lists(st.one_of(st.just(0.0), st.floats(1.0, 400.0)), min_size=len(ids), max_size=len(ids))
    )
    holdings = {v: a for v, a in zip(ids, amounts, strict=True) if a > 0}
    holdings["eth"] = holdings.get("eth", 0.0) + 10.0
    lrt = draw(st.sampled_from([None, 0.01, 0.03, 0.1]))
    limits = Limits(
        cvar_budget=draw(st.sampled_from([None, 0.05, 0.15])),
        risk_aversion=draw(st.sampled_from([0.0, 0.05])),
        max_turnover=draw(st.sampled_from([None, 0.3])),
        ladder=(LadderRung(days=1, min_share=draw(st.sampled_from([0.0, 0.05]))),),
        horizon_days=draw(st.sampled_from([90.0, 365.0])),
        min_move_eth=draw(st.sampled_from([10.0, 25.0, 60.0])),
        layer_caps={} if lrt is None else {VenueKind.LIQUID_RESTAKING: lrt},
    )
    return OptimizationInputs(
        universe=universe,
        limits=limits,
        portfolio_eth=sum(holdings.values()),
        holdings_eth=holdings,
        yields=yields,
    )


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(books_with_a_minimum_move())
def test_no_sale_leaves_less_than_the_minimum_move_behind_unless_the_plan_says_why(
    inputs: OptimizationInputs,
) -> None:
    """After a sale of at least `min_move_eth` out of a venue (idle ETH aside), the venue keeps nothing or at least
    the minimum, unless the heuristics name it as a remainder the limits need (or the re-solves ran out); every
    venue the plan says it sold all of ends at 0; and every limit holds."""
    plan = optimize(inputs, cache=_CACHE)
    if plan.problem.objective is None:
        assert plan.status == "hold" and (plan.diagnosis or "solver" in plan.reason)
        return
    check_invariants(plan)
    least = inputs.limits.min_move_eth
    said = " | ".join(h for h in plan.heuristics if "the limits need" in h or "stopped after" in h)
    sold = {m.venue: m.amount_eth for m in plan.moves if m.action == "withdraw"}
    x0 = dict(zip(plan.problem.venue_order, np.array(plan.problem.x0) * plan.portfolio_eth, strict=True))
    for venue, left in plan.target_eth.items():
        if venue == "eth" or not 1e-6 < left < least - 1e-6:
            continue
        if x0[venue] - left >= least and sold.get(venue, 0.0) >= least:
            assert venue in said, (venue, x0[venue], left, sold[venue], plan.heuristics)
    for h in plan.heuristics:
        if "sold all of" in h:
            names = h.split("sold all of ", 1)[1].split(" rather than", 1)[0].split(", ")
            for venue in names:
                assert plan.target_eth[venue] == pytest.approx(0.0, abs=1e-6), (venue, plan.heuristics)
