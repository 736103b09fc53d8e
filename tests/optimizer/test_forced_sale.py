"""The forced-sale limit in the LP: if the queues stall, each ladder rung by idle ETH and market sales, losing at
most `forced_sale_budget` of the book (each sale its DEX fee plus the token's depeg)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydantic import ValidationError

from optimizer import Limits
from optimizer.diagnose import elastic
from optimizer.evaluate import violations
from optimizer.forced_sale import UNRECORDED_DEPEG, rung_losses, sale_rates, sale_venues
from optimizer.optimize import ModelCache, optimize, prepare, shape_for
from tests.optimizer.universes import forced_sale_inputs as inputs
from tests.optimizer.universes import forced_sale_universe as universe

DEPEG = {"steth": 0.065, "ezeth": 0.13}  # stETH June 2022 (E1), ezETH April 2024 (E5)


def _loss(plan_weights: dict[str, float], depeg: dict[str, float]) -> float:
    u = universe()
    x = np.array([plan_weights[v.id] for v in u.venues])
    loss, short = rung_losses(u, x, sale_rates(u, depeg), np.array([0.3]))
    assert short[0] == pytest.approx(0.0, abs=1e-9)
    return float(loss[0])


def test_only_tokens_under_idle_eth_with_a_market_route_can_be_sold() -> None:
    u = universe()
    assert [u.venues[i].id for i in sale_venues(u)] == ["steth", "ezeth"]  # restaked stETH has no market
    rates = sale_rates(u, {"steth": 0.065})
    assert rates == pytest.approx([0.0005 + 0.065, 0.002 + UNRECORDED_DEPEG])  # no record: the default depeg


def test_unset_the_block_is_absent_and_the_depegs_change_nothing() -> None:
    cache = ModelCache()
    plain = optimize(inputs(), cache=cache)
    other = optimize(inputs(depeg={"steth": 0.5, "ezeth": 0.5}), cache=cache)
    model = next(iter(cache.models.values()))
    assert len(cache.models) == 1 and model.terms.sale is None
    assert "forced_sale" not in model.named and "forced_sale_cover" not in model.named
    assert plain.target_weights == other.target_weights
    assert plain.target_weights["eth"] == pytest.approx(0.0, abs=1e-9)  # the queues meet the ladder at par


def test_the_budget_binds_keeps_idle_eth_and_is_met_exactly() -> None:
    """Unset, the book holds no idle ETH (the 14-day rung is met through the queues at par). At a 1 % budget the
    rung's 30 % must come from idle ETH and sales of stETH (−6.55 %) and ezETH (−13.2 %): the plan keeps idle ETH,
    sells into a loss of exactly the budget, and gives up restaked stETH (no market exit)."""
    free = optimize(inputs(depeg=DEPEG))
    bound = optimize(inputs(budget=0.01, depeg=DEPEG))
    assert free.target_weights["eth"] == pytest.approx(0.0, abs=1e-9)
    assert bound.target_weights["eth"] > 0.1
    assert bound.target_weights["eigen-steth"] < free.target_weights["eigen-steth"] - 0.1
    assert _loss(bound.target_weights, DEPEG) == pytest.approx(0.01, abs=1e-7)
    assert _loss(free.target_weights, DEPEG) > 0.01  # the old plan breaks it
    assert bound.after.net_yield < free.after.net_yield


def test_a_token_with_a_smaller_depeg_needs_no_idle_eth() -> None:
    """The same budget with ezETH's depeg at 0.5 %: selling ezETH is cheap, so no idle ETH is kept, and one compiled
    model serves both depegs and every budget (they are parameters)."""
    cache = ModelCache()
    deep = optimize(inputs(budget=0.01, depeg=DEPEG), cache=cache)
    shallow = optimize(inputs(budget=0.01, depeg={"steth": 0.065, "ezeth": 0.005}), cache=cache)
    looser = optimize(inputs(budget=0.005, depeg=DEPEG), cache=cache)
    assert len(cache.models) == 1
    assert deep.target_weights["eth"] > 0.1
    assert shallow.target_weights["eth"] == pytest.approx(0.0, abs=1e-7)
    assert looser.target_weights["eth"] > deep.target_weights["eth"] + 0.05


def test_violations_and_the_shadow_price_sentence() -> None:
    """A book that breaks the budget is named by the numpy check; the binding budget's sentence is a re-solve with
    the budget raised by a percentage point, and its gain is that re-solve's."""
    inp = inputs(budget=0.005, depeg=DEPEG)
    cache = ModelCache()
    plan = optimize(inp, cache=cache)
    model = cache.get(inp.universe, shape_for(inp))
    values, _, _ = prepare(model, inp)
    all_tokens = np.array([0.0, 0.6, 0.4, 0.0])
    bad = violations(model.structure, model.losses, model.shape, values, all_tokens)
    assert any(b.startswith("forced sale:") and "above the budget 0.005" in b for b in bad)
    restaked = np.array(
        [0.0, 0.4, 0.3, 0.3]
    )  # 70 % in tokens, 30 % restaked (no market): an 80 % floor is short
    high = dataclasses.replace(values, sale_floor=np.array([0.8]))
    bad = violations(model.structure, model.losses, model.shape, high, restaked)
    assert any("0.100000 of the 14-day floor 0.800000 can be raised neither" in b for b in bad)
    x = np.array([plan.target_weights[v.id] for v in inp.universe.venues])
    assert violations(model.structure, model.losses, model.shape, values, x) == []
    [sentence] = [b for b in plan.binding if b.limit == "forced_sale"]
    assert sentence.subject == "portfolio" and "raising the forced-sale budget" in sentence.explanation
    probe = model.solve(dataclasses.replace(values, sale_budget=values.sale_budget + 0.01))
    base = model.solve(values)
    assert probe.objective is not None and base.objective is not None
    assert sentence.gain_bps == pytest.approx((probe.objective - base.objective) * 1e4, abs=1e-6)
    assert sentence.gain_bps > 1.0


