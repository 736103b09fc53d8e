"""Every limit re-checked from a plan's recorded problem, with numpy only (no optimizer code).

The enumerated scenarios are rebuilt here from the recorded rule (every set of up to `depth` initiating nodes), by
an implementation of their own; expected loss is recomputed exactly per venue from the definition, and the residual
the plan recorded is checked against it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from optimizer import Plan

TOL = 1e-7


@dataclass(frozen=True)
class Rebuilt:
    """Scenario losses L[s, n] with probabilities, and the exact expected loss and residual per venue."""

    loss: np.ndarray
    probs: np.ndarray
    expected_loss: np.ndarray  # exact, stress included
    residual: np.ndarray  # b: the expected loss of the combinations not enumerated


def _closure(plan: Plan) -> np.ndarray:
    """fails[i, k]: node k fails when node i does (k names i as a parent, transitively)."""
    nodes = plan.problem.inputs.universe.nodes
    ids = plan.problem.node_order
    idx = {n: i for i, n in enumerate(ids)}
    fails = np.eye(len(ids), dtype=bool)
    for _ in ids:
        for n in nodes:
            for parent in n.parents:
                fails[:, idx[n.id]] |= fails[:, idx[parent]]
    return fails


def _venue_loss(failed: np.ndarray, lgd: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Loss of each venue (columns) for each failed-node set (rows): 1 − Π over exposed failed nodes (1 − lgd)."""
    with np.errstate(divide="ignore"):
        log_keep = np.where(failed, np.log1p(-np.minimum(lgd, 1.0)), 0.0)
    finite = np.where(np.isfinite(log_keep), log_keep, 0.0)
    wiped = (~np.isfinite(log_keep)).astype(float) @ exposure > 0
    keep = np.exp(finite @ exposure) * ~wiped
    out: np.ndarray = 1.0 - keep
    return out


def rebuild(plan: Plan) -> Rebuilt:
    rec = plan.problem
    ids = rec.node_order
    nodes = {n.id: n for n in rec.inputs.universe.nodes}
    p = np.array([nodes[j].p for j in ids])
    lgd = np.array([nodes[j].lgd for j in ids])
    exposure = np.array([[1.0 if j in e else 0.0 for e in rec.exposure] for j in ids]).reshape(
        len(ids), len(rec.exposure)
    )
    fails = _closure(plan)
    n_venues = len(rec.venue_order)
    rows: list[np.ndarray] = []
    probs: list[float] = []
    el = np.zeros(n_venues)
    residual = np.zeros(n_venues)
    enum = rec.enumeration
    if enum is not None:
        certain = [i for i in range(len(ids)) if p[i] >= 1.0]
        can = [i for i in range(len(ids)) if 0.0 < p[i] < 1.0]
        for k in range(enum.depth + 1):
            combos = (
                np.array(list(itertools.combinations(can, k)), dtype=int).reshape(-1, k)
                if k
                else np.zeros((1, 0), dtype=int)
            )
            init = np.zeros((combos.shape[0], len(ids)), dtype=bool)
            init[:, certain] = True
            if k:
                np.put_along_axis(init, combos, True, axis=1)
            prob = np.prod(np.where(init, p, 1.0 - p), axis=1) * enum.scale
            failed = (init.astype(float) @ fails.astype(float)) > 0
            rows.append(_venue_loss(failed, lgd, exposure))
            probs.extend(prob.tolist())
        assert len(probs) == enum.scenarios
        # Exact expected loss per venue from the subsets of its own exposure set (the rest does not matter to it).
        for n, e in enumerate(rec.exposure):
            own = [ids.index(j) for j in e]
            total = 0.0
            for mask in range(1 << len(own)):
                init = np.zeros(len(ids), dtype=bool)
                for b, j in enumerate(own):
                    init[j] = bool(mask >> b & 1)
                pr = float(np.prod(np.where(init[own], p[own], 1.0 - p[own])))
                failed = (init.astype(float) @ fails.astype(float)) > 0
                total += pr * float(_venue_loss(failed[None, :], lgd, exposure[:, [n]])[0, 0])
            el[n] = total * enum.scale
        enumerated = np.vstack(rows).T @ np.array(probs) if rows else np.zeros(n_venues)
        residual = np.array(enum.residual_expected_loss)
        # The recorded residual is the exact expected loss left out of the enumeration.
        np.testing.assert_allclose(residual, np.maximum(el - enumerated, 0.0), rtol=1e-6, atol=1e-12)
        assert np.all(residual >= 0.0)
    for sc in rec.scenarios:
        failed = np.array([j in sc.failed for j in ids], dtype=bool)
        g = np.array([sc.lgd.get(j, lgd[i]) for i, j in enumerate(ids)])
        rows.append(_venue_loss(failed[None, :], g, exposure))
        probs.append(sc.probability)
        el += rows[-1][0] * sc.probability
    loss = np.vstack(rows) if rows else np.zeros((0, n_venues))
    return Rebuilt(loss=loss, probs=np.array(probs), expected_loss=el, residual=residual)


