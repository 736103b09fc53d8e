"""Hand-built universes for the optimizer tests (shaped like config/demo.toml, numbers chosen for the tests)."""

from __future__ import annotations

from optimizer import (
    ExitRoute,
    ExitRouteKind,
    LadderRung,
    Limits,
    OptimizationInputs,
    RiskNode,
    Universe,
    Venue,
    VenueKind,
    YieldComponent,
)

BASE = YieldComponent(name="base")
RESTAKING = YieldComponent(name="restaking", haircut=0.5)


def small_universe() -> Universe:
    return Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(
                id="lido-steth",
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(BASE,),
                risk_nodes=("lido",),
                exit_days=5,
                entry_cost=0.0005,
                exit_cost=0.0005,
                max_share=0.6,
            ),
            Venue(
                id="rocketpool-reth",
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(BASE,),
                risk_nodes=("rocketpool",),
                exit_days=3,
                entry_cost=0.001,
                exit_cost=0.001,
                max_share=0.6,
            ),
            Venue(
                id="eigenlayer-steth",
                parent="lido-steth",
                kind=VenueKind.RESTAKING,
                components=(RESTAKING,),
                risk_nodes=("eigenlayer",),
                exit_days=14,
                entry_cost=0.0002,
                exit_cost=0.0002,
                max_share=0.5,
            ),
            Venue(
                id="etherfi-weeth",
                parent="eth",
                kind=VenueKind.LIQUID_RESTAKING,
                components=(BASE, RESTAKING),
                risk_nodes=("etherfi",),
                exit_days=10,
                entry_cost=0.002,
                exit_cost=0.003,
                max_share=0.3,
            ),
        ),
        nodes=(
            RiskNode(id="lido", p=0.005, lgd=0.3),
            RiskNode(id="rocketpool", p=0.005, lgd=0.3),
            RiskNode(id="eigenlayer", p=0.01, lgd=0.2),
            RiskNode(id="etherfi", p=0.01, lgd=0.3, parents=("eigenlayer",)),
        ),
    )


YIELDS = {
    "lido-steth": {"base": 0.028},
    "rocketpool-reth": {"base": 0.026},
    "eigenlayer-steth": {"restaking": 0.02},
    "etherfi-weeth": {"base": 0.029, "restaking": 0.015},
}


def small_inputs(
    holdings: dict[str, float] | None = None,
    yields: dict[str, dict[str, float]] | None = None,
    **limits: object,
) -> OptimizationInputs:
    lim = {
        "cvar_budget": 0.25,
        "risk_aversion": 0.05,
        "horizon_days": 180.0,
        "ladder": (LadderRung(days=1, min_share=0.05), LadderRung(days=7, min_share=0.3)),
    }
    lim.update(limits)
    held = holdings or {"eth": 1000.0}
    return OptimizationInputs(
        universe=small_universe(),
        limits=Limits.model_validate(lim),
        portfolio_eth=sum(held.values()),
        holdings_eth=held,
        yields=YIELDS if yields is None else yields,
    )


# --- the forced-sale limit (tests/optimizer/test_forced_sale.py)


def forced_sale_universe() -> Universe:
    """For the forced-sale limit: two tokens with a market exit (different depegs), a restaked position without
    one; with `FORCED_SALE_LADDER`, one rung that the queues meet at par."""
    return Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(
                id="steth",
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(BASE,),
                risk_nodes=("lido",),
                max_share=0.6,
                exit_routes=(
                    ExitRoute(kind=ExitRouteKind.QUEUE, days=5),
                    ExitRoute(kind=ExitRouteKind.DEX, fee=0.0005),
                ),
            ),
            Venue(
                id="ezeth",
                parent="eth",
                kind=VenueKind.LIQUID_RESTAKING,
                components=(BASE,),
                risk_nodes=("renzo",),
                max_share=0.6,
                exit_routes=(
                    ExitRoute(kind=ExitRouteKind.QUEUE, days=7),
                    ExitRoute(kind=ExitRouteKind.DEX, fee=0.002),
                ),
            ),
            Venue(
                id="eigen-steth",
                parent="steth",
                kind=VenueKind.RESTAKING,
                components=(YieldComponent(name="restaking"),),
                risk_nodes=("eigenlayer",),
                max_share=0.3,
                exit_routes=(ExitRoute(kind=ExitRouteKind.QUEUE, days=7),),
            ),
        ),
        nodes=(
            RiskNode(id="lido", p=0.002, lgd=0.3),
            RiskNode(id="renzo", p=0.004, lgd=0.3),
            RiskNode(id="eigenlayer", p=0.003, lgd=0.2),
        ),
    )


FORCED_SALE_YIELDS = {
    "steth": {"base": 0.030},
    "ezeth": {"base": 0.036},
    "eigen-steth": {"restaking": 0.004},
}
"""ezETH pays most, then restaked stETH, then stETH; idle ETH nothing."""

FORCED_SALE_LADDER = (LadderRung(days=14, min_share=0.3),)


def forced_sale_inputs(
    *,
    budget: float | None = None,
    depeg: dict[str, float] | None = None,
    holdings: dict[str, float] | None = None,
    **limits: object,
) -> OptimizationInputs:
    """10,000 ETH (all idle unless `holdings`), risk-neutral-ish, the one-rung ladder, the forced-sale budget."""
    book = holdings or {"eth": 10_000.0}
    return OptimizationInputs(
        universe=forced_sale_universe(),
        limits=Limits.model_validate(
            {
                "tail_weight": 0.0,
                "ladder": FORCED_SALE_LADDER,
                "forced_sale_budget": budget,
                "sale_depeg": depeg or {},
                **limits,
            }
        ),
        portfolio_eth=sum(book.values()),
        holdings_eth=book,
        yields=FORCED_SALE_YIELDS,
    )
