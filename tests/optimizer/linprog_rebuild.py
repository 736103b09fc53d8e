"""Rebuild a plan's LP from its recorded inputs with scipy.optimize.linprog: an independent formulation (dense
scenario losses, yields and costs recomputed from the raw inputs) to cross-check the optimal objective."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from optimizer import Plan
from tests.optimizer.invariants import dense_losses


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
    loss, probs = dense_losses(plan)
    exp_loss = loss.T @ probs
    amort = 365.0 / inp.limits.horizon_days
    # Round trips: an entry pays its cost plus the cheaper exit route (fee + days/365 × the path's yield).
    exit_rate = np.zeros(n)
    queued = np.zeros(n)
    for v in order:
        priced = sorted((r.fee + r.days / 365 * max(yields[idx[v]], 0.0), r.days) for r in venues[v].routes)
        exit_rate[idx[v]], days_taken = priced[0]
        queued[idx[v]] = 1.0 if days_taken > 0 else 0.0
    k_band = inp.limits.trade_cost_multiple
    c_in = (np.array([venues[v].entry_cost for v in order]) + exit_rate) * amort * k_band
    offset = np.zeros(n)
    for f in inp.in_flight:
        offset[idx[f.from_venue]] += f.amount_eth / inp.portfolio_eth
        offset[idx[f.to_venue]] -= f.amount_eth / inp.portfolio_eth
    if rec.queued and not any(rec.queued) and not any(rec.in_flight_offset):
        # the book was already past a limit: the plan optimised its target as if exits were instant
        queued[:] = 0.0
        offset[:] = 0.0
    weighted = np.flatnonzero(probs > 0)
    s = len(weighted)
    beta, lam = rec.cvar_beta, rec.risk_aversion
    # variables: x, p, q, t, e (n each), zeta, z (s); e = x + T (queued ∘ q) + offset is the exposure in transit
    nv = 5 * n + 1 + s
    cx, cp_, cq, ct, ce, cz0, cz = 0, n, 2 * n, 3 * n, 4 * n, 5 * n, 5 * n + 1
    c = np.zeros(nv)
    c[cx : cx + n] = -(yields - exp_loss)
    c[cp_ : cp_ + n] = c_in
    c[cz0] = lam
    c[cz:] = lam * probs[weighted] / (1 - beta)
    x0 = np.array(rec.x0)
    subtree = path.T
    eye = np.eye(n)
    a_eq = [np.concatenate([np.ones(n), np.zeros(nv - n)])]
    b_eq = [1.0]
    for r in range(n):
        row = np.zeros(nv)
        row[cx : cx + n] = subtree[r]
        row[cp_ + r] = -1.0
        row[cq + r] = 1.0
        a_eq.append(row)
        b_eq.append(subtree[r] @ x0)
    for r, v in enumerate(order):  # e_r − x_r − Σ_children-or-self T q = offset_r
        row = np.zeros(nv)
        row[ce + r] = 1.0
        row[cx + r] = -1.0
        if venues[v].parent is not None:
            row[cq + r] -= queued[r]
        for w in order:
            if venues[w].parent == v:
                row[cq + idx[w]] += queued[idx[w]]
        a_eq.append(row)
        b_eq.append(offset[r])
    ub_rows: list[np.ndarray] = []
    b_ub: list[float] = []

    def add(coef_e: np.ndarray, rhs: float, extra: dict[int, float] | None = None) -> None:
        row = np.zeros(nv)
        row[ce : ce + n] = coef_e
        for k, val in (extra or {}).items():
            row[k] += val
        ub_rows.append(row)
        b_ub.append(rhs)

    def add_x(coef_x: np.ndarray, rhs: float, extra: dict[int, float]) -> None:
        row = np.zeros(nv)
        row[cx : cx + n] = coef_x
        for k, val in extra.items():
            row[k] += val
        ub_rows.append(row)
        b_ub.append(rhs)

    for j, cap in zip(rec.node_order, rec.node_caps, strict=True):
        add(np.array([1.0 if j in e else 0.0 for e in rec.exposure]), cap)
    for kind, cap in rec.layer_caps.items():
        add(np.array([1.0 if str(venues[v].kind) == kind else 0.0 for v in order]), cap)
    days = np.array(rec.days_to_eth)
    for d, floor in rec.ladder:  # on e − offset: x with the plan's queued exits where they leave
        liquid = (days <= d + 1e-12).astype(float)
        add(-liquid, -floor - liquid @ offset)
    for k, sidx in enumerate(weighted):
        add(loss[sidx], 0.0, {cz0: -1.0, cz + k: -1.0})
    cvar_row = {cz0: 1.0} | {cz + k: probs[sidx] / (1 - beta) for k, sidx in enumerate(weighted)}
    add(np.zeros(n), rec.cvar_budget, cvar_row)
    for r in range(n):
        add_x(eye[r], x0[r], {ct + r: -1.0})
        add_x(-eye[r], -x0[r], {ct + r: -1.0})
    add(np.zeros(n), rec.max_turnover, {ct + r: 0.5 for r in range(n)})
    for v in inp.entry_blocked:  # closed to entries: its subtree may not grow (on x, where capital is headed)
        add_x(subtree[idx[v]], float(subtree[idx[v]] @ x0), {})
    for sidx, sc in enumerate(rec.scenarios):
        if sc.max_loss is not None:
            add(loss[sidx], sc.max_loss)
    bounds = (
        list(zip(rec.lower, rec.upper, strict=True))
        + [(0, None)] * (3 * n)
        + [(None, None)] * n
        + [(None, None)]
        + [(0, None)] * s
    )
    res = linprog(
        c,
        A_ub=sp.csr_matrix(np.array(ub_rows)),
        b_ub=b_ub,
        A_eq=sp.csr_matrix(np.array(a_eq)),
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    assert res.status == 0, res.message
    return float(-res.fun)
