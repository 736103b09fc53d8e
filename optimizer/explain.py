"""Binding limits in words, each figure checked by re-solving.

A dual (shadow price) says what one more unit of a limit is worth only while nothing else changes. Where two limits
bind together (a degenerate optimum) the solver may put their joint worth on either, and the cut form and the full
LP may split it differently; where another limit starts binding part of the way, the rate does not hold for a whole
percentage point. So every sentence is a re-solve of the warm compiled model with that one limit relaxed by a
percentage point (milliseconds), and says how the dual compares:

- the re-solve agrees with the dual: the sentence gives the figure;
- the rate holds at first (a re-solve 1/100 of the way agrees with the dual) and then falls: another limit starts
  binding within the point, named where its dual rises;
- otherwise the limit is tied with another: relaxing it alone is worth less than its dual (or nothing).

Only limits that can move are explained: not a min share already at 0, a cap already at 100 %, or a venue held at
its weight. A limit whose dual is zero is worth nothing relaxed alone (the value function is concave: its right
derivative is the least dual over all optimal ones), so it needs no re-solve; the set of sentences and their
figures are therefore the same whichever form found the optimum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from optimizer.plan import BindingLimit
from optimizer.problem import AllocationModel, ParameterValues, SolveResult

RELAX_STEP = 0.01
"""Relax a limit by one percentage point (less when the limit has less room)."""

GAIN_TOLERANCE_BPS = 0.01
"""A re-solved gain and the dual's prediction agree when they differ by less than this (bp/yr) or 0.1 %."""

DUAL_FLOOR = 1e-9
"""Duals below this are solver noise."""


@dataclass(frozen=True)
class Limit:
    """One operator limit that can be relaxed: its constraint group and row, and how to say it."""

    group: str
    index: int
    subject: str
    value: float
    raises: bool  # relaxing raises the value (a cap) rather than lowering it (a floor)
    room: float  # how far it can be relaxed before it stops meaning anything
    verb: str
    noun: str

    def relaxed(self, values: ParameterValues, step: float) -> ParameterValues:
        """A copy of `values` with this limit relaxed by `step`."""
        out = dataclasses.replace(values)
        delta = step if self.raises else -step
        field = _FIELD[self.group]
        current = getattr(values, field)
        if np.ndim(current) == 0:
            setattr(out, field, float(current) + delta)
        else:
            arr = np.array(current, dtype=float, copy=True)
            arr[self.index] += delta
            setattr(out, field, arr)
        return out


_FIELD = {
    "max_share": "hi",
    "min_share": "lo",
    "node_cap": "node_cap",
    "layer_cap": "layer_cap",
    "ladder": "ladder_min",
    "stress_max_loss": "stress_max",
    "cvar_budget": "cvar_budget",
    "turnover": "max_turnover",
    "forced_sale": "sale_budget",
}


def movable(model: AllocationModel, values: ParameterValues, fixed: set[int]) -> Iterator[Limit]:
    """Every operator limit with room to relax. `fixed`: venues whose bounds are not the operator's (held for lack
    of a yield, or fixed by the minimum-move heuristic)."""
    st, shape = model.structure, model.shape
    for k, venue in enumerate(st.venue_ids):
        if k in fixed:
            continue
        hi, lo = float(values.hi[k]), float(values.lo[k])
        if hi < 1.0:
            yield Limit("max_share", k, venue, hi, True, 1.0 - hi, f"raising the max share of {venue}",
                        f"the max share of {venue}")  # fmt: skip
        if lo > 0.0:
            yield Limit("min_share", k, venue, lo, False, lo, f"lowering the min share of {venue}",
                        f"the min share of {venue}")  # fmt: skip
    for j, node in enumerate(st.node_ids):
        cap = float(values.node_cap[j])
        if cap < 1.0:
            yield Limit("node_cap", j, node, cap, True, 1.0 - cap, f"raising the {node} exposure cap",
                        f"the {node} exposure cap")  # fmt: skip
    for k, kind in enumerate(shape.layer_kinds):
        cap = float(values.layer_cap[k])
        if cap < 1.0:
            yield Limit("layer_cap", k, str(kind), cap, True, 1.0 - cap, f"raising the {kind} layer cap",
                        f"the {kind} layer cap")  # fmt: skip
    for r, days in enumerate(shape.ladder_days):
        floor = float(values.ladder_min[r])
        if floor > 0.0:
            yield Limit("ladder", r, f"{days:g}", floor, False, floor, f"lowering the {days:g}-day liquidity floor",
                        f"the {days:g}-day liquidity floor")  # fmt: skip
    for i, s in enumerate(model.losses.stress_limited):
        cap = float(values.stress_max[i])
        name = model.scenarios[s].name
        if cap < 1.0:
            yield Limit("stress_max_loss", i, name, cap, True, 1.0 - cap, f"allowing more loss in {name}",
                        f"the loss limit in {name}")  # fmt: skip
    if values.cvar_budget < 1.0:
        yield Limit("cvar_budget", 0, "portfolio", float(values.cvar_budget), True, 1.0 - values.cvar_budget,
                    "raising the CVaR budget", "the CVaR budget")  # fmt: skip
    if shape.forced_sale and values.sale_budget < 1.0:
        yield Limit("forced_sale", 0, "portfolio", float(values.sale_budget), True, 1.0 - values.sale_budget,
                    "raising the forced-sale budget", "the forced-sale budget")  # fmt: skip
    if values.max_turnover < 1.0:
        yield Limit("turnover", 0, "portfolio", float(values.max_turnover), True, 1.0 - values.max_turnover,
                    "allowing more turnover", "the turnover cap")  # fmt: skip


