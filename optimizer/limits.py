"""Each limit of the model as a small function returning named constraints.

All take the problem's variables and parameters (`Terms`) and an optional slack: with a slack the limit is elastic,
which is how an infeasible problem is diagnosed (minimise the slack needed to meet every limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import cvxpy as cp

Slack: TypeAlias = "cp.Variable | None"


@dataclass(frozen=True)
class Terms:
    """Variables, parameters and expressions one problem is built from."""

    x: cp.Variable  # the target, where the risk limits hold (`optimizer.problem`, module doc)
    p: cp.Variable
    q: cp.Variable
    t: cp.Variable
    zeta: cp.Variable
    z: cp.Variable | None
    x0: cp.Parameter
    lo: cp.Parameter
    hi: cp.Parameter
    node_cap: cp.Parameter | None
    layer_cap: cp.Parameter | None
    ladder_min: cp.Parameter | None
    cvar_budget: cp.Parameter
    max_turnover: cp.Parameter
    stress_max: cp.Parameter | None
    subtree: object
    node_exposure: cp.Expression
    scenario_loss: cp.Expression
    stress_loss: cp.Expression | None
    cvar: cp.Expression
    kind_rows: object
    ladder_rows: object
    entry_room: cp.Parameter | None = None
    exit_room: cp.Parameter | None = None
    # the forced-sale block (`optimizer.forced_sale`), when the shape has it: sales per rung × sale venue
    sale: cp.Variable | None = None
    sale_rows: object = None  # sale venues × venues: picks the sale venues' weights out of x
    sale_rate: cp.Parameter | None = None
    sale_floor: cp.Parameter | None = None
    sale_budget: cp.Parameter | None = None
    root: int = 0


Constraints = dict[str, list[cp.Constraint]]
LimitFn = Callable[[Terms, Slack], Constraints]


def _relax(expr: cp.Expression, slack: Slack) -> cp.Expression:
    return expr if slack is None else expr + slack


def fully_invested(v: Terms, _: Slack = None) -> Constraints:
    """Weights sum to one."""
    return {"budget": [cp.sum(v.x) == 1]}


def share_bounds(v: Terms, _: Slack = None) -> Constraints:
    """Per-venue min/max share (held venues have lo = hi = current weight)."""
    return {"max_share": [v.x <= v.hi], "min_share": [v.x >= v.lo]}


def tree_moves(v: Terms, _: Slack = None) -> Constraints:
    """Capital entering (p) and leaving (q) each subtree of the position tree."""
    return {"moves": [v.subtree @ v.x - v.subtree @ v.x0 == v.p - v.q]}


def entry_blocks(v: Terms, _: Slack = None) -> Constraints:
    """Capital entering a venue's subtree at most its room: 0 for a venue closed to entries (stale or carried
    yield, too few observations), 1 otherwise. Exits stay free, and capital coming back from a child into a closed
    parent is not an entry: it never left the parent's subtree (restaked stETH is still stETH)."""
    if v.entry_room is None:
        return {}
    return {"no_entry": [v.subtree @ v.x - v.subtree @ v.x0 <= v.entry_room]}


def holding_floors(v: Terms, _: Slack = None) -> Constraints:
    """Capital leaving a venue's subtree at most its room: 0 for a venue bought within the holding period, 1
    otherwise. On the subtree, not the venue's own weight: restaking stETH bought last week keeps it stETH (it
    stays in stETH's subtree), and a deposit that passed through a parent holds what it brought, not the parent's
    own older position."""
    if v.exit_room is None:
        return {}
    return {"no_exit": [v.subtree @ v.x0 - v.subtree @ v.x <= v.exit_room]}


def node_caps(v: Terms, slack: Slack = None) -> Constraints:
    """Share exposed to each risk node at most its cap."""
    if v.node_cap is None:
        return {}
    return {"node_cap": [v.node_exposure <= _relax(v.node_cap, slack)]}


