"""Numpy evaluation of an allocation: metrics, move costs, the objective, and every limit re-checked.

Independent of cvxpy: the solver's answer is trusted only after `violations` finds nothing.
"""

from __future__ import annotations

import numpy as np

from optimizer.forced_sale import rung_losses
from optimizer.plan import Metrics
from optimizer.problem import ModelShape, ParameterValues
from optimizer.scenarios import ScenarioLosses
from optimizer.structure import FloatArray, Structure

TOLERANCE = 1e-7


def flows(structure: Structure, x0: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(p, q): capital entering and leaving each subtree to go from x0 to x."""
    f = structure.subtree @ (x - x0)
    return np.maximum(f, 0.0), np.maximum(-f, 0.0)


def amortised_cost(structure: Structure, values: ParameterValues, x: FloatArray) -> float:
    """Move costs of x0 → x as a yearly rate (what the LP charges)."""
    p, q = flows(structure, values.x0, x)
    return float(values.c_in @ p + values.c_out @ q)


def metrics(
    losses: ScenarioLosses,
    values: ParameterValues,
    beta: float,
    x: FloatArray,
    exposure: FloatArray | None = None,
) -> Metrics:
    """Yield and expected loss of where the capital is headed (x); CVaR and stress losses of where it is exposed:
    x itself for a target (a plan's deposits wait until its exits land), or `exposure` when given (today's book:
    `ParameterValues.today`, in-flight capital where it left)."""
    e = x if exposure is None else exposure
    scen = losses.losses(e)
    cvar = losses.cvar(e, beta, scen)
    net = float(values.yields @ x)
    exp_loss = float(values.expected_loss @ x)
    stress = {
        s.name.removeprefix("stress: "): float(scen[i])
        for i, s in losses.named_stress
        if s.name.startswith("stress: ")
    }
    return Metrics(
        net_yield=net,
        expected_loss=exp_loss,
        cvar=cvar,
        risk_adjusted=net - exp_loss - values.risk_aversion * cvar,
        stress_losses=stress,
    )


def violations(
    structure: Structure,
    losses: ScenarioLosses,
    shape: ModelShape,
    values: ParameterValues,
    x: FloatArray,
    *,
    check_turnover: bool = True,
    tol: float = TOLERANCE,
    exposure: FloatArray | None = None,
) -> list[str]:
    """Every limit x breaks by more than `tol`, in words. Shares, entries and turnover are checked on x; node caps,
    layer caps, CVaR and stress limits on where the capital is exposed: x itself for a target (a plan's deposits
    wait until its exits land, so no state of a rebalance is riskier than today's book or the target), or
    `exposure` when given (today's book, in-flight capital where it left); the ladder on x (in-flight capital is in
    its floors)."""
    out: list[str] = []
    e = x if exposure is None else exposure
    ids = structure.venue_ids
    if abs(x.sum() - 1.0) > tol:
        out.append(f"weights sum to {x.sum():.9f}, not 1")
    for i in np.flatnonzero(x < values.lo - tol):
        out.append(f"{ids[i]}: share {x[i]:.6f} below its minimum {values.lo[i]:.6f}")
    for i in np.flatnonzero(x > values.hi + tol):
        out.append(f"{ids[i]}: share {x[i]:.6f} above its maximum {values.hi[i]:.6f}")
    if values.entry_room is not None:
        inflow = structure.subtree @ (x - values.x0)
        for i in np.flatnonzero(inflow > values.entry_room + tol):
            out.append(f"{ids[i]}: {inflow[i]:.6f} enters it, but it is closed to entries")
    if values.exit_room is not None:
        outflow = structure.subtree @ (values.x0 - x)
        for i in np.flatnonzero(outflow > values.exit_room + tol):
            out.append(f"{ids[i]}: {outflow[i]:.6f} leaves it within its holding period")
    exposure = structure.exposure @ e
    for j in np.flatnonzero(exposure > values.node_cap + tol):
        out.append(
            f"risk node {structure.node_ids[j]}: exposure {exposure[j]:.6f} above its cap {values.node_cap[j]:.6f}"
        )
    if shape.layer_kinds:
        held = structure.kind_matrix(shape.layer_kinds) @ e
        for k in np.flatnonzero(held > values.layer_cap + tol):
            out.append(
                f"layer {shape.layer_kinds[k]}: share {held[k]:.6f} above its cap {values.layer_cap[k]:.6f}"
            )
    if shape.ladder_days:
        liquid = (
            structure.ladder_matrix(shape.ladder_days) @ x
        )  # on the target too (`limits.liquidity_ladder`)
        for r in np.flatnonzero(liquid < values.ladder_min - tol):
            out.append(
                f"liquidity: {liquid[r]:.6f} back within {shape.ladder_days[r]:g} d, "
                f"below the floor {values.ladder_min[r]:.6f}"
            )
    if (
        shape.forced_sale
        and shape.ladder_days
        and values.sale_rate is not None
        and values.sale_floor is not None
    ):
        loss, short = rung_losses(structure.universe, x, values.sale_rate, values.sale_floor)
        for rung, days in enumerate(shape.ladder_days):
            if short[rung] > tol:
                out.append(
                    f"forced sale: {short[rung]:.6f} of the {days:g}-day floor "
                    f"{values.sale_floor[rung]:.6f} can be raised neither from idle ETH nor by a market sale"
                )
            elif loss[rung] > values.sale_budget + tol:
                out.append(
                    f"forced sale: meeting the {days:g}-day floor by market sales loses "
                    f"{loss[rung]:.6f}, above the budget {values.sale_budget:.6f}"
                )
    scen = losses.losses(e)
    cvar = losses.cvar(e, shape.cvar_beta, scen)
    if cvar > values.cvar_budget + tol:
        out.append(f"CVaR {cvar:.6f} above the budget {values.cvar_budget:.6f}")
    for limit, s in zip(values.stress_max, losses.stress_limited, strict=True):
        if scen[s] > limit + tol:
            out.append(f"{losses.scenarios[s].name}: loss {scen[s]:.6f} above its max {limit:.6f}")
    if check_turnover:
        turn = 0.5 * float(np.abs(x - values.x0).sum())
        if turn > values.max_turnover + tol:
            out.append(f"turnover {turn:.6f} above the cap {values.max_turnover:.6f}")
    return out


def clean(x: FloatArray) -> FloatArray:
    """Drop solver dust (tiny negatives and near-zeros) and renormalise."""
    kept: FloatArray = np.where(x < 1e-10, 0.0, x)
    out: FloatArray = kept / kept.sum() + 0.0
    return out