def dual(res: SolveResult, limit: Limit) -> float:
    """|dual| of the limit's row in a solve (0 when the solve has none)."""
    group = res.duals.get(limit.group)
    if not group:
        return 0.0
    # A limit may be one row per place it holds (the max share on x and on the exposure e): relaxing it relaxes
    # every row, so its worth is the sum of their duals.
    total = 0.0
    for row in group:
        arr = np.atleast_1d(row)
        total += float(abs(arr[limit.index])) if limit.index < arr.size else 0.0
    return total


def _amount(step: float) -> str:
    if abs(step - RELAX_STEP) < 1e-12:
        return "1 percentage point"
    return f"{step * 100:.3g} percentage points (all the room it has)"


def _agree(a: float, b: float) -> bool:
    return abs(a - b) <= max(GAIN_TOLERANCE_BPS, 1e-3 * max(abs(a), abs(b)))


def explain(
    model: AllocationModel,
    values: ParameterValues,
    res: SolveResult,
    fixed: set[int],
    solvers: tuple[str, ...],
) -> list[BindingLimit]:
    """The binding limits of the optimum `res` (solved from `values` on `model`), each checked by a re-solve."""
    if res.objective is None:
        return []
    limits = list(movable(model, values, fixed))
    out: list[BindingLimit] = []
    for lim in limits:
        d = dual(res, lim)
        if d <= DUAL_FLOOR:
            continue
        step = min(RELAX_STEP, lim.room)
        probe = model.solve(lim.relaxed(values, step), solvers)
        if probe.objective is None:
            continue
        gain = (probe.objective - res.objective) * 1e4
        predicted = d * step * 1e4
        per_pct = d * 100.0
        others = _rising(res, probe, limits, lim)
        names = " and ".join(others) if others else "another limit"
        tied = False
        if gain <= GAIN_TOLERANCE_BPS:
            gain = max(gain, 0.0)
            tied = True
            text = (
                f"{lim.verb} alone would add nothing: it is tied with {names} (its shadow price, "
                f"{per_pct:.2f} bp/yr per percentage point, holds only if they move together)"
            )
        else:
            text = f"{lim.verb} by {_amount(step)} would add {gain:.2f} bp/yr of risk-adjusted yield"
            if not _agree(gain, predicted):
                small = step / 100.0
                first = model.solve(lim.relaxed(values, small), solvers)
                rate = None if first.objective is None else (first.objective - res.objective) / small * 100.0
                if rate is not None and _agree(rate * 1e2, per_pct * 1e2):
                    text += (
                        f" (re-solved: the shadow price, {per_pct:.2f} bp/yr per percentage point, holds only for "
                        f"the first part of the step; then {names} {'bind' if len(others) > 1 else 'binds'})"
                    )
                else:
                    tied = True
                    text += (
                        f" (re-solved: it is tied with {names}, so its shadow price of {per_pct:.2f} bp/yr per "
                        "percentage point overstates what it is worth alone)"
                    )
        out.append(
            BindingLimit(
                limit=lim.group,
                subject=lim.subject,
                value=lim.value,
                shadow_price=d,
                bp_per_pct=gain / (step * 100.0),
                explanation=text,
                relaxed_by=step,
                gain_bps=gain,
                shadow_bp_per_pct=per_pct,
                tied=tied,
                tied_with=others,
            )
        )
    return sorted(out, key=lambda b: (-b.gain_bps, -b.shadow_price))


def _rising(base: SolveResult, probe: SolveResult, limits: list[Limit], relaxed: Limit) -> list[str]:
    """The limits whose duals rise most when `relaxed` is relaxed: the ones it is tied with (at most two)."""
    rises = []
    for other in limits:
        if other == relaxed:
            continue
        after = dual(probe, other)
        up = after - dual(base, other)
        if after > DUAL_FLOOR and up > DUAL_FLOOR:
            rises.append((up, other.noun))
    rises.sort(key=lambda r: -r[0])
    return [noun for _, noun in rises[:2]]
