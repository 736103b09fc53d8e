"""Turn a change of weights into concrete steps on the position tree: withdrawals first, deepest first; then
deposits, shallowest first. A subtree's net flow is the only thing moved across its edge, so stETH going into
EigenLayer is one deposit from stETH, never a Lido exit and re-entry.
"""

from __future__ import annotations

import numpy as np

from optimizer.plan import Move
from optimizer.structure import FloatArray, Structure

DUST = 1e-9


def tree_moves(
    structure: Structure,
    x0: FloatArray,
    x: FloatArray,
    portfolio_eth: float,
    path_yield: FloatArray,
) -> list[Move]:
    """The steps from x0 to x, with amounts in ETH and the one-off cost each pays when it happens: an exit takes the
    venue's cheaper route (a queue's cost is the whole path's yield forgone while waiting, a DEX sale its fee); an
    entry pays its entry cost (the exit it implies is paid when it happens, and priced into the plan's round trip)."""
    rate, days, route = structure.exit_routes(path_yield)
    kinds = [tuple(str(r.kind) for r in v.routes) for v in structure.universe.venues]
    f = structure.subtree @ (x - x0)
    ids = structure.venue_ids
    parents = structure.parent_index
    depth = structure.depth
    exits = sorted((i for i in range(structure.n_venues) if f[i] < -DUST), key=lambda i: (-depth[i], ids[i]))
    entries = sorted((i for i in range(structure.n_venues) if f[i] > DUST), key=lambda i: (depth[i], ids[i]))
    out: list[Move] = []
    for i in exits:
        parent = parents[i]
        assert parent is not None  # the root's subtree is everything: its flow is zero
        share = float(-f[i])
        out.append(
            Move(
                step=len(out) + 1,
                action="withdraw",
                venue=ids[i],
                from_venue=ids[i],
                to_venue=ids[parent],
                amount_eth=share * portfolio_eth,
                share=share,
                cost_eth=share * portfolio_eth * float(rate[i]),
                days=float(days[i]),
                route=kinds[i][int(route[i])],
            )
        )
    for i in entries:
        parent = parents[i]
        assert parent is not None
        share = float(f[i])
        out.append(
            Move(
                step=len(out) + 1,
                action="deposit",
                venue=ids[i],
                from_venue=ids[parent],
                to_venue=ids[i],
                amount_eth=share * portfolio_eth,
                share=share,
                cost_eth=share * portfolio_eth * structure.entry_cost[i],
                days=0.0,
                route="deposit",
            )
        )
    return out


def one_off_cost_share(structure: Structure, x0: FloatArray, x: FloatArray, path_yield: FloatArray) -> float:
    """Total one-off cost of x0 → x paid as the moves happen, as a share of the portfolio (not amortised)."""
    f = structure.subtree @ (x - x0)
    p, q = np.maximum(f, 0.0), np.maximum(-f, 0.0)
    exit_rate, _, _ = structure.exit_routes(path_yield)
    return float(structure.entry_cost @ p + exit_rate @ q)


def round_trip_cost_share(
    structure: Structure, x0: FloatArray, x: FloatArray, path_yield: FloatArray
) -> float:
    """The round trips x0 → x commits to, as a share of the portfolio (not amortised): each entry's cost plus the
    exit it implies. What the model charges (exits are then already paid for)."""
    p = np.maximum(structure.subtree @ (x - x0), 0.0)
    exit_rate, _, _ = structure.exit_routes(path_yield)
    return float((structure.entry_cost + exit_rate) @ p)