def layer_caps(v: Terms, slack: Slack = None) -> Constraints:
    """Share exposed to each capped venue kind (liquid staking, restaking, LRT) at most its cap."""
    if v.layer_cap is None:
        return {}
    return {"layer_cap": [v.kind_rows @ v.x <= _relax(v.layer_cap, slack)]}


def cvar_limit(v: Terms, slack: Slack = None) -> Constraints:
    """Rockafellar–Uryasev: z_s ≥ L_s x − ζ, z ≥ 0, and CVaR_β ≤ budget. Without z (the cut form) ζ is CVaR
    itself and `scenario_loss` is a lower bound on it; the cut loop adds the rest."""
    tail = v.zeta >= v.scenario_loss if v.z is None else v.z >= v.scenario_loss - v.zeta
    return {
        "cvar_tail": [tail],
        "cvar_budget": [v.cvar <= _relax(v.cvar_budget, slack)],
    }


def liquidity_ladder(v: Terms, slack: Slack = None) -> Constraints:
    """At least the rung's share is back as ETH within the rung's days, on the target x. A plan's deposits wait
    until its exits land (`aggregator.store.ledger`, `execution.timeline`, the replay's book), so no state holds a
    queued exit where it leaves AND what its proceeds buy: while the exits are queued the book is today's (each exit
    lands no later than its venue's own exit days, so no rung counts less than today), then it is x. Counting the
    queued exits where they leave against x (before deposits waited) took the proceeds out of idle ETH and blocked
    every rotation from a queued venue into one not back within a day while idle ETH sat at the 1-day floor. The
    floor is raised by in-flight capital of earlier plans that will not be back in time (see `optimize.prepare`)."""
    if v.ladder_min is None:
        return {}
    floor = v.ladder_min if slack is None else v.ladder_min - slack
    return {"ladder": [v.ladder_rows @ v.x >= floor]}


def turnover(v: Terms, slack: Slack = None) -> Constraints:
    """½·Σ|x − x0| at most the turnover cap."""
    return {
        "turnover_abs": [v.t >= v.x - v.x0, v.t >= v.x0 - v.x],
        "turnover": [0.5 * cp.sum(v.t) <= _relax(v.max_turnover, slack)],
    }


def stress_limits(v: Terms, slack: Slack = None) -> Constraints:
    """Loss in each operator stress scenario that has a max_loss at most that."""
    if v.stress_max is None or v.stress_loss is None:
        return {}
    return {"stress_max_loss": [v.stress_loss <= _relax(v.stress_max, slack)]}


def forced_sale(v: Terms, slack: Slack = None) -> Constraints:
    """If the queues stall, each rung's minimum share from idle ETH and market sales (at most what is held of each
    sale venue), losing at most the budget (`optimizer.forced_sale`). One budget row per rung: relaxing the budget
    relaxes them all. Only the budget takes a slack: the floors are the ladder's."""
    if v.sale is None or v.sale_rate is None or v.sale_floor is None or v.sale_budget is None:
        return {}
    rungs = v.sale.shape[0]
    held = v.sale_rows @ v.x
    budget = v.sale_budget if slack is None else v.sale_budget + slack
    return {
        "forced_sale_cover": [v.sale[r] <= held for r in range(rungs)]
        + [v.x[v.root] + cp.sum(v.sale, axis=1) >= v.sale_floor],
        "forced_sale": [v.sale[r] @ v.sale_rate <= budget for r in range(rungs)],
    }


HARD: tuple[LimitFn, ...] = (fully_invested, share_bounds, tree_moves, entry_blocks, holding_floors)
"""Structural constraints: never relaxed."""

ELASTIC: dict[str, LimitFn] = {
    "node_cap": node_caps,
    "layer_cap": layer_caps,
    "cvar_budget": cvar_limit,
    "ladder": liquidity_ladder,
    "turnover": turnover,
    "stress_max_loss": stress_limits,
    "forced_sale": forced_sale,
}
"""The operator's limits, by name; each can take a slack when diagnosing infeasibility."""
