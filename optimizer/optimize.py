"""`optimize(inputs) -> Plan`: the model end to end, pure (no I/O, no clock, no logging).

Steps: prepare parameter values (venues never observed are held, exit-only ones may only be sold), pre-check, solve on the compiled problem,
re-validate x in numpy, apply the minimum-move heuristic, apply the no-trade band, explain (binding limits with
shadow prices), or diagnose. Any failure returns a "hold" plan with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from optimizer.diagnose import elastic, prechecks
from optimizer.evaluate import TOLERANCE, amortised_cost, clean, metrics, violations
from optimizer.explain import explain
from optimizer.forced_sale import rung_losses, sale_floors, sale_rates
from optimizer.inputs import Limits, OptimizationInputs, Universe, VenueKind
from optimizer.moves import one_off_cost_share, round_trip_cost_share, tree_moves
from optimizer.plan import (
    BindingLimit,
    BlockedVenue,
    Costs,
    Diagnosis,
    HeldVenue,
    Hold,
    Plan,
    RecordedEnumeration,
    RecordedProblem,
    RecordedScenario,
    SolverInfo,
    TailBound,
)
from optimizer.problem import (
    DEFAULT_SOLVERS,
    AllocationModel,
    ModelShape,
    ParameterValues,
    RiskForm,
    SolveResult,
)
from optimizer.scenarios import RESIDUAL_NAME, ScenarioSet
from optimizer.structure import FloatArray

MAX_MIN_MOVE_ROUNDS = 10

UNCAPPED_NODE = 2.0
"""The exposure cap of a risk node without `cap`: above any exposure a book can have (a share, at most 1)."""


def shape_for(
    inputs: OptimizationInputs, risk_form: RiskForm = "cuts", depth: int | None = None
) -> ModelShape:
    return shape_of(inputs.limits, risk_form, depth)


def shape_of(lim: Limits, risk_form: RiskForm = "cuts", depth: int | None = None) -> ModelShape:
    """What the compiled problem's structure depends on in the limits (everything else is a parameter)."""
    return ModelShape(
        cvar_beta=lim.cvar_beta,
        ladder_days=tuple(r.days for r in lim.ladder),
        layer_kinds=tuple(sorted(lim.layer_caps, key=str)),
        risk_form=risk_form,
        tail_tolerance=lim.tail_tolerance,
        depth=depth,
        forced_sale=lim.forced_sale_budget is not None and bool(lim.ladder),
    )


@dataclass
class ModelCache:
    """Compiled problems by universe and shape, so each cycle re-solves instead of rebuilding."""

    models: dict[tuple[str, ModelShape], AllocationModel] = field(default_factory=dict)

    def get(self, universe: Universe, shape: ModelShape) -> AllocationModel:
        key = (hashlib.sha256(universe.model_dump_json().encode()).hexdigest(), shape)
        if key not in self.models:
            self.models[key] = AllocationModel(universe, shape)
        return self.models[key]


