"""Venues closed to entries (stale, carried or thin data): never bought, always sellable, and a child may come back
into its closed parent."""

from __future__ import annotations

import pytest

from optimizer import InFlight, OptimizationInputs
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
    """Held rETH valued at a carried 0 %: it is sold (before, a venue without a fresh value was frozen)."""
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


def test_an_exit_only_venue_is_sold_not_bought_and_a_never_observed_one_is_held() -> None:
    """rETH's yield went stale past the window (exit_only, no yield given): it counts 0, so the held half is sold,
    even with a min share, and nothing enters it although ETH is idle. The same venue without a yield but NOT
    exit-only (never observed: a store warming up) is held at its weight, not sold."""
    no_reth = {k: v for k, v in YIELDS.items() if k != "rocketpool-reth"}
    holdings = {"eth": 500.0, "rocketpool-reth": 500.0}
    stale = small_inputs(holdings=holdings, yields=no_reth).model_copy(
        update={"exit_only": {"rocketpool-reth": "rocketpool-reth.base expired"}}
    )
    validated = OptimizationInputs.model_validate(stale.model_dump())
    assert validated.entry_blocked == {
        "rocketpool-reth": "rocketpool-reth.base expired"
    }  # closed to entries too
    plan = optimize(stale)
    assert plan.status == "rebalance"
    assert plan.target_weights["rocketpool-reth"] < 0.5 - 1e-6
    assert [m.action for m in plan.moves if m.venue == "rocketpool-reth"] == ["withdraw"]
    assert not plan.held
    check_invariants(plan)
    assert rebuild_objective(plan) == pytest.approx(plan.problem.objective, abs=1e-7)
    # never bought: from an all-ETH book it stays at 0 whatever it yielded before
    fresh = small_inputs(holdings={"eth": 1000.0}, yields=no_reth).model_copy(
        update={"exit_only": {"rocketpool-reth": "expired"}}
    )
    assert optimize(fresh).target_weights["rocketpool-reth"] == pytest.approx(0.0, abs=1e-9)
    # warming up: the same inputs without exit_only hold rETH where it is
    held = optimize(small_inputs(holdings=holdings, yields=no_reth))
    assert held.target_weights["rocketpool-reth"] == pytest.approx(0.5)
    assert [h.venue for h in held.held] == ["rocketpool-reth"]


def test_unknown_venue_in_exit_only_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"exit_only names unknown venues \['nope'\]"):
        OptimizationInputs.model_validate({**small_inputs().model_dump(), "exit_only": {"nope": "x"}})


def test_a_venue_with_an_exit_still_queued_may_be_bought_back_to_its_max_on_the_target() -> None:
    """300 ETH left rETH two days ago and is still queued (exposed to rETH). rETH is now the best venue, max share
    60 %: the plan may buy it back to 60 % where the capital is headed, because its deposit waits until the 300 ETH
    has landed (the replay's book, the daemon's ledger and the timeline all wait), so the exposure is 30 % until then
    and 60 % after, never 90 %. Before deposits waited, the plan was held to 30 % to keep that exposure in check."""
    inputs = small_inputs(holdings={"eth": 700.0}, yields=BEST).model_copy(
        update={
            "portfolio_eth": 1000.0,
            "in_flight": (
                InFlight(from_venue="rocketpool-reth", to_venue="eth", amount_eth=300.0, days_left=2.0),
            ),
        }
    )
    plan = optimize(inputs)
    assert plan.status == "rebalance"
    assert plan.current_weights["rocketpool-reth"] == pytest.approx(0.0)  # headed for ETH
    assert plan.before.cvar > optimize(small_inputs(holdings={"eth": 1000.0}, yields=BEST)).before.cvar
    assert plan.target_weights["rocketpool-reth"] == pytest.approx(0.6, abs=1e-7)
    check_invariants(plan)
    assert rebuild_objective(plan) == pytest.approx(plan.problem.objective, abs=1e-7)


def test_an_entry_discount_stops_noise_from_buying_but_does_not_sell_what_is_held() -> None:
    """rETH's estimate is 9 % but its window's lower quantile is 0.5 % (entry_discount 8.5 %/yr): from idle ETH
    nothing enters it; a book already holding it keeps it, valued at the estimate (hysteresis on the input)."""
    discount = {"entry_discount": {"rocketpool-reth": 0.085}}
    fresh = optimize(small_inputs(yields=BEST).model_copy(update=discount))
    assert fresh.target_weights["rocketpool-reth"] == pytest.approx(0.0, abs=1e-9)
    assert optimize(small_inputs(yields=BEST)).target_weights["rocketpool-reth"] == pytest.approx(0.6)
    held = optimize(
        small_inputs(holdings={"eth": 400.0, "rocketpool-reth": 600.0}, yields=BEST).model_copy(
            update=discount
        )
    )
    assert held.target_weights["rocketpool-reth"] == pytest.approx(0.6)
    assert not [m for m in held.moves if m.venue == "rocketpool-reth"]
    check_invariants(fresh)
    assert rebuild_objective(fresh) == pytest.approx(fresh.problem.objective, abs=1e-7)
