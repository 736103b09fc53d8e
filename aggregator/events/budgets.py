"""The current book against every budget its latest plan was solved under (CVaR, node and layer caps, the
liquidity ladder, stress limits): drawn as bars by the dashboard, alerted on when breached (`aggregator.events.alerts`)."""

from __future__ import annotations

from dataclasses import dataclass

from optimizer import Plan

__all__ = ["Bar", "breaches", "risk_bars"]


@dataclass(frozen=True)
class Bar:
    """One gauge: `value` against `limit` (fractions); `kind` is "max" (stay below) or "min" (stay above)."""

    label: str
    value: float
    limit: float
    kind: str = "max"

    @property
    def ratio(self) -> float:
        """How much of the budget is used (a floor: how far above it), 0..1 for the bar."""
        if self.kind == "min":
            return 1.0 if self.value >= self.limit else (self.value / self.limit if self.limit else 0.0)
        return min(self.value / self.limit, 1.0) if self.limit > 0 else (1.0 if self.value > 0 else 0.0)

    @property
    def near(self) -> bool:
        """Within a tenth of a ceiling (a floor cannot be 'near' in the same sense: it holds or it does not)."""
        return self.kind == "max" and self.ratio > 0.9 and not self.breached

    @property
    def breached(self) -> bool:
        tol = 1e-6
        return self.value < self.limit - tol if self.kind == "min" else self.value > self.limit + tol


def risk_bars(plan: Plan) -> list[Bar]:
    """The current book (the plan's starting weights) against every budget the plan was solved under: CVaR, each
    capped risk node, each layer cap, each ladder rung, each stress limit. Capital in flight is not counted here."""
    p = plan.problem
    w = [plan.current_weights.get(v, 0.0) for v in p.venue_order]
    bars = [Bar(f"CVaR {p.cvar_beta:.0%}", plan.before.cvar, p.cvar_budget)]
    for j, node in enumerate(p.node_order):
        cap = p.node_caps[j]
        if cap < 1.0:
            held = sum(wi for wi, nodes in zip(w, p.exposure, strict=True) if node in nodes)
            bars.append(Bar(f"node {node}", held, cap))
    kinds = {v.id: str(getattr(v.kind, "value", v.kind)) for v in p.inputs.universe.venues}
    for kind, cap in sorted(p.layer_caps.items()):
        held = sum(wi for wi, v in zip(w, p.venue_order, strict=True) if kinds.get(v) == kind)
        bars.append(Bar(f"layer {kind}", held, cap))
    for days, floor in p.ladder:
        liquid = sum(wi for wi, d in zip(w, p.days_to_eth, strict=True) if d <= days + 1e-12)
        bars.append(Bar(f"liquid within {days:g} d", liquid, floor, kind="min"))
    for s in p.scenarios:
        if s.max_loss is not None and s.name in plan.before.stress_losses:
            bars.append(Bar(f"stress {s.name}", plan.before.stress_losses[s.name], s.max_loss))
    return bars


def breaches(plan: Plan) -> dict[str, str]:
    """Each budget the current book breaks, keyed by the budget, with a line for people."""
    return {
        f"limit:{b.label}": (
            f"{b.label}: {b.value * 100:.2f} % is {'below the floor' if b.kind == 'min' else 'above the limit'} "
            f"{b.limit * 100:.2f} %"
        )
        for b in risk_bars(plan)
        if b.breached
    }
