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
    own_yield: FloatArray,
) -> list[Move]:
    """The steps from x0 to x, with amounts in ETH and the one-off cost of each (fees plus yield forgone while
    waiting in the exit queue)."""
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
        wait = structure.exit_days[i] / 365.0 * max(float(own_yield[i]), 0.0)
        out.append(
            Move(
                step=len(out) + 1,
                action="withdraw",
                venue=ids[i],
                from_venue=ids[i],
                to_venue=ids[parent],
                amount_eth=share * portfolio_eth,
                share=share,
                cost_eth=share * portfolio_eth * (structure.exit_cost[i] + wait),
                days=float(structure.exit_days[i]),
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
            )
        )
    return out


def one_off_cost_share(structure: Structure, x0: FloatArray, x: FloatArray, own_yield: FloatArray) -> float:
    """Total one-off cost of x0 → x as a share of the portfolio (not amortised)."""
    f = structure.subtree @ (x - x0)
    p, q = np.maximum(f, 0.0), np.maximum(-f, 0.0)
    exit_rate = structure.exit_cost + structure.exit_days / 365.0 * np.maximum(own_yield, 0.0)
    return float(structure.entry_cost @ p + exit_rate @ q)
