"""A common-mode parent (every staking node fails with Ethereum consensus) must not freeze a fully invested book:
an uncapped node's exposure may pass 100 % while capital is in transit from one of its venues to another."""

from __future__ import annotations

from optimizer import Limits, OptimizationInputs, RiskNode, Universe
from optimizer.optimize import UNCAPPED_NODE, optimize
from tests.optimizer.universes import YIELDS, small_universe


def _with_consensus(cap: float | None) -> Universe:
    u = small_universe()
    nodes = (
        RiskNode(id="consensus", p=0.001, lgd=0.05, cap=cap),
        *(n.model_copy(update={"parents": (*n.parents, "consensus")}) for n in u.nodes),
    )
    return u.model_copy(update={"nodes": nodes})


def test_a_fully_invested_book_rotates_between_venues_sharing_a_parent() -> None:
    """All in stETH, rETH suddenly pays far more: the plan rotates into rETH although both fail with consensus;
    with the parent capped at 100 % explicitly (capital in transit counts twice) it cannot, as before the fix."""
    yields = YIELDS | {"rocketpool-reth": {"base": 0.08}}
    limits = Limits(cvar_budget=0.5, risk_aversion=0.0, horizon_days=180.0)

    def solve(cap: float | None) -> tuple[str, float]:
        plan = optimize(
            OptimizationInputs(
                universe=_with_consensus(cap),
                limits=limits,
                portfolio_eth=1000.0,
                holdings_eth={"lido-steth": 1000.0},
                yields=yields,
            )
        )
        return plan.status, plan.target_weights.get("rocketpool-reth", 0.0)

    status, reth = solve(None)
    assert status == "rebalance" and reth > 0.5  # up to its 60 % max share
    assert solve(1.0)[1] == 0.0  # capped at 100 %: no rETH while the stETH leaving is still counted
    assert UNCAPPED_NODE >= 2.0  # above 1 + the largest possible turnover
