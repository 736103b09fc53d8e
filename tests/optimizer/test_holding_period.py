"""The holding period (`Limits.hold_days`): what was bought within it is kept, what was sold is not bought back,
unless the limits cannot be met otherwise; the plan says which."""

from __future__ import annotations

import pytest

from optimizer import OptimizationInputs
from optimizer.optimize import optimize
from tests.optimizer.invariants import check_invariants
from tests.optimizer.universes import YIELDS, small_inputs

RETH_BEST = {**YIELDS, "rocketpool-reth": {"base": 0.09}}  # rETH is suddenly by far the best venue
HELD = {"eth": 400.0, "lido-steth": 600.0}


def _hold(inputs: OptimizationInputs, **update: object) -> OptimizationInputs:
    limits = inputs.limits.model_copy(update={"hold_days": 14.0})
    return inputs.model_copy(update={"limits": limits, **update})


def _steth_subtree(weights: dict[str, float]) -> float:
    return weights["lido-steth"] + weights["eigenlayer-steth"]  # restaked stETH is still stETH


def test_capital_bought_within_the_holding_period_is_not_sold_for_a_better_venue() -> None:
    """Without the hold the plan sells stETH for rETH; with stETH bought 3 days ago its 60 % stays stETH (restaked
    or not) and rETH is bought from idle ETH only, and the plan says why."""
    free = optimize(small_inputs(holdings=HELD, yields=RETH_BEST))
    assert _steth_subtree(free.target_weights) < 0.6 - 0.05  # sold for rETH
    held = optimize(
        _hold(small_inputs(holdings=HELD, yields=RETH_BEST), recent_entries={"lido-steth": "3 d ago"})
    )
    assert _steth_subtree(held.target_weights) >= 0.6 - 1e-9
    assert held.target_weights["rocketpool-reth"] > 0.1
    assert not [m for m in held.moves if m.action == "withdraw" and m.from_venue == "lido-steth"]
    assert any("holding period: lido-steth (bought 3 d ago)" in h for h in held.heuristics)
    check_invariants(held)


def test_restaking_what_was_bought_is_not_a_sale() -> None:
    """The hold is on the venue's subtree, not its own weight: stETH bought 3 days ago may be restaked into
    EigenLayer (it stays stETH), so the plan is the one without the hold. Holding stETH's own weight instead
    bought 350 ETH more stETH to restake, and that pass-through entry renewed the hold (found in review)."""
    restaking = {**YIELDS, "eigenlayer-steth": {"restaking": 0.06}}
    free = optimize(small_inputs(holdings=HELD, yields=restaking))
    assert free.target_weights["lido-steth"] < 0.6 - 0.3 and free.target_weights["eigenlayer-steth"] > 0.3
    held = optimize(
        _hold(small_inputs(holdings=HELD, yields=restaking), recent_entries={"lido-steth": "3 d ago"})
    )
    assert held.target_weights == pytest.approx(free.target_weights, abs=1e-6)
    assert _steth_subtree(held.target_weights) >= 0.6 - 1e-9
    bought = sum(m.amount_eth for m in held.moves if m.action == "deposit" and m.to_venue == "lido-steth")
    assert bought < 50.0  # the ladder's top-up at most, not stETH bought to be restaked
    check_invariants(held)


def test_a_venue_sold_within_the_holding_period_is_not_bought_back() -> None:
    base = small_inputs(yields=RETH_BEST)
    assert optimize(base).target_weights["rocketpool-reth"] > 0.1
    plan = optimize(_hold(base, recent_exits={"rocketpool-reth": "2 d ago"}))
    assert plan.target_weights["rocketpool-reth"] == pytest.approx(0.0, abs=1e-9)
    [blocked] = [b for b in plan.entry_blocked if b.venue == "rocketpool-reth"]
    assert blocked.reason == "sold 2 d ago: not bought back within the 14-day holding period"
    check_invariants(plan)


def test_the_holding_period_yields_to_the_limits() -> None:
    """60 % stETH bought yesterday, then the CVaR budget is cut below what 60 % stETH carries: keeping it cannot
    meet the limits, so the hold is lifted, stETH is sold down, and the plan says so."""
    tight = small_inputs(holdings=HELD, yields=YIELDS)
    today = optimize(tight).before.cvar
    cut = tight.model_copy(update={"limits": tight.limits.model_copy(update={"cvar_budget": today * 0.6})})
    plan = optimize(_hold(cut, recent_entries={"lido-steth": "1 d ago"}))
    assert plan.status == "rebalance"
    assert plan.target_weights["lido-steth"] < 0.6 - 0.05
    assert plan.after.cvar <= today * 0.6 + 1e-7
    assert any("holding period was lifted" in h for h in plan.heuristics)


def test_limits_no_plan_can_meet_are_not_blamed_on_the_holding_period() -> None:
    """A CVaR budget that no book with rETH's 50 % min share can meet: infeasible with or without the hold, so the
    plan diagnoses the limits and says nothing about lifting the holding period (it used to claim the hold was
    lifted)."""
    base = small_inputs(holdings=HELD, yields=YIELDS, cvar_budget=1e-6)
    venues = tuple(
        v.model_copy(update={"min_share": 0.5}) if v.id == "rocketpool-reth" else v
        for v in base.universe.venues
    )
    tight = base.model_copy(update={"universe": base.universe.model_copy(update={"venues": venues})})
    plan = optimize(_hold(tight, recent_entries={"lido-steth": "1 d ago"}))
    assert plan.status == "hold" and plan.diagnosis
    assert any(d.limit == "cvar_budget" for d in plan.diagnosis)
    assert not any("holding period" in h for h in plan.heuristics)


@pytest.mark.parametrize("field", ["recent_entries", "recent_exits"])
def test_an_unknown_venue_in_the_holding_period_is_refused_naming_it(field: str) -> None:
    with pytest.raises(ValueError, match=rf"{field} names unknown venues \['nope'\]"):
        OptimizationInputs.model_validate({**small_inputs().model_dump(), field: {"nope": "1 d ago"}})
