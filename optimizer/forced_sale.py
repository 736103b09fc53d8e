"""The forced-sale limit: if the protocol queues stall, each ladder rung is met by idle ETH and market sales.

The liquidity ladder counts a venue at par within its queue's days. In a run the queues need not move (stETH had no
withdrawal at all in June 2022 and sold at up to −6.5 %; ezETH's only fast exit printed −13 % in April 2024), so
with `Limits.forced_sale_budget` set, every rung's minimum share must be reachable from idle ETH plus sales of
tokens with a market (DEX) exit straight into ETH, and the cheapest such sales may lose at most the budget (a share
of the book). A sale loses its DEX fee plus the token's depeg (`Limits.sale_depeg`, filled by the service from the
risk scorecard; `UNRECORDED_DEPEG` where none is recorded). Positions without a market exit of their own (restaked
positions wait their queue first) cannot be sold in time.

In the LP (`optimizer.limits.forced_sale`): per rung r, sales s_r with 0 ≤ s_r ≤ x on the sale venues,
x_idle + Σ s_r ≥ min_share_r and Σ rate·s_r ≤ budget. The least loss of a rung is the greedy sale, cheapest first
(a fractional knapsack), which `rung_losses` computes in numpy for the checks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from optimizer.inputs import TOKEN_KINDS, ExitRouteKind, Limits, Universe
from optimizer.structure import FloatArray

UNRECORDED_DEPEG = 0.065
"""Depeg of a token whose risk nodes record none: stETH's June 2022 gap (Chainlink stETH/ETH low 0.93502), the
deepest of the largest LST. No record is not evidence of no depeg."""


def sale_venues(universe: Universe) -> tuple[int, ...]:
    """Indices of the venues that can be sold for ETH at once: a token straight under idle ETH with a DEX route."""
    root = universe.root.id
    return tuple(
        i
        for i, v in enumerate(universe.venues)
        if v.kind in TOKEN_KINDS and v.parent == root and any(r.kind == ExitRouteKind.DEX for r in v.routes)
    )


def sale_rates(universe: Universe, depeg: Mapping[str, float]) -> FloatArray:
    """Per sale venue (in `sale_venues` order), the share a sale loses in the depeg: its cheapest DEX fee + depeg."""
    out = []
    for i in sale_venues(universe):
        v = universe.venues[i]
        fee = min(r.fee for r in v.routes if r.kind == ExitRouteKind.DEX)
        out.append(fee + depeg.get(v.id, UNRECORDED_DEPEG))
    return np.array(out, dtype=float)


def sale_floors(limits: Limits) -> FloatArray:
    """Each rung's minimum share, as the forced-sale limit meets it (in-flight capital is not counted: it is not
    ETH until it lands, and it cannot be sold)."""
    return np.array([r.min_share for r in limits.ladder], dtype=float)


def rung_losses(
    universe: Universe, x: FloatArray, rates: FloatArray, floors: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(loss, short) per rung for weights x: the least share of the book that meeting the rung by idle ETH and
    market sales loses (cheapest first), and the share no sale can raise."""
    root = next(i for i, v in enumerate(universe.venues) if v.parent is None)
    venues = sale_venues(universe)
    order = sorted(range(len(venues)), key=lambda k: (rates[k], universe.venues[venues[k]].id))
    loss = np.zeros(len(floors))
    short = np.zeros(len(floors))
    for r, floor in enumerate(floors):
        need = max(0.0, float(floor) - float(x[root]))
        for k in order:
            if need <= 0.0:
                break
            take = min(need, max(float(x[venues[k]]), 0.0))
            loss[r] += take * float(rates[k])
            need -= take
        short[r] = max(need, 0.0)
    return loss, short


__all__ = ["UNRECORDED_DEPEG", "rung_losses", "sale_floors", "sale_rates", "sale_venues"]