def dense_losses(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """(L[s, n], π) rebuilt from the recorded enumeration rule, stress scenarios and exposures."""
    r = rebuild(plan)
    return r.loss, r.probs


def cvar(losses: np.ndarray, probs: np.ndarray, beta: float) -> float:
    """min over ζ ≥ 0 in the support (and 0) of ζ + Σ π (L − ζ)+/(1 − β): exact for a discrete distribution of
    non-negative losses, also when the probabilities sum to less than one (a residual left out)."""
    support = np.unique(np.concatenate([losses, [0.0]]))
    return float(min(z + probs @ np.maximum(losses - z, 0.0) / (1.0 - beta) for z in support))


def plan_cvar(plan: Plan, x: np.ndarray, rebuilt: Rebuilt | None = None) -> float:
    """The plan's CVaR bound for x: the rebuilt scenarios' tail plus the residual's expected loss / (1 − β)."""
    r = rebuilt or rebuild(plan)
    beta = plan.problem.cvar_beta
    weighted = r.probs > 0
    return cvar(r.loss[weighted] @ x, r.probs[weighted], beta) + float(r.residual @ x) / (1.0 - beta)


def today(plan: Plan) -> np.ndarray:
    """Today's exposure: x0 with the in-flight capital where it left (the recorded offset)."""
    rec = plan.problem
    x0 = np.array(rec.x0)
    return x0 + np.array(rec.in_flight_offset) if rec.in_flight_offset else x0


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
    x = target  # every risk limit holds on the target: a plan's deposits wait until its exits land
    node_share = {j: sum(x[n] for n, e in enumerate(rec.exposure) if j in e) for j in rec.node_order}
    for j, cap in zip(rec.node_order, rec.node_caps, strict=True):
        assert node_share[j] <= cap + TOL, (j, node_share[j], cap)
    kinds = {v.id: str(v.kind) for v in rec.inputs.universe.venues}
    for kind, cap in rec.layer_caps.items():
        assert sum(x[n] for n, v in enumerate(rec.venue_order) if kinds[v] == kind) <= cap + TOL
    days = np.array(rec.days_to_eth)
    counted = target  # on the target too: deposits wait, so no state mixes queued exits with what they buy
    for d, floor in rec.ladder:
        assert counted[days <= d + 1e-12].sum() >= floor - TOL, (d, floor)
    r = rebuild(plan)
    np.testing.assert_allclose(rec.expected_loss, r.expected_loss, rtol=1e-9, atol=1e-15)
    assert plan_cvar(plan, x, r) <= rec.cvar_budget + TOL
    stress = list(rec.scenarios)
    offset = r.loss.shape[0] - len(stress)
    for s, sc in enumerate(stress):
        if sc.max_loss is not None:
            assert r.loss[offset + s] @ x <= sc.max_loss + TOL
    if plan.status == "rebalance":
        assert 0.5 * np.abs(target - x0).sum() <= rec.max_turnover + TOL
    venues = {v.id: v for v in rec.inputs.universe.venues}
    for blocked in {
        **rec.inputs.exit_only,
        **rec.inputs.entry_blocked,
    }:  # nothing enters a venue closed to entries, nor its subtree
        below = [n for n, v in enumerate(rec.venue_order) if _under(v, blocked, venues)]
        assert target[below].sum() <= x0[below].sum() + TOL, blocked
