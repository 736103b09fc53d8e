"""A common-mode parent (every staking node fails with Ethereum consensus) must not freeze a fully invested book:
a rotation between two of its venues never holds both at once (a plan's deposits wait until its exits land), so
the parent's exposure stays at 100 % and the rotation is made, capped at 100 % or not."""

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
    """All in stETH, rETH suddenly pays far more: the plan rotates into rETH although both fail with consensus, also
    with the parent capped at 100 % explicitly (when capital in transit counted at both ends, that cap froze it)."""
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
    assert solve(1.0) == (status, reth)  # capped at 100 %: the same rotation
    assert UNCAPPED_NODE > 1.0  # above any exposure a book can have