def test_an_infeasible_budget_is_named_by_the_diagnosis() -> None:
    """All in tokens, no turnover allowed and a zero budget: nothing can change, so the diagnosis names the
    forced-sale budget and the least one that holds (the greedy sale's loss of the book as it is)."""
    book = {"steth": 6_000.0, "ezeth": 4_000.0}
    inp = inputs(budget=0.0, depeg=DEPEG, holdings=book, max_turnover=0.0)
    plan = optimize(inp)
    assert plan.status == "hold"
    names = {d.limit for d in plan.diagnosis}
    assert "forced_sale" in names
    [d] = [d for d in plan.diagnosis if d.limit == "forced_sale"]
    assert d.least_feasible == pytest.approx(0.3 * (0.0005 + 0.065), abs=1e-6)


def test_the_diagnosis_finds_the_least_budget_directly() -> None:
    inp = inputs(budget=0.0, depeg=DEPEG, holdings={"steth": 6_000.0, "ezeth": 4_000.0}, max_turnover=0.0)
    model = ModelCache().get(inp.universe, shape_for(inp))
    values, _, _ = prepare(model, inp)
    found, why = elastic(model, values, ("HIGHS",))
    assert why is None
    assert [(d.limit, round(d.least_feasible, 6)) for d in found] == [("forced_sale", round(0.3 * 0.0655, 6))]


@pytest.mark.parametrize("bad", [-0.01, 1.5, float("nan")])
def test_a_bad_budget_is_rejected_naming_it(bad: float) -> None:
    with pytest.raises(ValidationError, match="forced_sale_budget"):
        Limits(forced_sale_budget=bad)


def test_a_bad_depeg_is_rejected_naming_it() -> None:
    with pytest.raises(ValidationError, match="sale_depeg"):
        Limits(sale_depeg={"steth": 2.0})
