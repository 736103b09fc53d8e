"""The market report and the LP's forced-sale limit agree: `[limits] forced_sale_budget` takes each token's depeg
as `aggregator.risk.market` prices it (the scorecard's worst_depeg, else the unrecorded default), and on the book the
LP solves, the report's rung sale losses are at most the budget, and equal to it where the limit binds."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.core.errors import ConfigError
from aggregator.risk.market import UNRECORDED_DEPEG, depegs, market_risk
from aggregator.risk.report import priors_of
from aggregator.settings import Settings
from optimizer import OptimizationInputs
from optimizer.optimize import optimize
from tests.helpers.settings import demo_settings


def _inputs(settings: Settings) -> OptimizationInputs:
    """The demo's book and universe under its limits, with made-up yields that rise down the venue list (LRTs and
    restaking pay most), so the plan wants the tokens the ladder can least sell."""
    yields = {v.id: {c.name: 0.028 + 0.002 * i for c in v.components} for i, v in enumerate(settings.venues)}
    return OptimizationInputs(
        universe=settings.universe(),
        limits=settings.limits,
        portfolio_eth=settings.portfolio_eth,
        holdings_eth=dict(settings.portfolio.holdings_eth),
        yields=yields,
    )


def test_the_settings_fill_each_tokens_depeg_from_the_scorecard(tmp_path: Path) -> None:
    s = demo_settings(tmp_path, limits={"forced_sale_budget": 0.01, "sale_depeg": {"rocketpool-reth": 0.02}})
    found = depegs(s.universe(), priors_of(s.risk.scorecard))
    assert s.limits.sale_depeg["renzo-ezeth"] == pytest.approx(0.13)  # E5
    assert s.limits.sale_depeg["lido-steth"] == pytest.approx(found["lido-steth"][0])
    assert s.limits.sale_depeg["rocketpool-reth"] == pytest.approx(0.02)  # the operator's value wins
    assert found["rocketpool-reth"][0] == UNRECORDED_DEPEG
    assert set(s.limits.sale_depeg) == set(found)
    unset = demo_settings(tmp_path / "unset")
    assert unset.limits.forced_sale_budget is None and unset.limits.sale_depeg == {}


@pytest.mark.parametrize("budget", [0.004, 0.008])
def test_the_report_prices_the_solved_book_within_the_budget(tmp_path: Path, budget: float) -> None:
    s = demo_settings(tmp_path, limits={"forced_sale_budget": budget})
    free = demo_settings(tmp_path / "free")
    inp = _inputs(s)
    plan = optimize(inp)
    unpriced = optimize(_inputs(free))
    assert plan.status == "rebalance", plan.reason
    priors = priors_of(s.risk.scorecard)
    report = market_risk(s.universe(), s.limits.ladder, plan.target_weights, s.portfolio_eth, priors)
    losses = [r.loss_bps / 1e4 for r in report.rungs]
    assert all(r.short == pytest.approx(0.0, abs=1e-7) for r in report.rungs)
    assert max(losses) <= budget + 1e-7
    assert max(losses) == pytest.approx(budget, abs=1e-6)  # it binds: the unpriced plan breaks it
    assert any(b.limit == "forced_sale" for b in plan.binding)
    before = market_risk(s.universe(), s.limits.ladder, unpriced.target_weights, s.portfolio_eth, priors)
    assert max(r.loss_bps / 1e4 + r.short for r in before.rungs) > budget


@pytest.mark.parametrize("bad", [1.5, -0.1, "a lot"])
def test_a_bad_budget_in_the_config_is_refused_naming_the_key(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"limits\.forced_sale_budget"):
        demo_settings(tmp_path, limits={"forced_sale_budget": bad})


def test_a_depeg_for_a_venue_that_is_no_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"limits\.sale_depeg names \['eigenlayer-steth'\].*valid: .*lido-steth"
    ):
        demo_settings(tmp_path, limits={"sale_depeg": {"eigenlayer-steth": 0.05}})
