"""Venues closed to entries (stale, carried or thin data): never bought, always sellable, and a child may come back
into its closed parent."""

from __future__ import annotations

import pytest

from optimizer import OptimizationInputs
from optimizer.optimize import optimize
from tests.optimizer.invariants import check_invariants
from tests.optimizer.linprog_rebuild import rebuild_objective
from tests.optimizer.universes import YIELDS, small_inputs

BEST = {**YIELDS, "rocketpool-reth": {"base": 0.09}}  # rETH is by far the best venue


def test_a_closed_venue_is_not_bought_even_with_the_best_yield() -> None:
    """Open, rETH takes its max share; closed, nothing enters it and the plan says why."""
    open_ = optimize(small_inputs(yields=BEST))
    assert open_.target_weights["rocketpool-reth"] == pytest.approx(0.6)
    inputs = small_inputs(yields=BEST).model_copy(update={"entry_blocked": {"rocketpool-reth": "too few"}})
    plan = optimize(inputs)
    assert plan.target_weights["rocketpool-reth"] == pytest.approx(0.0, abs=1e-9)
    assert not [m for m in plan.moves if m.to_venue == "rocketpool-reth"]
    assert [(b.venue, b.reason) for b in plan.entry_blocked] == [("rocketpool-reth", "too few")]
    check_invariants(plan)
    assert rebuild_objective(plan) == pytest.approx(plan.problem.objective, abs=1e-7)


def test_a_closed_venue_whose_yield_no_longer_justifies_it_is_sold_not_frozen() -> None:
    """Held rETH valued at a carried 0 %: it is sold (before, a venue without a fresh value was frozen). Not 0.5 %:
    the 1-day ladder counts the plan's queued exit at rETH until it lands, so the sale must end in idle ETH, which
    beats rETH only once rETH yields no more than its risk costs."""
    poor = {**YIELDS, "rocketpool-reth": {"base": 0.0}}
    inputs = small_inputs(holdings={"eth": 500.0, "rocketpool-reth": 500.0}, yields=poor)
    plan = optimize(inputs.model_copy(update={"entry_blocked": {"rocketpool-reth": "stale"}}))
    assert plan.status == "rebalance"
    assert plan.target_weights["rocketpool-reth"] < 0.5 - 1e-6
    assert [m.action for m in plan.moves if m.venue == "rocketpool-reth"] == ["withdraw"]
    assert not plan.held
    check_invariants(plan)
    assert rebuild_objective(plan) == pytest.approx(plan.problem.objective, abs=1e-7)


def test_a_child_may_exit_into_its_closed_parent_but_nothing_enters_the_parent() -> None:
    """stETH closed: EigenLayer (worthless now) is unwound back into stETH, which is no entry (the capital never
    left stETH's subtree); no ETH goes into stETH although it yields the most."""
    rich = {**YIELDS, "lido-steth": {"base": 0.06}, "eigenlayer-steth": {"restaking": -0.05}}
    inputs = small_inputs(holdings={"eth": 600.0, "eigenlayer-steth": 400.0}, yields=rich)
    plan = optimize(inputs.model_copy(update={"entry_blocked": {"lido-steth": "stale"}}))
    assert plan.target_weights["eigenlayer-steth"] == pytest.approx(0.0, abs=1e-9)
    assert plan.target_weights["lido-steth"] == pytest.approx(0.4, abs=1e-9)
    assert [(m.action, m.venue) for m in plan.moves if "steth" in m.venue] == [
        ("withdraw", "eigenlayer-steth")
    ]
    check_invariants(plan)
    assert rebuild_objective(plan) == pytest.approx(plan.problem.objective, abs=1e-7)


def test_unknown_venue_in_entry_blocked_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"entry_blocked names unknown venues \['nope'\]"):
        OptimizationInputs.model_validate({**small_inputs().model_dump(), "entry_blocked": {"nope": "x"}})
