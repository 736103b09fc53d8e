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


def exposed(plan: Plan, x: np.ndarray, *, in_flight: bool = True) -> np.ndarray:
    """Where x is exposed while exits are in transit: queued exits (from x0) back at the venue they leave, plus the
    in-flight capital's offset; rebuilt from the recorded tree, queue flags and offset."""
    rec = plan.problem
    venues = {v.id: v for v in rec.inputs.universe.venues}
    order = rec.venue_order
    idx = {v: i for i, v in enumerate(order)}
    n = len(order)
    x0 = np.array(rec.x0)
    delta = x - x0
    queued = np.array(rec.queued) if rec.queued else np.zeros(n)
    e = x + (np.array(rec.in_flight_offset) if rec.in_flight_offset and in_flight else np.zeros(n))
    for v in order:
        below = [w for w in order if _under(w, v, venues)]
        leaving = max(-sum(delta[idx[w]] for w in below), 0.0)
        parent = venues[v].parent
        if parent is not None and queued[idx[v]] > 0:
            e[idx[v]] += leaving
            e[idx[parent]] -= leaving
    return e


def _under(w: str, v: str, venues: dict) -> bool:  # type: ignore[type-arg]
    a: str | None = w
    while a is not None:
        if a == v:
            return True
        a = venues[a].parent
    return False


def check_invariants(plan: Plan) -> None:
    rec = plan.problem
    target = np.array([plan.target_weights[v] for v in rec.venue_order])
    x0 = np.array(rec.x0)
    assert abs(target.sum() - 1.0) <= TOL
    assert np.all(target >= np.array(rec.lower) - TOL)
    assert np.all(target <= np.array(rec.upper) + TOL)
    x = exposed(plan, target)  # every risk limit holds on the exposure while exits are in transit
    node_share = {j: sum(x[n] for n, e in enumerate(rec.exposure) if j in e) for j in rec.node_order}
    for j, cap in zip(rec.node_order, rec.node_caps, strict=True):
        assert node_share[j] <= cap + TOL, (j, node_share[j], cap)
    kinds = {v.id: str(v.kind) for v in rec.inputs.universe.venues}
    for kind, cap in rec.layer_caps.items():
        assert sum(x[n] for n, v in enumerate(rec.venue_order) if kinds[v] == kind) <= cap + TOL
    days = np.array(rec.days_to_eth)
    liquid = exposed(plan, target, in_flight=False)  # the recorded floors count the in-flight capital
    for d, floor in rec.ladder:
        assert liquid[days <= d + 1e-12].sum() >= floor - TOL, (d, floor)
    loss, probs = dense_losses(plan)
    weighted = probs > 0
    assert cvar(loss[weighted] @ x, probs[weighted], rec.cvar_beta) <= rec.cvar_budget + TOL
    for s, sc in enumerate(rec.scenarios):
        if sc.max_loss is not None:
            assert loss[s] @ x <= sc.max_loss + TOL
    if plan.status == "rebalance":
        assert 0.5 * np.abs(target - x0).sum() <= rec.max_turnover + TOL
    venues = {v.id: v for v in rec.inputs.universe.venues}
    for blocked in rec.inputs.entry_blocked:  # nothing enters a venue closed to entries, nor its subtree
        below = [n for n, v in enumerate(rec.venue_order) if _under(v, blocked, venues)]
        assert target[below].sum() <= x0[below].sum() + TOL, blocked
