"""How much a plan hangs on its priors: re-solve with each risk node's p and lgd halved and doubled, and the CVaR
budget one percentage point tighter and looser, and report how the target moves.

Every variant is the same `optimize` call on the plan's recorded inputs with one number changed. The priors are
parameters of the compiled model (`optimizer.retarget`): every variant, a prior's or the budget's, is a warm re-solve
of the one model compiled for the base. The base is re-solved too, so every difference comes from the
one change, not from rounding in a stored plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from optimizer import OptimizationInputs, Plan
from optimizer.optimize import ModelCache, optimize
from optimizer.retarget import RetargetingCache

FACTORS = (0.5, 2.0)
BUDGET_STEP = 0.01


@dataclass(frozen=True)
class Variant:
    """One re-solve: what changed, the target's largest weight change against the base, its yield and CVaR."""

    assumption: str  # "lido.p × 2", "cvar_budget + 1 pp"
    value: float  # the changed number
    status: str
    max_change: float  # largest |weight − base weight| over venues
    venue: str  # where it happened ("" when nothing moved)
    changes: dict[str, float]  # venue → weight − base weight, for moves above 0.1 % of the book
    net_yield: float
    cvar: float
    reason: str  # the plan's reason: a hold's says why (then the target is the current book)


@dataclass(frozen=True)
class Sensitivity:
    base_status: str
    base_weights: dict[str, float]
    base_yield: float
    base_cvar: float
    variants: list[Variant]  # largest weight change first

    def to_json(self) -> dict[str, object]:
        return {
            "base": {
                "status": self.base_status,
                "target_weights": self.base_weights,
                "net_yield": self.base_yield,
                "cvar": self.base_cvar,
            },
            "variants": [vars(v) for v in self.variants],
        }


def variants_of(inputs: OptimizationInputs) -> list[tuple[str, float, OptimizationInputs]]:
    """Each changed problem: (label, changed value, inputs)."""
    out: list[tuple[str, float, OptimizationInputs]] = []
    nodes = inputs.universe.nodes
    for i, node in enumerate(nodes):
        for field in ("p", "lgd"):
            for factor in FACTORS:
                value = min(1.0, getattr(node, field) * factor)
                changed = tuple(
                    n.model_copy(update={field: value}) if j == i else n for j, n in enumerate(nodes)
                )
                universe = inputs.universe.model_copy(update={"nodes": changed})
                out.append(
                    (
                        f"{node.id}.{field} × {factor:g}",
                        value,
                        inputs.model_copy(update={"universe": universe}),
                    )
                )
    budget = inputs.limits.cvar_budget
    if budget is not None:
        for step in (-BUDGET_STEP, BUDGET_STEP):
            value = max(0.0, budget + step)
            limits = inputs.limits.model_copy(update={"cvar_budget": value})
            label = f"cvar_budget {'+' if step > 0 else '−'} 1 pp"
            out.append((label, value, inputs.model_copy(update={"limits": limits})))
    return out


def sensitivity(inputs: OptimizationInputs, *, cache: ModelCache | None = None) -> Sensitivity:
    """Re-solve the base and every variant; variants sorted by the largest weight change they cause."""
    cache = cache or RetargetingCache()
    base = optimize(inputs, cache=cache)
    found = [
        _variant(label, value, base, optimize(changed, cache=cache))
        for label, value, changed in variants_of(inputs)
    ]
    found.sort(key=lambda v: (-v.max_change, v.assumption))
    return Sensitivity(
        base_status=base.status,
        base_weights=dict(base.target_weights),
        base_yield=base.after.net_yield,
        base_cvar=base.after.cvar,
        variants=found,
    )


def _variant(label: str, value: float, base: Plan, plan: Plan) -> Variant:
    venues = sorted(set(base.target_weights) | set(plan.target_weights))
    diff = {v: plan.target_weights.get(v, 0.0) - base.target_weights.get(v, 0.0) for v in venues}
    venue = max(venues, key=lambda v: (abs(diff[v]), v)) if venues else ""
    top = abs(diff[venue]) if venue else 0.0
    return Variant(
        assumption=label,
        value=value,
        status=plan.status,
        max_change=top,
        venue=venue if top > 1e-9 else "",
        changes={v: d for v, d in diff.items() if abs(d) > 1e-3},
        net_yield=plan.after.net_yield,
        cvar=plan.after.cvar,
        reason=plan.reason,
    )
