"""Say which limit cannot be met, and the least value that could be, instead of a bare "infeasible".

First cheap numpy pre-checks (shares that cannot sum to one, a liquidity floor no venue can serve), then an elastic
LP: every operator limit gets a non-negative slack and the total slack is minimised. A positive slack names a limit
and how far it must move; when the CVaR budget alone gives, its slack is exactly min-CVaR minus the budget.
"""

from __future__ import annotations

import numpy as np

from optimizer.plan import Diagnosis
from optimizer.problem import SLACK_FREE, AllocationModel, ModelShape, ParameterValues
from optimizer.structure import Structure


def prechecks(structure: Structure, shape: ModelShape, values: ParameterValues) -> list[Diagnosis]:
    """Infeasibility visible without a solver."""
    out: list[Diagnosis] = []
    hi_sum, lo_sum = float(values.hi.sum()), float(values.lo.sum())
    if hi_sum < 1.0 - 1e-9:
        out.append(
            Diagnosis(
                limit="max_share",
                subject="all venues",
                configured=hi_sum,
                least_feasible=1.0,
                message=f"venue max shares (held venues at their weight) sum to {hi_sum:.4f} < 1; "
                f"raise them by {1.0 - hi_sum:.4f} in total",
            )
        )
    if lo_sum > 1.0 + 1e-9:
        out.append(
            Diagnosis(
                limit="min_share",
                subject="all venues",
                configured=lo_sum,
                least_feasible=1.0,
                message=f"venue min shares sum to {lo_sum:.4f} > 1; lower them by {lo_sum - 1.0:.4f} in total",
            )
        )
    if shape.ladder_days:
        reach = structure.ladder_matrix(shape.ladder_days) @ values.hi
        for r, days in enumerate(shape.ladder_days):
            if values.ladder_min[r] > reach[r] + 1e-9:
                out.append(
                    Diagnosis(
                        limit="ladder",
                        subject=f"{days:g} d",
                        configured=float(values.ladder_min[r]),
                        least_feasible=float(min(reach[r], 1.0)),
                        message=f"at most {reach[r]:.4f} of the portfolio can be back as ETH within {days:g} days "
                        f"(venue max shares and exit times), but the floor is {values.ladder_min[r]:.4f}",
                    )
                )
    return out


def elastic(
    model: AllocationModel, values: ParameterValues, solvers: tuple[str, ...]
) -> tuple[list[Diagnosis], str | None]:
    """Relax every limit by the least total amount; returns the diagnoses, or the reason it could not say.

    The values of one elastic solve hold together. Where it names several limits, each one's least value with every
    other limit as configured comes from another solve in which only that limit may give (its slack cap freed, the
    others' set to 0), or is None when that limit alone cannot make the problem feasible.
    """
    relaxed = AllocationModel(model.universe, model.shape, elastic=True, losses=model.losses)
    result = relaxed.solve(values, solvers)
    if not result.ok:
        return (
            [],
            f"even with every limit relaxed the problem is {result.status} (check min shares and holdings)",
        )
    st, shape = model.structure, model.shape
    subjects: dict[str, tuple[str, ...]] = {
        "node_cap": st.node_ids,
        "layer_cap": tuple(str(k) for k in shape.layer_kinds),
        "ladder": tuple(f"{d:g} d" for d in shape.ladder_days),
        "stress_max_loss": tuple(model.scenarios[i].name for i in model.losses.stress_limited),
        "cvar_budget": ("portfolio",),
        "turnover": ("portfolio",),
        "forced_sale": ("portfolio",),
    }
    configured: dict[str, np.ndarray] = {
        "node_cap": values.node_cap,
        "layer_cap": values.layer_cap,
        "ladder": values.ladder_min,
        "stress_max_loss": values.stress_max,
        "cvar_budget": np.array([values.cvar_budget]),
        "turnover": np.array([values.max_turnover]),
        "forced_sale": np.array([values.sale_budget]),
    }
    what = {
        "cvar_budget": "smallest feasible CVaR budget",
        "ladder": "largest feasible liquidity floor",
        "turnover": "least turnover that can reach the limits",
        "forced_sale": "least forced-sale budget",
    }
    found = [
        (name, int(k), float(slack[k]))
        for name, slack in relaxed.slack_values().items()
        for k in np.flatnonzero(slack > 1e-8)
    ]

    def least(name: str, k: int, slack: float) -> float:
        return float(configured[name][k]) + (-1.0 if name == "ladder" else 1.0) * slack

    together = ", ".join(f"{name} ({subjects[name][k]}) {least(name, k, sl):.6f}" for name, k, sl in found)
    out: list[Diagnosis] = []
    for name, k, slack in found:
        conf = float(configured[name][k])
        joint = least(name, k, slack)
        label = what.get(name, "least feasible value")
        if len(found) == 1:
            out.append(
                Diagnosis(
                    limit=name,
                    subject=subjects[name][k],
                    configured=conf,
                    least_feasible=joint,
                    least_alone=joint,
                    message=f"{name} ({subjects[name][k]}) cannot be met: configured {conf:.6f}, "
                    f"{label} given the other limits is {joint:.6f}",
                )
            )
            continue
        alone = _alone(relaxed, values, solvers, name, k)
        alone_value = None if alone is None else least(name, k, alone)
        tail = (
            f"with every other limit as configured, the {label} is {alone_value:.6f}"
            if alone_value is not None
            else "no value of this limit alone makes the problem feasible with the others as configured"
        )
        out.append(
            Diagnosis(
                limit=name,
                subject=subjects[name][k],
                configured=conf,
                least_feasible=joint,
                least_alone=alone_value,
                message=f"{name} ({subjects[name][k]}) cannot be met: configured {conf:.6f}; {joint:.6f} holds "
                f"together with the other values named ({together}); {tail}",
            )
        )
    return out, None


def _alone(
    relaxed: AllocationModel, values: ParameterValues, solvers: tuple[str, ...], name: str, k: int
) -> float | None:
    """The least slack of limit (name, k) with every other limit held as configured, or None if none works."""
    saved = {n: np.array(c.value, dtype=float, copy=True) for n, c in relaxed.slack_caps.items()}
    try:
        for n, cap in relaxed.slack_caps.items():
            only = np.zeros(cap.shape)
            if n == name:
                if only.ndim == 0:
                    only = np.array(SLACK_FREE)
                else:
                    only[k] = SLACK_FREE
            cap.value = only
        res = relaxed.solve(values, solvers)
        if not res.ok:
            return None
        return float(np.atleast_1d(relaxed.slack_values()[name])[k if np.ndim(saved[name]) else 0])
    finally:
        for n, cap in relaxed.slack_caps.items():
            cap.value = saved[n]
