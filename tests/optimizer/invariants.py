"""Every limit re-checked from a plan's recorded problem, with numpy only (no optimizer code)."""

from __future__ import annotations

import numpy as np

from optimizer import Plan

TOL = 1e-7


def dense_losses(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """(L[s, n], π) rebuilt from the recorded scenarios and exposures."""
    rec = plan.problem
    exposure = [set(e) for e in rec.exposure]
    loss = np.zeros((len(rec.scenarios), len(rec.venue_order)))
    for s, sc in enumerate(rec.scenarios):
        for n, nodes in enumerate(exposure):
            keep = 1.0
            for j in nodes & set(sc.failed):
                keep *= 1.0 - sc.lgd[j]
            loss[s, n] = 1.0 - keep
    return loss, np.array([sc.probability for sc in rec.scenarios])


def cvar(losses: np.ndarray, probs: np.ndarray, beta: float) -> float:
    """min over ζ in the support of ζ + E[(L − ζ)+]/(1 − β): exact for a discrete distribution."""
    return min(z + probs @ np.maximum(losses - z, 0.0) / (1.0 - beta) for z in np.unique(losses))


def check_invariants(plan: Plan) -> None:
    rec = plan.problem
    x = np.array([plan.target_weights[v] for v in rec.venue_order])
    x0 = np.array(rec.x0)
    assert abs(x.sum() - 1.0) <= TOL
    assert np.all(x >= np.array(rec.lower) - TOL)
    assert np.all(x <= np.array(rec.upper) + TOL)
    node_share = {j: sum(x[n] for n, e in enumerate(rec.exposure) if j in e) for j in rec.node_order}
    for j, cap in zip(rec.node_order, rec.node_caps, strict=True):
        assert node_share[j] <= cap + TOL, (j, node_share[j], cap)
    kinds = {v.id: str(v.kind) for v in rec.inputs.universe.venues}
    for kind, cap in rec.layer_caps.items():
        assert sum(x[n] for n, v in enumerate(rec.venue_order) if kinds[v] == kind) <= cap + TOL
    days = np.array(rec.days_to_eth)
    for d, floor in rec.ladder:
        assert x[days <= d + 1e-12].sum() >= floor - TOL, (d, floor)
    loss, probs = dense_losses(plan)
    weighted = probs > 0
    assert cvar(loss[weighted] @ x, probs[weighted], rec.cvar_beta) <= rec.cvar_budget + TOL
    for s, sc in enumerate(rec.scenarios):
        if sc.max_loss is not None:
            assert loss[s] @ x <= sc.max_loss + TOL
    if plan.status == "rebalance":
        assert 0.5 * np.abs(x - x0).sum() <= rec.max_turnover + TOL
    parent = {v.id: v.parent for v in rec.inputs.universe.venues}
    for blocked in rec.inputs.entry_blocked:  # nothing enters a venue closed to entries, nor its subtree
        below = [n for n, v in enumerate(rec.venue_order) if _under(v, blocked, parent)]
        assert x[below].sum() <= x0[below].sum() + TOL, blocked


def _under(venue: str | None, ancestor: str, parent: dict[str, str | None]) -> bool:
    while venue is not None:
        if venue == ancestor:
            return True
        venue = parent[venue]
    return False