def prepare(
    model: AllocationModel, inputs: OptimizationInputs
) -> tuple[ParameterValues, list[HeldVenue], FloatArray]:
    """Parameter values for this cycle, the venues held at their weight, and each venue's path yield.

    x0 is where the capital is headed: settled holdings plus in-flight capital at its destination. Costs are
    round trips: an entry into a subtree is charged its entry cost plus the exit it implies (the venue's cheaper exit
    route at today's path yield), amortised over the horizon and multiplied by `trade_cost_multiple`; an exit is
    then already paid for (a position is valued at what it fetches on the way out), so `c_out` is zero.
    """
    st, lim = model.structure, inputs.limits
    total = inputs.portfolio_eth
    idx = st.venue_index
    x0 = np.array([inputs.holdings_eth.get(v, 0.0) for v in st.venue_ids]) / total
    offset = np.zeros(st.n_venues)
    for f in inputs.in_flight:
        x0[idx[f.to_venue]] += f.amount_eth / total
        offset[idx[f.from_venue]] += f.amount_eth / total
        offset[idx[f.to_venue]] -= f.amount_eth / total
    own, missing = st.component_arrays(inputs.yields)
    yields = st.path @ own
    lo = np.array([v.min_share for v in inputs.universe.venues])
    hi = np.array([v.max_share for v in inputs.universe.venues])
    held: list[HeldVenue] = []
    exit_only = {idx[v] for v in inputs.exit_only}
    for i in np.flatnonzero(missing):
        if i in exit_only:
            continue  # went stale past the window: its missing components count 0 (`own` left them out)
        lo[i] = hi[i] = x0[i]
        yields[i] = 0.0
        held.append(
            HeldVenue(venue=st.venue_ids[i], weight=float(x0[i]), reason="no yield observed yet: held")
        )
    room = np.ones(st.n_venues)
    for venue in {**inputs.exit_only, **inputs.entry_blocked}:  # an exit-only venue is closed to entries too
        k = st.venue_index[venue]
        room[k] = 0.0
        lo[k] = min(lo[k], x0[k])  # a min share it does not meet cannot be reached without an entry
    for k in exit_only:
        lo[k] = 0.0  # nothing verifiable says it still earns: it may be sold whatever its min share
    # The holding period: capital does not leave the subtree of a venue bought within it (restaking it stays
    # inside), except what the venue is above its max share by and what it holds of exit-only venues.
    exit_room = np.ones(st.n_venues)
    if inputs.recent_entries:
        sellable = np.zeros(st.n_venues)
        sellable[list(exit_only)] = x0[list(exit_only)]
        for venue in inputs.recent_entries:
            k = idx[venue]
            exit_room[k] = max(x0[k] - hi[k], 0.0) + float(st.subtree[k] @ sellable)
    amort = 365.0 / lim.horizon_days
    exit_rate, exit_days, _ = st.exit_routes(yields)
    discount = np.zeros(st.n_venues)  # a yearly yield an entry does not count on (estimate's spread): on p
    for venue, d in inputs.entry_discount.items():
        discount[idx[venue]] = d
    # The ladder counts capital where it is headed; in-flight capital is there only after `days_left`, so a rung
    # counts it only if it is back as ETH in time: the floor rises by what x would count but will not be back.
    ladder_min = np.array([r.min_share for r in lim.ladder])
    for r, rung in enumerate(lim.ladder):
        for f in inputs.in_flight:
            to = idx[f.to_venue]
            if st.days_to_eth[to] <= rung.days + 1e-12 < f.days_left + st.days_to_eth[to]:
                ladder_min[r] += f.amount_eth / total
    # An uncapped node: never binds (Ethereum consensus, every staking node's parent, is one).
    node_cap = np.array([UNCAPPED_NODE if n.cap is None else n.cap for n in inputs.universe.nodes])
    layer_cap = np.array([lim.layer_caps[k] for k in model.shape.layer_kinds])
    stress = [model.scenarios[i].stress_max_loss for i in model.losses.stress_limited]
    values = ParameterValues(
        yields=yields,
        expected_loss=model.losses.expected_loss,
        x0=x0,
        lo=lo,
        hi=hi,
        c_in=(st.entry_cost + exit_rate) * amort * lim.trade_cost_multiple + discount,
        c_out=np.zeros(st.n_venues),
        node_cap=node_cap,
        layer_cap=layer_cap,
        ladder_min=ladder_min,
        cvar_budget=1.0 if lim.cvar_budget is None else lim.cvar_budget,
        risk_aversion=lim.lam,
        max_turnover=1.0 if lim.max_turnover is None else lim.max_turnover,
        stress_max=np.array([1.0 if s is None else s for s in stress]),
        entry_room=room,
        exit_room=exit_room,
        queued=(exit_days > 0.0).astype(float),
        in_flight_offset=offset,
    )
    if model.shape.forced_sale:
        values.sale_rate = sale_rates(inputs.universe, lim.sale_depeg)
        values.sale_floor = sale_floors(lim)
        values.sale_budget = 1.0 if lim.forced_sale_budget is None else lim.forced_sale_budget
    # A book may be held past a limit by half the drift band: the other half is room for the accrual that goes on
    # while a corrective exit waits in its queue (still exposed where it left), so the exposure stays within the band
    # on every day, not only on decision days.
    drift = TOLERANCE + lim.drift_band / 2.0
    # Only the limits on the exposure: a share bound or the entry gate is on x, which a queued exit does change.
    # Today's exposure counts in-flight capital where it left; a plan's deposits wait until it lands, so the book
    # is never riskier than this before it reaches the target.
    on_exposure = dataclasses.replace(
        values, lo=np.zeros(st.n_venues), hi=np.ones(st.n_venues), entry_room=None, exit_room=None
    )
    today = values.today()
    if violations(
        st, model.losses, model.shape, on_exposure, x0, check_turnover=False, tol=drift, exposure=today
    ):
        # Queued exits cannot bring ETH back sooner, so a book already short of a ladder rung (or past a risk
        # limit, in-flight capital included) could not start to move if the floors also asked for the in-flight
        # capital that is not back in time: the rungs drop to their configured shares (the plan says so). A book
        # past a limit by no more than the drift band (yield accrual nudges a book at its CVaR budget over it every
        # day) is one the plan may hold: the floors stay.
        values.queued = np.zeros(st.n_venues)
        values.ladder_min = np.array([r.min_share for r in lim.ladder])
        values.transit_relaxed = True
    elif violations(st, model.losses, model.shape, on_exposure, x0, check_turnover=False, exposure=today):
        _limits_at_today(model, values)
    return values, held, yields


