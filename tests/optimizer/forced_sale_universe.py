"""A small universe for the forced-sale limit: two tokens with a market exit (different depegs), a restaked position
without one, and a one-rung ladder that the queues meet at par."""

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
QUEUE = ExitRouteKind.QUEUE
DEX = ExitRouteKind.DEX


def universe() -> Universe:
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
                exit_routes=(ExitRoute(kind=QUEUE, days=5), ExitRoute(kind=DEX, fee=0.0005)),
            ),
            Venue(
                id="ezeth",
                parent="eth",
                kind=VenueKind.LIQUID_RESTAKING,
                components=(BASE,),
                risk_nodes=("renzo",),
                max_share=0.6,
                exit_routes=(ExitRoute(kind=QUEUE, days=7), ExitRoute(kind=DEX, fee=0.002)),
            ),
            Venue(
                id="eigen-steth",
                parent="steth",
                kind=VenueKind.RESTAKING,
                components=(YieldComponent(name="restaking"),),
                risk_nodes=("eigenlayer",),
                max_share=0.3,
                exit_routes=(ExitRoute(kind=QUEUE, days=7),),
            ),
        ),
        nodes=(
            RiskNode(id="lido", p=0.002, lgd=0.3),
            RiskNode(id="renzo", p=0.004, lgd=0.3),
            RiskNode(id="eigenlayer", p=0.003, lgd=0.2),
        ),
    )


YIELDS = {
    "steth": {"base": 0.030},
    "ezeth": {"base": 0.036},
    "eigen-steth": {"restaking": 0.004},
}
"""ezETH pays most, then restaked stETH, then stETH; idle ETH nothing."""

LADDER = (LadderRung(days=14, min_share=0.3),)


def inputs(
    *,
    budget: float | None = None,
    depeg: dict[str, float] | None = None,
    holdings: dict[str, float] | None = None,
    **limits: object,
) -> OptimizationInputs:
    """10,000 ETH (all idle unless `holdings`), risk-neutral-ish, the one-rung ladder, the forced-sale budget."""
    book = holdings or {"eth": 10_000.0}
    return OptimizationInputs(
        universe=universe(),
        limits=Limits.model_validate(
            {
                "tail_weight": 0.0,
                "ladder": LADDER,
                "forced_sale_budget": budget,
                "sale_depeg": depeg or {},
                **limits,
            }
        ),
        portfolio_eth=sum(book.values()),
        holdings_eth=book,
        yields=YIELDS,
    )
