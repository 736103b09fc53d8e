"""Market (depeg) risk on the exits: what a position loses when it must be SOLD now, next to what it loses when it
can WAIT in its protocol's queue, and what the liquidity ladder costs when the queues stall and it has to sell.

The ladder counts a venue as liquid within its protocol queue's days, at par (`Venue.liquidity_days`). That holds
while the queues run. In a run they need not: stETH had no withdrawal at all in June 2022 (E1: a holder who needed
ETH sold into Curve at up to −6.5 %), ezETH's only fast exit was a thin DEX at ≈ −13 % in April 2024 (E5), and LRTs
trade 2–4 % under their exchange rate in ordinary stress (E6). So each token gets a depeg size from the evidence
(the scorecard's `worst_depeg` of its own node, with its source), and:

- each exit route carries a price: a DEX sale in a depeg loses its fee plus the depeg, at once; the queue loses the
  yield forgone over its days, not principal;
- each ladder rung carries a price: if the queues stall, the rung's minimum share can only come from idle ETH and
  market sales; selling the cheapest tokens first, what the sale loses (in ETH and bp of the book), and what cannot
  be raised at all (positions with no market exit of their own: restaked positions wait their queue first).

A token without a recorded depeg is priced at `UNRECORDED_DEPEG`: no record is not evidence of no depeg.
With `[limits] forced_sale_budget` the same prices are a limit of the LP (`optimizer.forced_sale`: the settings
fill `limits.sale_depeg` from `depegs`), and a solved book's rung losses here are at most the budget; without it
this is a report on a book only. The plan's CVaR does not include forced-sale losses either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aggregator.risk.scorecard import Prior
from optimizer import ExitRouteKind, Universe
from optimizer.forced_sale import UNRECORDED_DEPEG
from optimizer.inputs import TOKEN_KINDS, LadderRung
from optimizer.structure import Structure


@dataclass(frozen=True)
class ExitPrice:
    """One venue's ways out under a depeg of its token."""

    venue: str
    depeg: float  # the token's market gap in the stress (fraction)
    depeg_source: str
    queue_days: float | None  # None: no protocol queue
    dex_fee: float | None  # None: no market route
    sell_now: float | None  # fraction lost selling on the market in the depeg: fee + depeg


@dataclass(frozen=True)
class RungPrice:
    """One ladder rung under stalled queues: what it counts at par, what selling to meet it costs."""

    days: float
    min_share: float
    at_par: float  # share back within `days` through the queues, as the ladder counts it
    idle: float  # share already idle ETH
    sold: dict[str, float]  # venue → share sold on the market to reach min_share
    loss_eth: float  # what the sales lose in the depeg
    loss_bps: float  # the same in bp of the book
    short: float  # share of min_share that neither idle ETH nor a market sale can raise in time


@dataclass(frozen=True)
class MarketRisk:
    exits: list[ExitPrice]
    rungs: list[RungPrice]

    def to_json(self) -> dict[str, Any]:
        return {"exits": [asdict(e) for e in self.exits], "ladder": [asdict(r) for r in self.rungs]}


def depegs(universe: Universe, priors: Mapping[str, Prior] | None) -> dict[str, tuple[float, str]]:
    """Per token venue, its depeg size and where it comes from: the largest `worst_depeg` among its own risk nodes,
    else `UNRECORDED_DEPEG`."""
    out: dict[str, tuple[float, str]] = {}
    for v in universe.venues:
        if v.kind not in TOKEN_KINDS:
            continue
        recorded = [
            (
                prior.card.worst_depeg,
                prior.card.sources.get("worst_depeg", f"scorecard nodes.{node}.worst_depeg"),
            )
            for node in v.risk_nodes
            if priors is not None
            and (prior := priors.get(node)) is not None
            and prior.card.worst_depeg is not None
        ]
        if recorded:
            size, source = max(recorded)
            out[v.id] = (float(size), source)
        else:
            out[v.id] = (UNRECORDED_DEPEG, "none recorded: priced at stETH's June 2022 gap, −6.5 % (E1)")
    return out


def market_risk(
    universe: Universe,
    ladder: tuple[LadderRung, ...],
    weights: Mapping[str, float],
    portfolio_eth: float,
    priors: Mapping[str, Prior] | None,
) -> MarketRisk:
    """Exit prices of every token venue and the ladder's price under stalled queues for the book `weights`
    (venue → share of the portfolio). Waiting in a queue costs the yield forgone over its days, no principal."""
    st = Structure(universe)
    sizes = depegs(universe, priors)
    root = universe.root.id
    exits: list[ExitPrice] = []
    market: dict[
        str, float
    ] = {}  # venue → fraction lost selling it now (a venue straight under idle ETH only)
    for v in universe.venues:
        if v.id not in sizes:
            continue
        depeg, source = sizes[v.id]
        queues = [r.days for r in v.routes if r.kind == ExitRouteKind.QUEUE]
        dexes = [r.fee for r in v.routes if r.kind == ExitRouteKind.DEX]
        queue_days = min(queues) if queues else None
        fee = min(dexes) if dexes else None
        sell = None if fee is None else fee + depeg
        exits.append(ExitPrice(v.id, depeg, source, queue_days, fee, sell))
        if sell is not None and v.parent == root:
            market[v.id] = sell
    share = np.array([weights.get(v.id, 0.0) for v in universe.venues])
    idle = float(weights.get(root, 0.0))
    rungs: list[RungPrice] = []
    for rung in ladder:
        at_par = float(st.ladder_matrix((rung.days,))[0] @ share)
        need = max(0.0, rung.min_share - idle)
        sold: dict[str, float] = {}
        loss = 0.0
        for venue, cost in sorted(market.items(), key=lambda kv: (kv[1], kv[0])):
            if need <= 1e-12:
                break
            take = min(need, weights.get(venue, 0.0))
            if take > 0.0:
                sold[venue] = take
                loss += take * cost
                need -= take
        rungs.append(
            RungPrice(
                days=rung.days,
                min_share=rung.min_share,
                at_par=at_par,
                idle=idle,
                sold=sold,
                loss_eth=loss * portfolio_eth,
                loss_bps=loss * 1e4,
                short=max(0.0, need),
            )
        )
    return MarketRisk(exits, rungs)


__all__ = ["UNRECORDED_DEPEG", "ExitPrice", "MarketRisk", "RungPrice", "depegs", "market_risk"]