def _limits_at_today(model: AllocationModel, values: ParameterValues) -> None:
    """The book is past a limit by no more than the drift band (yield accrual nudges a book at its CVaR budget over
    it): each limit becomes the looser of itself and today's level, so the book may stay where it is (queued exits
    cannot lower today's exposure, nor bring ETH back sooner) but no move may take it further past."""
    st, shape, sl = model.structure, model.shape, model.losses
    e0 = values.today()
    values.node_cap = np.maximum(values.node_cap, st.exposure @ e0)
    if shape.layer_kinds:
        values.layer_cap = np.maximum(values.layer_cap, st.kind_matrix(shape.layer_kinds) @ e0)
    if shape.ladder_days:
        liquid = st.ladder_matrix(shape.ladder_days) @ values.x0
        values.ladder_min = np.minimum(values.ladder_min, liquid)
    scen = sl.losses(e0)
    values.cvar_budget = max(values.cvar_budget, sl.cvar(e0, shape.cvar_beta, scen))
    if len(values.stress_max):
        values.stress_max = np.maximum(values.stress_max, scen[list(sl.stress_limited)])
    if shape.forced_sale and values.sale_rate is not None and values.sale_floor is not None:
        loss, _ = rung_losses(st.universe, values.x0, values.sale_rate, values.sale_floor)
        values.sale_budget = max(values.sale_budget, float(loss.max(initial=0.0)))
    values.limits_at_today = True


