"""The LP of DESIGN.md, compiled once per universe and re-solved with new parameter values each cycle.

    maximize   ŷᵀx − ℓᵀx − λ·CVaR_β(x) − (c_inᵀp + c_outᵀq)     (costs already amortised to a yearly rate)
    subject to the limits in `optimizer.limits`.

x is where the capital is headed (capital in flight already at its destination). Risk limits hold on x: a plan's
deposits are made only once none of the book's capital is in an exit queue (the replay's book, the daemon's ledger
and the execution timeline all wait), so every state of a rebalance is either today's book with some exits done
(capital only moved from a venue to its parent: never riskier) or the target. The liquidity ladder holds on x as
well: while the exits wait the book is today's (an exit lands no later than its venue's own exit days, so no rung
counts less than today), and the floors count earlier plans' in-flight capital only when it is back in time.

Three ways to write CVaR, with equal optimal values: "cuts" (the default) keeps the scenarios out of the LP and adds
only the tail cuts the solution needs (`optimizer.cuts`); "factored" writes every scenario's loss through the joint
node exposures m = A x (short rows, see `optimizer.scenarios`); "dense" multiplies the scenario-by-venue matrix L x,
the textbook way (PyPortfolioOpt, Riskfolio-Lib). The benchmark compares them. The cut loop runs on HiGHS; any other
solver gets the same model in factored form.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import cvxpy as cp
import highspy
import numpy as np
import scipy.sparse as sp

from optimizer.cuts import CutLoop, TailOracle
from optimizer.forced_sale import sale_venues
from optimizer.inputs import Universe, VenueKind
from optimizer.limits import ELASTIC, HARD, Constraints, Terms
from optimizer.scenarios import (
    DEFAULT_MAX_SCENARIOS,
    DEFAULT_TAIL_TOLERANCE,
    ScenarioLosses,
    enumerate_scenarios,
)
from optimizer.structure import FloatArray, Structure

RiskForm = Literal["cuts", "factored", "dense"]

DEFAULT_SOLVERS: tuple[str, ...] = ("HIGHS", "CLARABEL")
"""LP first to HiGHS, then Clarabel (interior point, also handles the conic variants)."""

SOLVER_OPTIONS: dict[str, dict[str, object]] = {
    "HIGHS": {"output_flag": False, "primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9},
    "CLARABEL": {"tol_feas": 1e-9, "tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9},
}
"""Tight tolerances: the plan's limits are re-checked in numpy to 1e-7."""

SLACK_FREE = 2.0
"""An elastic limit's slack cap that never binds: every limit is a share or a loss of the portfolio (≤ 1)."""

_OK = {cp.OPTIMAL, cp.OPTIMAL_INACCURATE}
_INFEASIBLE = {cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE}


@dataclass(frozen=True)
class ModelShape:
    """What fixes the compiled problem; anything else is a parameter."""

    cvar_beta: float
    ladder_days: tuple[float, ...]
    layer_kinds: tuple[VenueKind, ...]
    risk_form: RiskForm = "cuts"
    tail_tolerance: float = (
        DEFAULT_TAIL_TOLERANCE  # scenarios: enumerate until the mass left out is below this × (1 − β)
    )
    max_scenarios: int = DEFAULT_MAX_SCENARIOS
    depth: int | None = None  # a fixed enumeration depth instead (tests, benchmarks)
    forced_sale: bool = False  # the forced-sale block (a budget is set and the ladder has rungs)


