"""Synthetic universes shaped like the real one, for property tests and benchmarks.

A root of idle ETH; liquid staking tokens on it, each with its own protocol node; restaking layers that take the
tokens (one venue per token × layer, exposed to the token's and the layer's node plus an operator-set node); and
liquid restaking tokens on ETH whose node names their layer as parent. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from optimizer.inputs import RiskNode, Universe, Venue, VenueKind, YieldComponent


def synthetic_universe(
    n_venues: int, n_nodes: int, seed: int = 0
) -> tuple[Universe, dict[str, dict[str, float]]]:
    """A universe with about `n_venues` venues and exactly `n_nodes` risk nodes, and yields for every venue.

    Node probabilities are scaled so that their sum stays near 0.2 a year whatever the node count (a universe with
    many nodes has many small ones): otherwise hundreds of 1 %-a-year nodes would put a third of the probability
    in the 3+-failure residual and every optimum would be idle ETH.
    """
    rng = np.random.default_rng(seed)
    scale = min(1.0, 20.0 / n_nodes)
    n_layers = max(1, n_nodes // 20)
    n_lst = max(1, n_nodes // 5)
    n_lrt = max(1, n_nodes // 5)
    n_ops = max(0, n_nodes - n_layers - n_lst - n_lrt - 1)
    nodes: list[RiskNode] = [RiskNode(id="ethereum", p=0.001 * scale, lgd=0.05)]
    layers = [f"layer{i}" for i in range(n_layers)]
    nodes += [
        RiskNode(id=layer, p=scale * float(rng.uniform(0.005, 0.02)), lgd=float(rng.uniform(0.1, 0.3)))
        for layer in layers
    ]
    lsts = [f"lst{i}" for i in range(n_lst)]
    nodes += [
        RiskNode(id=t, p=scale * float(rng.uniform(0.002, 0.01)), lgd=float(rng.uniform(0.1, 0.4)))
        for t in lsts
    ]
    lrts = [f"lrt{i}" for i in range(n_lrt)]
    nodes += [
        RiskNode(
            id=t,
            p=scale * float(rng.uniform(0.005, 0.03)),
            lgd=float(rng.uniform(0.1, 0.4)),
            parents=(layers[i % n_layers],),
        )
        for i, t in enumerate(lrts)
    ]
    ops = [f"ops{i}" for i in range(n_ops)]
    nodes += [
        RiskNode(id=o, p=scale * float(rng.uniform(0.002, 0.02)), lgd=float(rng.uniform(0.05, 0.2)))
        for o in ops
    ]

    venues: list[Venue] = [Venue(id="eth", kind=VenueKind.IDLE)]
    yields: dict[str, dict[str, float]] = {}
    base = YieldComponent(name="base")
    reward = YieldComponent(name="reward", haircut=0.5)
    for i, t in enumerate(lsts):
        vid = f"{t}-token"
        venues.append(
            Venue(
                id=vid,
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(base,),
                risk_nodes=(t, "ethereum"),
                exit_days=float(rng.integers(1, 8)),
                entry_cost=0.0005,
                exit_cost=0.0005,
                max_share=0.5,
            )
        )
        yields[vid] = {"base": float(rng.uniform(0.025, 0.035))}
        del i
    for _i, t in enumerate(lrts):
        vid = f"{t}-token"
        venues.append(
            Venue(
                id=vid,
                parent="eth",
                kind=VenueKind.LIQUID_RESTAKING,
                components=(base, reward),
                risk_nodes=(t, "ethereum"),
                exit_days=float(rng.integers(7, 22)),
                entry_cost=0.001,
                exit_cost=0.002,
                max_share=0.3,
            )
        )
        yields[vid] = {"base": float(rng.uniform(0.02, 0.032)), "reward": float(rng.uniform(0.0, 0.03))}
    remaining = max(0, n_venues - len(venues))
    for k in range(remaining):
        lst = lsts[k % n_lst]
        layer = layers[(k // n_lst) % n_layers]
        own = (layer,) + ((ops[k % n_ops],) if n_ops else ())
        vid = f"{layer}-{lst}-{k}"
        venues.append(
            Venue(
                id=vid,
                parent=f"{lst}-token",
                kind=VenueKind.RESTAKING,
                components=(reward,),
                risk_nodes=own,
                exit_days=14.0,
                entry_cost=0.0002,
                exit_cost=0.0002,
                max_share=0.2,
            )
        )
        yields[vid] = {"reward": float(rng.uniform(0.0, 0.04))}
    return Universe(venues=tuple(venues), nodes=tuple(nodes)), yields