def optimize(
    inputs: OptimizationInputs,
    *,
    cache: ModelCache | None = None,
    solvers: tuple[str, ...] = DEFAULT_SOLVERS,
    risk_form: RiskForm = "cuts",
) -> Plan:
    """Propose the allocation with the best risk-adjusted yield under the limits, or say why to hold."""
    model = (cache or ModelCache()).get(inputs.universe, shape_for(inputs, risk_form))
    if not (inputs.recent_entries or inputs.recent_exits):
        return _plan(model, inputs, solvers)
    # The holding period: what was bought is kept, what was sold is not bought back, while the limits allow it.
    days = inputs.limits.hold_days
    closed = {
        v: f"sold {when}: not bought back within the {days:g}-day holding period"
        for v, when in inputs.recent_exits.items()
    }
    held = inputs.model_copy(update={"entry_blocked": {**closed, **inputs.entry_blocked}})
    plan = _plan(model, held, solvers)
    if plan.hold != Hold.LIMITS_UNMET:
        if inputs.recent_entries:
            kept = ", ".join(f"{v} (bought {when})" for v, when in sorted(inputs.recent_entries.items()))
            note = f"kept at least at today's weight, restaked or not, within the {days:g}-day holding period: {kept}"
            plan = plan.model_copy(update={"heuristics": [*plan.heuristics, note]})
        return plan
    free = _plan(model, inputs.model_copy(update={"recent_entries": {}, "recent_exits": {}}), solvers)
    if free.hold == Hold.LIMITS_UNMET:
        return free  # the limits cannot be met with or without the hold: its diagnosis says why, not the hold
    note = (
        f"the {days:g}-day holding period was lifted: with what was bought kept and what was sold not bought back "
        f"the limits could not be met ({plan.reason})"
    )
    return free.model_copy(update={"heuristics": [*free.heuristics, note]})


def _plan(model: AllocationModel, inputs: OptimizationInputs, solvers: tuple[str, ...]) -> Plan:
    values, held, own = prepare(model, inputs)
    return _Run(model, inputs, values, held, own, solvers).plan()


