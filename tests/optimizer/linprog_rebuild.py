"""Rebuild a plan's LP from its recorded inputs with scipy.optimize.linprog: an independent formulation (scenario
losses rebuilt from the recorded enumeration rule, yields and costs recomputed from the raw inputs, CVaR in
Rockafellar–Uryasev form plus the residual's expected loss / (1 − β)) to cross-check the optimal objective."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from optimizer import Plan
from tests.optimizer.invariants import rebuild


def rebuild_objective(plan: Plan) -> float:
    rec = plan.problem
    inp = rec.inputs
    venues = {v.id: v for v in inp.universe.venues}
    order = rec.venue_order
    n = len(order)
    idx = {v: i for i, v in enumerate(order)}
    path = np.zeros((n, n))
    for v in order:
        a: str | None = v
        while a is not None:
            path[idx[v], idx[a]] = 1.0
            a = venues[a].parent
    own = np.zeros(n)
    missing = np.zeros(n, dtype=bool)
    for v in order:
        for c in venues[v].components:
            if c.name in inp.yields.get(v, {}):
                own[idx[v]] += (1 - c.haircut) * inp.yields[v][c.name]
            else:
                missing[idx[v]] = True
    yields = path @ own
    yields[(path @ missing) > 0] = 0.0
    r = rebuild(plan)
    loss, probs = r.loss, r.probs
    amort = 365.0 / inp.limits.horizon_days
    # Round trips: an entry pays its cost plus the cheaper exit route (fee + days/365 × the path's yield).
    exit_rate = np.zeros(n)
    queued = np.zeros(n)
    for v in order:
        priced = sorted(
            (rt.fee + rt.days / 365 * max(yields[idx[v]], 0.0), rt.days) for rt in venues[v].routes
        )
        exit_rate[idx[v]], days_taken = priced[0]
        queued[idx[v]] = 1.0 if days_taken > 0 else 0.0
    k_band = inp.limits.trade_cost_multiple
    c_in = (np.array([venues[v].entry_cost for v in order]) + exit_rate) * amort * k_band
    c_in = c_in + np.array([inp.entry_discount.get(v, 0.0) for v in order])  # what an entry does not count on
    # The ladder holds on the target: a plan's deposits wait until its exits land, so no state counts its queued
    # exits where they leave while spending their proceeds (`optimizer.limits.liquidity_ladder`). e = x.
    queued[:] = 0.0
    weighted = np.flatnonzero(probs > 0)
    s = len(weighted)
    beta, lam = rec.cvar_beta, rec.risk_aversion
    residual = r.residual / (1 - beta)
    # variables: x, p, q, t, e (n each), zeta, z (s); every risk limit and CVaR (with the residual) are written on
    # x, the target (a plan's deposits wait until its exits land); e = x + T (queued ∘ q) is what the ladder counts:
    # the plan's queued exits where they leave
    nv = 5 * n + 1 + s
    cx, cp_, cq, ct, ce, cz0, cz = 0, n, 2 * n, 3 * n, 4 * n, 5 * n, 5 * n + 1
    c = np.zeros(nv)
    c[cx : cx + n] = -(yields - r.expected_loss)
    c[cx : cx + n] += lam * residual
    c[cp_ : cp_ + n] = c_in
    c[cz0] = lam
    c[cz:] = lam * probs[weighted] / (1 - beta)
    x0 = np.array(rec.x0)
    subtree = path.T
    a_eq = [np.concatenate([np.ones(n), np.zeros(nv - n)])]
    b_eq = [1.0]
    for row_i in range(n):
        row = np.zeros(nv)
        row[cx : cx + n] = subtree[row_i]
        row[cp_ + row_i] = -1.0
        row[cq + row_i] = 1.0
        a_eq.append(row)
        b_eq.append(subtree[row_i] @ x0)
    for row_i, v in enumerate(order):  # e_r − x_r − Σ_children-or-self T q = 0
        row = np.zeros(nv)
        row[ce + row_i] = 1.0
        row[cx + row_i] = -1.0
        if venues[v].parent is not None:
            row[cq + row_i] -= queued[row_i]
        for w in order:
            if venues[w].parent == v:
                row[cq + idx[w]] += queued[idx[w]]
        a_eq.append(row)
        b_eq.append(0.0)
    blocks: list[sp.spmatrix] = []
    b_ub: list[float] = []

    def add_on(col: int, coef: np.ndarray, rhs: float, extra: dict[int, float] | None = None) -> None:
        row = np.zeros(nv)
        row[col : col + n] = coef
        for k, val in (extra or {}).items():
            row[k] += val
        blocks.append(sp.csr_matrix(row))
        b_ub.append(rhs)

    def add(coef_e: np.ndarray, rhs: float, extra: dict[int, float] | None = None) -> None:
        add_on(ce, coef_e, rhs, extra)

    def add_x(coef_x: np.ndarray, rhs: float, extra: dict[int, float] | None = None) -> None:
        add_on(cx, coef_x, rhs, extra)

    for j, cap in zip(rec.node_order, rec.node_caps, strict=True):
        add_x(np.array([1.0 if j in e else 0.0 for e in rec.exposure]), cap)
    for kind, cap in rec.layer_caps.items():
        add_x(np.array([1.0 if str(venues[v].kind) == kind else 0.0 for v in order]), cap)
    days = np.array(rec.days_to_eth)
    for d, floor in rec.ladder:  # on e: x with the plan's queued exits where they leave
        liquid = (days <= d + 1e-12).astype(float)
        add(-liquid, -floor)
    # scenario rows: L_s x − ζ − z_s ≤ 0
    if s:
        blocks.append(
            sp.hstack(
                [
                    sp.csr_matrix(loss[weighted]),
                    sp.csr_matrix((s, 4 * n)),
                    sp.csr_matrix(-np.ones((s, 1))),
                    -sp.identity(s, format="csr"),
                ],
                format="csr",
            )
        )
        b_ub.extend([0.0] * s)
    cvar_row = {cz0: 1.0} | {cz + k: probs[sidx] / (1 - beta) for k, sidx in enumerate(weighted)}
    add_x(residual, rec.cvar_budget, cvar_row)
    eye = np.eye(n)
    for row_i in range(n):
        add_x(eye[row_i], x0[row_i], {ct + row_i: -1.0})
        add_x(-eye[row_i], -x0[row_i], {ct + row_i: -1.0})
    add_x(np.zeros(n), rec.max_turnover, {ct + k: 0.5 for k in range(n)})
    for v in {
        **inp.exit_only,
        **inp.entry_blocked,
    }:  # closed to entries: its subtree may not grow (on x, where capital is headed)
        add_x(subtree[idx[v]], float(subtree[idx[v]] @ x0))
    stress_offset = loss.shape[0] - len(rec.scenarios)
    for k, sc in enumerate(rec.scenarios):
        if sc.max_loss is not None:
            add_x(loss[stress_offset + k], sc.max_loss)
    bounds = (
        list(zip(rec.lower, rec.upper, strict=True))
        + [(0, None)] * (3 * n)
        + [(None, None)] * n
        + [(0, None)]
        + [(0, None)] * s
    )
    res = linprog(
        c,
        A_ub=sp.vstack(blocks, format="csr"),
        b_ub=b_ub,
        A_eq=sp.csr_matrix(np.array(a_eq)),
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    assert res.status == 0, res.message
    return float(-res.fun)