@dataclass
class ParameterValues:
    """One cycle's numbers. Costs are amortised (fraction per year); unset limits take values that never bind."""

    yields: FloatArray
    expected_loss: FloatArray
    x0: FloatArray
    lo: FloatArray
    hi: FloatArray
    c_in: FloatArray
    c_out: FloatArray
    node_cap: FloatArray
    layer_cap: FloatArray
    ladder_min: FloatArray
    cvar_budget: float
    risk_aversion: float
    max_turnover: float
    stress_max: FloatArray
    entry_room: FloatArray | None = None  # per venue, capital that may enter its subtree: 0 closed, 1 open
    # per venue, capital that may leave its subtree: 1 open, 0 bought within the holding period (plus what it is
    # above its max share by, and what it holds of exit-only venues: those may still be sold)
    exit_room: FloatArray | None = None
    # 1 where the venue's cheaper exit route takes time (recorded in the plan; the ladder holds on the target)
    queued: FloatArray | None = None
    # in-flight shares at their from venue minus at their destination: today's exposure is x0 + this. Not in the
    # LP (a plan's deposits wait until the flights land); `prepare` checks whether today's book is past a limit.
    in_flight_offset: FloatArray | None = None
    # today's book breaks a limit beyond the drift band: the floors drop the in-flight capital (it cannot be sooner)
    transit_relaxed: bool = False
    # the current exposure is past a limit by less than the drift band: limits taken at today's level
    limits_at_today: bool = False
    # the forced-sale limit (`optimizer.forced_sale`), when the shape has it: loss rate per sale venue, each
    # rung's minimum share, and the budget
    sale_rate: FloatArray | None = None
    sale_floor: FloatArray | None = None
    sale_budget: float = 1.0

    def today(self) -> FloatArray:
        """Today's exposure: x0 with in-flight capital where it left, until it lands."""
        out: FloatArray = self.x0 if self.in_flight_offset is None else self.x0 + self.in_flight_offset
        return out


@dataclass
class SolveResult:
    """What one solve returned, solver by solver."""

    status: str
    solver: str | None
    x: FloatArray | None
    objective: float | None
    seconds: float
    duals: dict[str, list[FloatArray]] = field(default_factory=dict)
    attempts: list[tuple[str, str]] = field(default_factory=list)
    risk_form: RiskForm | None = None  # how the solution was found: "cuts" may fall back to "factored"

    @property
    def ok(self) -> bool:
        return self.x is not None

    @property
    def infeasible(self) -> bool:
        return self.x is None and any(status in _INFEASIBLE for _, status in self.attempts)


