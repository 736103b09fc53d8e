"""What the optimizer returns: a plan with its explanation and the exact inputs it was solved from."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from optimizer.inputs import OptimizationInputs


class Hold(StrEnum):
    """Why a plan holds, as a value to act on (`Plan.reason` is the sentence for people, not a thing to parse)."""

    LIMITS_UNMET = "limits_unmet"  # the configured limits cannot all be met (`Plan.diagnosis` names them)
    SOLVER_FAILED = "solver_failed"  # no solver produced an answer
    ANSWER_BREAKS_LIMITS = "answer_breaks_limits"  # a solver's answer failed the re-check against the limits
    OPTIMAL = "optimal"  # the current allocation is already the best (or no move clears the no-trade band)
    BELOW_BAND = "below_band"  # the moves gain less than the no-trade band

    @property
    def is_problem(self) -> bool:
        """A hold caused by a problem (limits or solver) rather than a deliberate decision not to trade."""
        return self in (Hold.LIMITS_UNMET, Hold.SOLVER_FAILED, Hold.ANSWER_BREAKS_LIMITS)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Move(_Out):
    """One concrete step on the position tree. Exits come before entries."""

    step: int
    action: Literal["withdraw", "deposit"]
    venue: str
    from_venue: str
    to_venue: str
    amount_eth: float
    share: float
    cost_eth: float
    days: float
    route: str = ""  # an exit's route ("queue", "dex"), or "deposit"


class Metrics(_Out):
    """Risk and return of one allocation, fractions per year."""

    net_yield: float
    expected_loss: float
    cvar: float
    risk_adjusted: float
    stress_losses: dict[str, float]


class Costs(_Out):
    """One-off costs of the moves (`total_*`: paid as they happen) and the round trips they commit to
    (`round_trip_*`: every entry with the exit it implies, what the model charges), with the round trips' yearly
    rate over the holding horizon."""

    total_eth: float
    total_share: float
    amortised_per_year: float
    gas_eth: float
    round_trip_eth: float = 0.0


class BindingLimit(_Out):
    """A limit that stops the plan from doing better, with what relaxing it is worth.

    The figure is a re-solve of the same model with only this limit relaxed by `relaxed_by` (1 percentage point, or
    what is left before the limit stops meaning anything): `gain_bps` is the change of the optimal risk-adjusted
    yield. `shadow_price` is the solver's dual; where its prediction differs from the re-solve the limit is `tied`
    with others (they bind together, so the dual overstates what this one alone is worth) or another limit starts
    binding within the step, and the explanation says so.
    """

    limit: str
    subject: str
    value: float
    shadow_price: float
    bp_per_pct: float  # re-solved gain per percentage point of relaxation, bp/yr
    explanation: str
    relaxed_by: float = 0.01
    gain_bps: float = 0.0  # re-solved gain for `relaxed_by`, bp/yr
    shadow_bp_per_pct: float = 0.0  # what the dual alone predicts per percentage point, bp/yr
    tied: bool = False
    tied_with: list[str] = []


class Diagnosis(_Out):
    """A limit that cannot be met and the least value that could be.

    `least_feasible` comes from one elastic solve of every limit at once: where several limits are named, their
    values hold together (all relaxed to them at once, the problem is feasible). `least_alone` is this limit's least
    value with every other limit as configured, or None when relaxing this limit alone cannot make it feasible.
    """

    limit: str
    subject: str
    configured: float
    least_feasible: float
    message: str
    least_alone: float | None = None


class HeldVenue(_Out):
    venue: str
    weight: float
    reason: str


class BlockedVenue(_Out):
    """A venue closed to entries this cycle (its yield is stale, carried or rests on too few observations): it
    may be sold down, not bought."""

    venue: str
    weight: float
    reason: str


class SolverInfo(_Out):
    name: str | None
    status: str
    seconds: float
    solves: int
    attempts: list[tuple[str, str]]
    risk_form: str  # how CVaR entered the LP: "cuts" (default), "factored" (fallback) or "dense"
    scenarios: int
    scenario_note: str


class TailBound(_Out):
    """How exact the failure scenarios are (see `optimizer.scenarios`).

    Every combination of up to `depth` simultaneous initiating failures is a scenario with its exact probability.
    The combinations of more (probability `residual_mass`) are counted with their exact expected loss, as if all of
    it fell in the CVaR tail: expected loss is exact, and the plan's CVaR exceeds the exact one by at most
    `cvar_overstatement` (for the target allocation).
    """

    depth: int
    scenarios: int  # enumerated combinations (stress scenarios not included)
    residual_mass: float
    tail_share: float  # residual_mass / (1 − β)
    tolerance_share: float  # the share of the tail the enumeration aimed below
    capped: bool  # stopped by the scenario cap with the residual above the tolerance
    residual_expected_loss: float  # of the target allocation, fraction of the portfolio per year
    cvar_overstatement: float  # of the target allocation: residual_expected_loss / (1 − β)
    note: str


class RecordedEnumeration(_Out):
    """The enumerated scenarios as a rule, not a list: every set of up to `depth` initiating nodes (nodes with
    0 < p < 1; nodes with p = 1 initiate in all), probability Π p · Π (1 − p) × `scale`, failures propagating to the
    nodes below. The residual's exact expected loss per venue (venue order) joins CVaR as bᵀx/(1 − β)."""

    depth: int
    scale: float
    scenarios: int
    residual_mass: float
    residual_expected_loss: list[float]


class RecordedScenario(_Out):
    name: str
    probability: float
    failed: list[str]
    lgd: dict[str, float]
    max_loss: float | None


class RecordedProblem(_Out):
    """The exact problem that produced the plan, complete enough for another solver to rebuild it."""

    inputs: OptimizationInputs
    venue_order: list[str]
    node_order: list[str]
    x0: list[float]
    lower: list[float]
    upper: list[float]
    net_yield: list[float]
    expected_loss: list[float]
    entry_cost_amortised: list[float]
    exit_cost_amortised: list[float]
    days_to_eth: list[float]
    exposure: list[list[str]]
    node_caps: list[float]
    layer_caps: dict[str, float]
    ladder: list[tuple[float, float]]
    cvar_beta: float
    cvar_budget: float
    risk_aversion: float
    max_turnover: float
    scenarios: list[
        RecordedScenario
    ]  # the operator's stress scenarios; the enumerated ones are `enumeration`
    objective: float | None
    queued: list[
        float
    ] = []  # 1 where the venue's cheaper exit is a timed route: recorded for the replay and tests
    # in-flight shares at their from venue minus at their destination: today's exposure is x0 + this (the risk
    # limits hold on the target; a plan's deposits wait until in-flight capital lands)
    in_flight_offset: list[float] = []
    enumeration: RecordedEnumeration | None = None


class Plan(_Out):
    """The optimizer's answer. `status` is "rebalance" (the moves are worth it) or "hold" (with the reason, and
    `hold` saying why as a value; None on a rebalance, and on plans stored before it existed)."""

    status: Literal["rebalance", "hold"]
    reason: str
    hold: Hold | None = None
    portfolio_eth: float
    current_weights: dict[str, float]
    target_weights: dict[str, float]
    target_eth: dict[str, float]
    moves: list[Move]
    before: Metrics
    after: Metrics
    costs: Costs
    turnover: float
    gain_bps: float
    binding: list[BindingLimit]
    held: list[HeldVenue]
    entry_blocked: list[BlockedVenue] = []
    heuristics: list[str]
    diagnosis: list[Diagnosis]
    solver: SolverInfo
    problem: RecordedProblem
    tail: TailBound | None = None