@dataclass
class _Run:
    model: AllocationModel
    inputs: OptimizationInputs
    values: ParameterValues
    held: list[HeldVenue]
    own: FloatArray
    solvers: tuple[str, ...]
    heuristics: list[str] = field(default_factory=list)
    solves: int = 0
    seconds: float = 0.0
    attempts: list[tuple[str, str]] = field(default_factory=list)

    def _solve(self) -> SolveResult:
        res = self.model.solve(self.values, self.solvers)
        self.solves += 1
        self.seconds += res.seconds
        self.attempts.extend(res.attempts)
        return res

    def plan(self) -> Plan:
        st, v = self.model.structure, self.values
        if v.limits_at_today:
            self.heuristics.append(
                "the current exposure is past a limit by less than the drift band (yield accrual): the limits are "
                "taken at today's level, so the book may stay but no move takes it further past them"
            )
        if v.transit_relaxed:
            self.heuristics.append(
                "today's book (in-flight capital where it left) already breaks a limit, and queued exits cannot "
                "bring ETH back sooner: the ladder's floors do not ask for the in-flight capital that is not back "
                "in time, and the limits hold on the target allocation"
            )
        problems = prechecks(st, self.model.shape, v)
        if problems:
            return self._hold(Hold.LIMITS_UNMET, "the limits cannot all be met", None, diagnosis=problems)
        res = self._solve()
        if res.infeasible:
            found, why = elastic(self.model, v, self.solvers)
            return self._hold(Hold.LIMITS_UNMET, why or "the limits cannot all be met", res, diagnosis=found)
        if not res.ok or res.x is None:
            return self._hold(Hold.SOLVER_FAILED, f"solver failed: {res.status}", res)
        x = clean(res.x)
        bad = violations(st, self.model.losses, self.model.shape, v, x)
        if bad:
            return self._hold(
                Hold.ANSWER_BREAKS_LIMITS, "the solver's answer breaks limits: " + "; ".join(bad), res
            )
        # Whether today's book meets the limits is judged on the limits as prepared: the minimum-move heuristic's
        # bounds (a venue fixed at its weight, a remainder emptied at 0) are not limits the book could break.
        limits = dataclasses.replace(v, lo=v.lo.copy(), hi=v.hi.copy())
        checked, notes = (x, res), len(self.heuristics)
        x, res = self._min_move(x, res)
        # The heuristic's re-solves are answers too: re-checked like the first (on the bounds they were solved with:
        # a small move dropped at a venue a hair above its max share is the heuristic's choice, not a solver fault),
        # else the first is the plan (and what the heuristic did is not in it).
        bad = violations(st, self.model.losses, self.model.shape, v, x)
        if bad:
            v.lo, v.hi = limits.lo.copy(), limits.hi.copy()
            x, res = checked
            del self.heuristics[notes:]
            self.heuristics.append(
                f"minimum move {self.inputs.limits.min_move_eth:g} ETH: a re-solve's answer broke limits "
                f"({'; '.join(bad)}); the plan is the solver's first answer, its small moves and remainders kept"
            )
        moves = tree_moves(st, v.x0, x, self.inputs.portfolio_eth, self.own)
        lim = self.inputs.limits
        hold_ok = not violations(
            st,
            self.model.losses,
            self.model.shape,
            limits,
            v.x0,
            check_turnover=False,
            tol=TOLERANCE + lim.drift_band / 2.0,  # as in `prepare`: half the band, the rest for queued exits
            exposure=v.today(),
        )
        gas_share = len(moves) * lim.gas_cost_eth / self.inputs.portfolio_eth
        amort = 365.0 / lim.horizon_days
        k = lim.trade_cost_multiple
        round_trip = round_trip_cost_share(st, v.x0, x, self.own) * amort
        gain = self._objective(x) - self._objective(v.x0) - gas_share * amort
        gain_bps, round_trip_bps = gain * 1e4, round_trip * 1e4
        band = f"each move must gain {k:g}× its round-trip cost over the {lim.horizon_days:g}-day horizon"
        if not moves:
            reason = "the current allocation is already optimal"
            if k > 1.0:
                reason += f" (no-trade band: no move gains more than {k:g}× its round-trip cost)"
            return self._hold(Hold.OPTIMAL, reason, res, x=v.x0)
        floor_bps = max(lim.min_improvement_bps, (k - 1.0) * round_trip_bps)
        if hold_ok and gain_bps < floor_bps:
            short = floor_bps - gain_bps
            return self._hold(
                Hold.BELOW_BAND,
                f"risk-adjusted gain {gain_bps:.2f} bp/yr after costs and gas is below the no-trade band of "
                f"{floor_bps:.4g} bp/yr (short by {short:.2f} bp/yr; the band is the larger of "
                f"min_improvement_bps {lim.min_improvement_bps:g} and {k - 1.0:g} × the moves' round-trip cost "
                f"{round_trip_bps:.2f} bp/yr)",
                res,
                x=v.x0,
                gain_bps=gain_bps,
            )
        reason = (
            f"risk-adjusted gain {gain_bps:.2f} bp/yr after amortised round-trip costs ({round_trip_bps:.2f} bp/yr: entries "
            f"and the exits they imply) and gas"
        )
        if k > 1.0:
            reason += f"; no-trade band: {band}"
        if not hold_ok:
            reason += "; the current allocation breaks limits, so moving is required"
        return self._build("rebalance", reason, res, x, gain_bps=gain_bps)

    def _objective(self, x: FloatArray) -> float:
        """Risk-adjusted yield after the round-trip costs as they are (the LP's costs divided by the band's k)."""
        m = metrics(self.model.losses, self.values, self.model.shape.cvar_beta, x)
        k = self.inputs.limits.trade_cost_multiple
        return m.risk_adjusted - amortised_cost(self.model.structure, self.values, x) / k

    def _min_move(self, x: FloatArray, res: SolveResult) -> tuple[FloatArray, SolveResult]:
        """Moves below the minimum size are dropped (venue fixed at its weight) and the LP re-solved; then a sale
        that would leave less than the minimum move behind sells everything (venue fixed at 0: a remainder that
        small could only be sold by a move below the minimum, so it would stay for good) where the LP can still
        meet every limit that way, and the small moves are dropped again. A sale is a withdrawal out of the venue's
        subtree of at least the minimum, which the remainder joins; where the limits need the remainder, it stays
        and the heuristics say so. Both steps repeat on each re-solve's answer (a re-solve that empties one venue
        may leave a remainder in another), at most MAX_MIN_MOVE_ROUNDS rounds: each feasible one fixes or empties at
        least one more venue, so they end; the plan says if they run out first."""
        v, lim = self.values, self.inputs.limits
        ids = self.model.structure.venue_ids
        threshold = lim.min_move_eth / self.inputs.portfolio_eth
        if threshold <= 0.0:
            return x, res
        fixed: list[str] = []
        emptied: list[str] = []
        stuck = False  # fixing the small moves of this x was infeasible: they are kept
        for _ in range(MAX_MIN_MOVE_ROUNDS):
            delta = np.abs(x - v.x0)
            small = np.flatnonzero((delta > 1e-9) & (delta < threshold))
            saved = (v.lo.copy(), v.hi.copy())
            if small.size and not stuck:
                v.lo[small] = v.x0[small]
                v.hi[small] = v.x0[small]
                again = self._solve()
                if not again.ok or again.x is None:
                    v.lo, v.hi = saved
                    self.heuristics.append(
                        f"minimum move {lim.min_move_eth:g} ETH: fixing {', '.join(ids[i] for i in small)} made "
                        f"the problem {again.status}; their small moves are kept"
                    )
                    stuck = True
                    continue
                fixed += [ids[i] for i in small]
                x, res = clean(again.x), again
                continue
            dust = self._remainders(x, threshold)
            if dust.size == 0:
                break
            v.hi[dust] = 0.0
            again = self._solve()
            if not again.ok or again.x is None:
                v.lo, v.hi = saved  # the remainder stays: the limits need it
                self.heuristics.append(
                    f"minimum move {lim.min_move_eth:g} ETH: selling all of {', '.join(ids[i] for i in dust)} made "
                    f"the problem {again.status}; the limits need what is left, so it stays"
                )
                break
            emptied += [ids[i] for i in dust]
            x, res = clean(again.x), again
            stuck = False  # a new x: its small moves are tried again
        else:
            delta = np.abs(x - v.x0)
            unfinished = (delta > 1e-9) & (delta < threshold)
            unfinished[self._remainders(x, threshold)] = True
            left = np.flatnonzero(unfinished)
            if left.size:
                self.heuristics.append(
                    f"minimum move {lim.min_move_eth:g} ETH: stopped after {MAX_MIN_MOVE_ROUNDS} re-solves; "
                    f"{', '.join(ids[i] for i in left)} may still move by less than the minimum or keep less than "
                    "it after a sale"
                )
        if fixed:
            self.heuristics.append(
                f"minimum move {lim.min_move_eth:g} ETH: dropped moves at {', '.join(dict.fromkeys(fixed))} and "
                "re-solved with those venues fixed at their current weight"
            )
        if emptied:
            self.heuristics.append(
                f"minimum move {lim.min_move_eth:g} ETH: sold all of {', '.join(emptied)} rather than leave less "
                "than the minimum move behind, and re-solved"
            )
        return x, res

    def _remainders(self, x: FloatArray, threshold: float) -> npt.NDArray[np.intp]:
        """Venues a sale leaves with less than the minimum move (`threshold`, a share): a sale is capital leaving the
        venue's subtree by at least the minimum, a withdrawal the remainder can join. A holding that falls because
        it is restaked into a child is not one (emptying it would add a withdrawal of the remainder alone, a move
        below the minimum); idle ETH and a venue with a min share are never emptied."""
        st, v = self.model.structure, self.values
        sold = -(st.subtree @ (x - v.x0))
        found = (x > 1e-9) & (x < threshold) & (v.x0 - x >= threshold) & (sold >= threshold) & (v.lo <= 0.0)
        found[st.venue_index[st.universe.root.id]] = False
        return np.flatnonzero(found)

    def _hold(
        self,
        why: Hold,
        reason: str,
        res: SolveResult | None,
        *,
        diagnosis: list[Diagnosis] | None = None,
        x: FloatArray | None = None,
        gain_bps: float = 0.0,
    ) -> Plan:
        x_hold = self.values.x0 if x is None else x
        return self._build(
            "hold", reason, res, x_hold, gain_bps=gain_bps, diagnosis=diagnosis or [], hold=why
        )

    def _build(
        self,
        status: str,
        reason: str,
        res: SolveResult | None,
        x: FloatArray,
        *,
        gain_bps: float = 0.0,
        diagnosis: list[Diagnosis] | None = None,
        hold: Hold | None = None,
    ) -> Plan:
        st, v, inp = self.model.structure, self.values, self.inputs
        beta = self.model.shape.cvar_beta
        moves = tree_moves(st, v.x0, x, inp.portfolio_eth, self.own) if status == "rebalance" else []
        target = x if status == "rebalance" else v.x0
        total_share = one_off_cost_share(st, v.x0, target, self.own)
        round_trip = round_trip_cost_share(st, v.x0, target, self.own)
        gas = len(moves) * inp.limits.gas_cost_eth
        ids = st.venue_ids
        tail = self._tail(target)
        return Plan(
            status="rebalance" if status == "rebalance" else "hold",
            reason=reason,
            hold=hold,
            portfolio_eth=inp.portfolio_eth,
            current_weights={ids[i]: float(v.x0[i]) for i in range(st.n_venues)},
            target_weights={ids[i]: float(target[i]) for i in range(st.n_venues)},
            target_eth={ids[i]: float(target[i] * inp.portfolio_eth) for i in range(st.n_venues)},
            moves=moves,
            before=metrics(self.model.losses, v, beta, v.x0, v.today()),
            # a held book stays exposed as it is today until its flights land; a target is reached only then
            after=metrics(self.model.losses, v, beta, target, None if status == "rebalance" else v.today()),
            costs=Costs(
                total_eth=total_share * inp.portfolio_eth,
                total_share=total_share,
                amortised_per_year=round_trip * 365.0 / inp.limits.horizon_days,
                gas_eth=gas,
                round_trip_eth=round_trip * inp.portfolio_eth,
            ),
            turnover=0.5 * float(np.abs(target - v.x0).sum()),
            gain_bps=gain_bps,
            binding=self._binding(res, x) if res is not None and res.ok else [],
            held=self.held,
            entry_blocked=[
                BlockedVenue(venue=venue, weight=float(v.x0[st.venue_index[venue]]), reason=why)
                for venue, why in sorted({**inp.exit_only, **inp.entry_blocked}.items())
            ],
            heuristics=self.heuristics,
            diagnosis=diagnosis or [],
            solver=SolverInfo(
                name=res.solver if res else None,
                status=res.status if res else "not solved",
                seconds=self.seconds,
                solves=self.solves,
                attempts=self.attempts,
                risk_form=res.risk_form if res is not None and res.risk_form else self.model.shape.risk_form,
                scenarios=len(self.model.scenarios),
                scenario_note=tail.note,
            ),
            problem=self._record(res),
            tail=tail,
        )

    def _tail(self, x: FloatArray) -> TailBound:
        """The enumeration's depth and what it leaves out, for allocation x."""
        sl, shape = self.model.losses, self.model.shape
        r = sl.residual
        tail_mass = 1.0 - shape.cvar_beta
        n_enum = sl.scenarios.enumerated if isinstance(sl.scenarios, ScenarioSet) else len(sl.scenarios)
        el = float(r.expected_loss @ x)
        over = el / tail_mass
        note = (
            f"every combination of up to {r.depth} simultaneous failures is a scenario ({n_enum:,}), plus "
            f"{len(sl.named_stress)} stress scenario(s); the {r.mass:.3g} probability of more "
            f"({r.mass / tail_mass:.3g} of the {tail_mass:.3g} tail) counts in CVaR with its exact expected loss, "
            f"as if all in the tail: CVaR may be overstated by at most {over * 100:.3g} pp, expected loss is exact"
        )
        if r.capped:
            note += (
                f" (enumeration stopped at the {shape.max_scenarios:,}-scenario cap, above the tolerance of "
                f"{shape.tail_tolerance:g} of the tail)"
            )
        return TailBound(
            depth=r.depth,
            scenarios=n_enum,
            residual_mass=r.mass,
            tail_share=r.mass / tail_mass,
            tolerance_share=shape.tail_tolerance,
            capped=r.capped,
            residual_expected_loss=el,
            cvar_overstatement=over,
            note=note,
        )

    def _binding(self, res: SolveResult, x: FloatArray) -> list[BindingLimit]:
        """Limits with a positive shadow price, in words: what 1 percentage point more room is worth, each figure
        checked by re-solving with that limit relaxed (`optimizer.explain`)."""
        del x
        venues = self.inputs.universe.venues
        held = {h.venue for h in self.held}
        fixed = {
            i
            for i, v in enumerate(venues)
            if v.id in held or self.values.lo[i] != v.min_share or self.values.hi[i] != v.max_share
        }
        return explain(self.model, self.values, res, fixed, self.solvers)

    def _record(self, res: SolveResult | None) -> RecordedProblem:
        st, v, shape, lim = self.model.structure, self.values, self.model.shape, self.inputs.limits
        return RecordedProblem(
            inputs=self.inputs,
            venue_order=list(st.venue_ids),
            node_order=list(st.node_ids),
            x0=v.x0.tolist(),
            lower=v.lo.tolist(),
            upper=v.hi.tolist(),
            net_yield=v.yields.tolist(),
            expected_loss=v.expected_loss.tolist(),
            entry_cost_amortised=v.c_in.tolist(),
            exit_cost_amortised=v.c_out.tolist(),
            days_to_eth=st.days_to_eth.tolist(),
            exposure=[sorted(st.node_ids[j] for j in s) for s in st.venue_exposure_sets],
            node_caps=v.node_cap.tolist(),
            layer_caps={str(k): float(lim.layer_caps[VenueKind(k)]) for k in shape.layer_kinds},
            ladder=[(r.days, float(f)) for r, f in zip(lim.ladder, v.ladder_min, strict=True)],
            cvar_beta=shape.cvar_beta,
            cvar_budget=v.cvar_budget,
            risk_aversion=v.risk_aversion,
            max_turnover=v.max_turnover,
            scenarios=[
                RecordedScenario(
                    name=s.name,
                    probability=s.probability,
                    failed=[st.node_ids[j] for j in sorted(s.failed)],
                    lgd={st.node_ids[j]: g for j, g in s.lgd},
                    max_loss=s.stress_max_loss,
                )
                for _, s in self.model.losses.named_stress
            ],
            objective=res.objective if res is not None and res.ok else None,
            queued=[] if v.queued is None else v.queued.tolist(),
            in_flight_offset=[] if v.in_flight_offset is None else v.in_flight_offset.tolist(),
            enumeration=self._enumeration(),
        )

    def _enumeration(self) -> RecordedEnumeration | None:
        sc = self.model.scenarios
        if not isinstance(sc, ScenarioSet):
            return None
        return RecordedEnumeration(
            depth=sc.depth,
            scale=sc.scale,
            scenarios=sc.enumerated,
            residual_mass=sc.residual.mass,
            residual_expected_loss=sc.residual.expected_loss.tolist(),
        )


__all__ = ["RESIDUAL_NAME", "ModelCache", "optimize", "prepare", "shape_for"]