@functools.cache
def _absorb_highs_banner() -> None:
    """HiGHS prints a copyright banner to file descriptor 1 the first time a solver object is made in a process,
    which would corrupt machine-readable stdout (`--json`). Make that first object with fd 1 pointed elsewhere."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _stress_rows(losses: ScenarioLosses) -> FloatArray:
    """The loss rows (scenario × venue) of the stress scenarios with a loss limit, dense."""
    stressed = list(losses.stress_limited)
    rows = losses.term_coefficients[stressed, :] @ losses.term_incidence
    out: FloatArray = np.asarray(sp.csr_matrix(rows).todense(), dtype=float)
    return out


class AllocationModel:
    """The compiled problem of one universe and shape; `solve` re-uses it with new parameter values."""

    def __init__(
        self,
        universe: Universe,
        shape: ModelShape,
        *,
        elastic: bool = False,
        losses: ScenarioLosses | None = None,
    ) -> None:
        """`losses` shares another model's scenarios (same universe and shape) instead of enumerating again."""
        _absorb_highs_banner()
        self.universe = universe
        self.shape = shape
        if losses is None:
            losses = _scenario_losses(universe, shape)
        self.structure = losses.structure
        self.scenarios = losses.scenarios
        self.losses = losses
        self.elastic = elastic
        self._build()

    def _build(self) -> None:
        st, sl, shape = self.structure, self.losses, self.shape
        n, j = st.n_venues, st.n_nodes
        weighted = list(sl.weighted)
        stressed = list(sl.stress_limited)
        self.p_yields = cp.Parameter(n, name="yields")
        self.p_expected_loss = cp.Parameter(n, name="expected_loss")
        self.p_c_in = cp.Parameter(n, nonneg=True, name="c_in")
        self.p_c_out = cp.Parameter(n, nonneg=True, name="c_out")
        self.p_risk_aversion = cp.Parameter(nonneg=True, name="risk_aversion")
        x = cp.Variable(n, nonneg=True, name="x")
        q = cp.Variable(n, nonneg=True, name="q")
        zeta = cp.Variable(nonneg=True, name="zeta")  # VaR (RU forms) or CVaR (cuts): losses are ≥ 0
        z: cp.Variable | None = cp.Variable(len(weighted), nonneg=True, name="z")
        self.cut_loop: CutLoop | None = None
        self._exposure_def: list[cp.Constraint] = []  # the factored form's m = A x
        # The priors (each node's p and lgd) reach the cuts form only through these two parameters and the tail
        # oracle, so `retarget` can change them without compiling again (`optimizer.retarget`).
        self.p_mean_loss = cp.Parameter(n, name="mean_loss_cut", value=sl.expected_loss)
        self.p_stress_rows: cp.Parameter | None = None
        if shape.risk_form == "cuts":
            # zeta is CVaR itself; the cut loop adds its tail rows in HiGHS. The one cvxpy row is the expected-loss
            # cut (q = π), which keeps the first master bounded.
            z = None
            node_exposure = st.exposure @ x if j else cp.Constant(np.zeros(0))
            scenario_loss = self.p_mean_loss @ x
            stress_loss = None
            if stressed:
                self.p_stress_rows = cp.Parameter(
                    (len(stressed), n), name="stress_rows", value=_stress_rows(sl)
                )
                stress_loss = self.p_stress_rows @ x
        elif shape.risk_form == "factored":
            m = cp.Variable(len(sl.terms), name="m")
            self._exposure_def.append(m == sl.term_incidence @ x)
            h = sl.term_coefficients
            node_exposure = st.exposure @ x if j else cp.Constant(np.zeros(0))
            scenario_loss = h[weighted, :] @ m
            stress_loss = h[stressed, :] @ m if stressed else None
        else:
            node_exposure = st.exposure @ x if j else cp.Constant(np.zeros(0))
            scenario_loss = sl.matrix[weighted, :] @ x
            stress_loss = sl.matrix[stressed, :] @ x if stressed else None
        tail_weights = sl.probabilities[weighted] / (1.0 - shape.cvar_beta)
        # The combinations left out of the enumeration count in full in the tail: + bᵀx/(1−β) (optimizer.scenarios).
        residual = sl.residual.expected_loss / (1.0 - shape.cvar_beta)
        cvar = zeta if z is None else zeta + tail_weights @ z + residual @ x
        self.terms = Terms(
            x=x,
            p=cp.Variable(n, nonneg=True, name="p"),
            q=q,
            t=cp.Variable(n, nonneg=True, name="t"),
            zeta=zeta,
            z=z,
            x0=cp.Parameter(n, nonneg=True, name="x0"),
            lo=cp.Parameter(n, nonneg=True, name="lo"),
            hi=cp.Parameter(n, nonneg=True, name="hi"),
            node_cap=cp.Parameter(j, nonneg=True, name="node_cap") if j else None,
            layer_cap=cp.Parameter(len(shape.layer_kinds), nonneg=True, name="layer_cap")
            if shape.layer_kinds
            else None,
            ladder_min=cp.Parameter(len(shape.ladder_days), nonneg=True, name="ladder_min")
            if shape.ladder_days
            else None,
            cvar_budget=cp.Parameter(nonneg=True, name="cvar_budget"),
            max_turnover=cp.Parameter(nonneg=True, name="max_turnover"),
            stress_max=cp.Parameter(len(stressed), nonneg=True, name="stress_max") if stressed else None,
            subtree=st.subtree,
            node_exposure=node_exposure,
            scenario_loss=scenario_loss,
            stress_loss=stress_loss,
            cvar=cvar,
            kind_rows=st.kind_matrix(shape.layer_kinds),
            ladder_rows=st.ladder_matrix(shape.ladder_days),
            entry_room=cp.Parameter(n, nonneg=True, name="entry_room"),
            exit_room=cp.Parameter(n, nonneg=True, name="exit_room"),
        )
        if shape.forced_sale and shape.ladder_days:
            self.terms = self._with_sales(self.terms)
        v = self.terms
        self.named: Constraints = {}
        for fn in HARD:
            self.named.update(fn(v, None))
        self.slacks: dict[str, cp.Variable] = {}
        self.slack_caps: dict[
            str, cp.Parameter
        ] = {}  # elastic: how far each limit may give (diagnosis sets 0)
        caps: list[cp.Constraint] = []
        widths: dict[str, int | None] = {  # None: one scalar slack
            "node_cap": j,
            "layer_cap": len(shape.layer_kinds),
            "cvar_budget": None,
            "ladder": len(shape.ladder_days),
            "turnover": None,
            "stress_max_loss": len(stressed),
            "forced_sale": None if self.terms.sale is not None else 0,
        }
        for name, limit in ELASTIC.items():
            slack = None
            width = widths[name]
            if self.elastic and width != 0:
                size = () if width is None else width
                slack = cp.Variable(size, nonneg=True, name=f"slack_{name}")
                cap = cp.Parameter(
                    size, nonneg=True, name=f"slack_cap_{name}", value=np.full(size, SLACK_FREE)
                )
                self.slacks[name] = slack
                self.slack_caps[name] = cap
                caps.append(slack <= cap)
            self.named.update(limit(v, slack))
        net_yield = (self.p_yields - self.p_expected_loss) @ x
        costs = self.p_c_in @ v.p + self.p_c_out @ v.q
        if self.elastic:
            objective: cp.Minimize | cp.Maximize = cp.Minimize(sum(cp.sum(s) for s in self.slacks.values()))
        else:
            objective = cp.Maximize(net_yield - self.p_risk_aversion * cvar - costs)
        constraints = [c for group in self.named.values() for c in group] + self._exposure_def + caps
        self.problem = cp.Problem(objective, constraints)
        if not self.problem.is_dpp():  # pragma: no cover - guards the formulation
            raise AssertionError("allocation problem is not DPP: re-solves would recompile")
        if shape.risk_form == "cuts":
            self.cut_loop = CutLoop(
                self.problem, x, zeta, TailOracle.of(sl, shape.cvar_beta), SOLVER_OPTIONS["HIGHS"]
            )

    def _with_sales(self, terms: Terms) -> Terms:
        """`terms` with the forced-sale block's variables and parameters (`optimizer.limits.forced_sale`)."""
        rungs = len(self.shape.ladder_days)
        venues = sale_venues(self.universe)
        m = max(len(venues), 1)  # a universe without a sale venue: one column that nothing can fill
        rows = np.zeros((m, self.structure.n_venues))
        for k, i in enumerate(venues):
            rows[k, i] = 1.0
        return dataclasses.replace(
            terms,
            sale=cp.Variable((rungs, m), nonneg=True, name="sale"),
            sale_rows=rows,
            sale_rate=cp.Parameter(m, nonneg=True, name="sale_rate"),
            sale_floor=cp.Parameter(rungs, nonneg=True, name="sale_floor"),
            sale_budget=cp.Parameter(nonneg=True, name="sale_budget"),
            root=next(i for i, v in enumerate(self.universe.venues) if v.parent is None),
        )

    def retarget(self, universe: Universe) -> bool:
        """Take a universe that differs from this model's at most in its nodes' p and lgd, without compiling again:
        the scenarios are enumerated afresh for the new priors (as a new model would), the parameters and the tail
        oracle take their losses, and the cuts kept in HiGHS go (each was a bound under the old priors). Only the
        cuts form carries the priors as parameters; False (nothing changed) for the other forms."""
        if self.shape.risk_form != "cuts" or self.cut_loop is None or self.elastic:
            return False
        losses = _scenario_losses(universe, self.shape)
        if losses.stress_limited != self.losses.stress_limited:
            return False
        self.universe, self.structure, self.scenarios, self.losses = (
            universe,
            losses.structure,
            losses.scenarios,
            losses,
        )
        self.p_mean_loss.value = losses.expected_loss
        if self.p_stress_rows is not None:
            self.p_stress_rows.value = _stress_rows(losses)
        self.cut_loop.reset(TailOracle.of(losses, self.shape.cvar_beta))
        self.__dict__.pop("full", None)  # the factored fallback is rebuilt on the new losses when needed
        return True

    @functools.cached_property
    def full(self) -> AllocationModel:
        """The same model with every scenario row written out (factored), for solvers other than the cut loop's."""
        return AllocationModel(
            self.universe,
            dataclasses.replace(self.shape, risk_form="factored"),
            elastic=self.elastic,
            losses=self.losses,
        )

    def set(self, values: ParameterValues) -> None:
        """Load one cycle's numbers into the parameters."""
        v = self.terms
        self.p_yields.value = values.yields
        self.p_expected_loss.value = values.expected_loss
        self.p_c_in.value = values.c_in
        self.p_c_out.value = values.c_out
        self.p_risk_aversion.value = values.risk_aversion
        v.x0.value = values.x0
        v.lo.value = values.lo
        v.hi.value = values.hi
        if v.node_cap is not None:
            v.node_cap.value = values.node_cap
        if v.layer_cap is not None:
            v.layer_cap.value = values.layer_cap
        if v.ladder_min is not None:
            v.ladder_min.value = values.ladder_min
        v.cvar_budget.value = values.cvar_budget
        v.max_turnover.value = values.max_turnover
        if v.stress_max is not None:
            v.stress_max.value = values.stress_max
        if v.sale_rate is not None and v.sale_floor is not None and v.sale_budget is not None:
            rate = values.sale_rate if values.sale_rate is not None and values.sale_rate.size else np.zeros(1)
            v.sale_rate.value = rate
            v.sale_floor.value = (
                np.zeros(len(self.shape.ladder_days)) if values.sale_floor is None else values.sale_floor
            )
            v.sale_budget.value = values.sale_budget
        if v.entry_room is not None:
            n = self.structure.n_venues
            v.entry_room.value = np.ones(n) if values.entry_room is None else values.entry_room
        if v.exit_room is not None:
            n = self.structure.n_venues
            v.exit_room.value = np.ones(n) if values.exit_room is None else values.exit_room

    def solve(self, values: ParameterValues, solvers: tuple[str, ...] = DEFAULT_SOLVERS) -> SolveResult:
        """Solve with the first solver that succeeds; never raises for solver trouble. Whatever the cut loop raises
        (cvxpy's private API moved in an upgrade, see `optimizer.cvxpy_private`) falls back to the factored form."""
        self.set(values)
        attempts: list[tuple[str, str]] = []
        start = time.perf_counter()
        for solver in solvers:
            if self.cut_loop is not None and solver != "HIGHS":
                res = self.full.solve(values, (solver,))
                attempts.extend(res.attempts)
                if res.ok or res.infeasible:
                    res.attempts = attempts
                    res.seconds = time.perf_counter() - start
                    return res
                continue
            if self.cut_loop is not None:
                try:
                    status = self.cut_loop.solve()
                except Exception as exc:  # anything from cvxpy's private API: see cvxpy_private
                    attempts.append(
                        (solver, f"cut loop error: {type(exc).__name__}: {exc}; the factored form")
                    )
                    res = self.full.solve(values, (solver,))
                    attempts.extend(res.attempts)
                    if res.ok or res.infeasible:
                        res.attempts = attempts
                        res.seconds = time.perf_counter() - start
                        return res
                    continue
                attempts.append((solver, status))
                if status in _OK and self.terms.x.value is not None:
                    return self._result(status, solver, start, attempts)
                if status in _INFEASIBLE:
                    break
                continue
            try:
                self.problem.solve(solver=solver, **SOLVER_OPTIONS.get(solver, {}))
                status = str(self.problem.status)
            except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
                attempts.append((solver, f"error: {type(exc).__name__}: {exc}"))
                continue
            attempts.append((solver, status))
            if status in _OK and self.terms.x.value is not None:
                return self._result(status, solver, start, attempts)
            if status in _INFEASIBLE:
                break
        return SolveResult(
            status=attempts[-1][1] if attempts else "no solver",
            solver=None,
            x=None,
            objective=None,
            seconds=time.perf_counter() - start,
            attempts=attempts,
        )

    def _result(self, status: str, solver: str, start: float, attempts: list[tuple[str, str]]) -> SolveResult:
        """The solved problem's values and duals (after a successful solve)."""
        duals = {
            name: [np.atleast_1d(np.asarray(c.dual_value, dtype=float)) for c in group]
            for name, group in self.named.items()
            if all(c.dual_value is not None for c in group)
        }
        return SolveResult(
            status=status,
            solver=solver,
            x=np.asarray(self.terms.x.value, dtype=float).copy(),
            objective=float(self.problem.value),
            seconds=time.perf_counter() - start,
            duals=duals,
            attempts=attempts,
            risk_form=self.shape.risk_form,
        )

    def slack_values(self) -> dict[str, FloatArray]:
        """After an elastic solve: how much each limit had to give."""
        return {
            name: np.atleast_1d(np.asarray(s.value, dtype=float))
            for name, s in self.slacks.items()
            if s.value is not None
        }


def _scenario_losses(universe: Universe, shape: ModelShape) -> ScenarioLosses:
    """The failure scenarios of `universe`'s priors enumerated for `shape`, with their losses."""
    structure = Structure(universe)
    scenarios = enumerate_scenarios(
        structure,
        universe.stress,
        beta=shape.cvar_beta,
        tolerance=shape.tail_tolerance,
        max_scenarios=shape.max_scenarios,
        depth=shape.depth,
    )
    return ScenarioLosses(structure, scenarios)
