"""The daily loop. For each day t of the period, for every strategy:

1. queued exits due by t land;
2. a stress event dated t hits every settled and queued position exposed to the failed nodes;
3. on a decision day the strategy sees `Known` built from history rows ≤ t − 1: the daemon's robust estimate over
   the observed values of the window (`rule`, from `[rates]`), with the venues closed to entries (a carried or
   stale value, too few observations), and may return target weights; a strategy that `SeesInFlight` (the
   optimizer) is shown the settled balances and the capital in exit queues first, so it never re-issues a move in
   flight and counts queued capital where it is exposed; the book turns the targets into orders, each exit by the
   cheaper of its venue's routes at the path yields, as the model prices them (new decisions cancel open orders);
4. open orders move what the funds allow (costs and gas paid);
5. settled balances accrue what the venue EARNED on day t (`History.earned`: realised exchange-rate growth, a
   trailing window's APR over the days it measured, a daily APY compounded once; negative returns included; after
   haircuts along the venue's path); nothing when nothing says what it earned, counted as `unpriced_days`;
6. the day's value, weights (queued capital at its destination, as strategies see them) and exposure (queued
   capital at the venue it left, where it is still at risk) are recorded; the modelled CVaR and every limit check
   are on the exposure.

Trades and turnover count executed legs (`Book.legs`), not plans: a plan re-issued while capital is in flight
adds nothing until capital moves.

Everything is deterministic: no randomness, no clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from aggregator.research.backtest.book import Book, Leg, reversed_legs
from aggregator.research.backtest.history import History
from aggregator.research.backtest.strategies import Known, SeesInFlight, Strategy
from aggregator.settings.backtest import StressEvent
from aggregator.settings.rates import InputRule
from optimizer import AllocationModel, Limits, OptimizationInputs
from optimizer.evaluate import violations
from optimizer.optimize import prepare
from optimizer.scenarios import Scenario, ScenarioLosses, weighted_cvar
from optimizer.structure import FloatArray, Structure

DAYS_PER_YEAR = 365.0
LATEST = InputRule()  # no window: decisions see the latest value (carried ones still close entries)


@dataclass
class Path:
    """One strategy's daily record."""

    name: str
    values: list[float] = field(default_factory=list)
    weights: list[FloatArray] = field(default_factory=list)
    cvar: list[float] = field(default_factory=list)
    within: list[bool] = field(default_factory=list)
    cvar_within: list[bool] = field(default_factory=list)
    broken: Counter[str] = field(default_factory=Counter)
    targets: list[tuple[date, FloatArray | None]] = field(default_factory=list)  # each decision's answer
    exposure: list[FloatArray] = field(default_factory=list)  # queued capital at the venue it left
    settled: list[FloatArray] = field(
        default_factory=list
    )  # settled ETH per venue as a share, what earned that day
    decisions: int = 0
    plans: int = 0  # decisions that returned a target
    trades: int = 0  # executed legs
    reversed: int = 0  # executed legs whose opposite leg executed within 14 days
    turnover: float = 0.0  # executed
    planned_turnover: float = 0.0  # summed over plans, as issued
    costs_eth: float = 0.0
    stress_loss_eth: float = 0.0
    stress_exposed: dict[date, FloatArray] = field(
        default_factory=dict
    )  # ETH per venue, settled + queued out
    unpriced_days: int = 0
    legs: list[Leg] = field(default_factory=list)


@dataclass(frozen=True)
class Replay:
    days: tuple[date, ...]
    venues: tuple[str, ...]
    venue_yield: FloatArray  # [day, venue] net yield per the data, NaN when unpriced
    venue_earned: FloatArray  # [day, venue] realised return of the day after haircuts, NaN when unknown
    paths: tuple[Path, ...]
    start_eth: float
    drift_tolerance: float


def venue_yields(structure: Structure, history: History) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """([day, venue] net yield after haircuts along the path, NaN where a component is missing; priced mask)."""
    n_days = len(history.days)
    own = np.zeros((n_days, structure.n_venues))
    missing = np.zeros((n_days, structure.n_venues), dtype=bool)
    col = {c: k for k, c in enumerate(history.components)}
    for i, venue in enumerate(structure.universe.venues):
        for comp in venue.components:
            series = history.values[:, col[f"{venue.id}.{comp.name}"]]
            own[:, i] += (1.0 - comp.haircut) * np.nan_to_num(series)
            missing[:, i] |= np.isnan(series)
    path_missing = (missing.astype(float) @ structure.path.T) > 0
    net = own @ structure.path.T
    return np.where(path_missing, np.nan, net), ~path_missing


def venue_earned(structure: Structure, history: History) -> FloatArray:
    """[day, venue] one day's realised return after haircuts along the path, NaN where a component says nothing.
    A history without `earned` (a synthetic one) earns its values as APR."""
    earned = history.earned if history.earned is not None else history.values / DAYS_PER_YEAR
    n_days = len(history.days)
    own = np.zeros((n_days, structure.n_venues))
    missing = np.zeros((n_days, structure.n_venues), dtype=bool)
    col = {c: k for k, c in enumerate(history.components)}
    for i, venue in enumerate(structure.universe.venues):
        for comp in venue.components:
            series = earned[:, col[f"{venue.id}.{comp.name}"]]
            if comp.haircut >= 1.0:
                continue  # nothing of it is counted: its data do not matter
            own[:, i] += (1.0 - comp.haircut) * np.nan_to_num(series)
            missing[:, i] |= np.isnan(series)
    path_missing = (missing.astype(float) @ structure.path.T) > 0
    out: FloatArray = np.where(path_missing, np.nan, own @ structure.path.T)
    return out


def shock_vector(structure: Structure, event: StressEvent) -> FloatArray:
    """Each venue's loss when `event.node` fails (with the nodes that fail with it), as the optimizer models it."""
    j = structure.node_index[event.node]
    failed = structure.failure_closure[j]
    lgd = tuple(
        (k, event.loss if (k == j and event.loss is not None) else float(structure.node_lgd[k]))
        for k in sorted(failed)
    )
    scenario = Scenario(f"{event.node} fails", 0.0, frozenset(failed), lgd)
    out: FloatArray = ScenarioLosses(structure, (scenario,)).dense[0]
    return out


def run(
    model: AllocationModel,
    limits: Limits,
    history: History,
    strategies: Sequence[Strategy],
    start_holdings: dict[str, float],
    *,
    every_days: int = 1,
    rule: InputRule = LATEST,
    stress: Sequence[StressEvent] = (),
    drift_tolerance: float = 1e-7,
    progress: Callable[[int, int], None] | None = None,
) -> Replay:
    """Replay history rows 1.. (row 0 is the day before the period, known at its first decision)."""
    st = model.structure
    net, _ = venue_yields(st, history)
    earned = venue_earned(st, history)
    priced = ~np.isnan(earned)
    zero_yields = {v.id: {c.name: 0.0 for c in v.components} for v in st.universe.venues}
    total = sum(start_holdings.values())
    limit_values, _, _ = prepare(
        model,
        OptimizationInputs(
            universe=st.universe,
            limits=limits,
            portfolio_eth=total,
            holdings_eth=start_holdings,
            yields=zero_yields,
        ),
    )
    # The replay checks limits on the exposure it measures itself (queued capital where it left): no transit or entry
    # terms relative to the start book.
    limit_values = dataclasses.replace(
        limit_values, queued=None, in_flight_offset=None, entry_room=None, exit_room=None
    )
    shocks = {e.on: shock_vector(st, e) for e in stress}
    books = [Book.start(st, start_holdings, limits.gas_cost_eth) for _ in strategies]
    paths = [Path(name=s.name) for s in strategies]
    n_days = len(history.days)
    for t in range(1, n_days):
        day = history.days[t]
        known: Known | None = None
        if (t - 1) % every_days == 0:
            seen = history.seen(t - 1, st.universe, rule)  # rows ≤ t − 1 only: nothing from day t on
            own, unpriced = st.component_arrays(seen.yields)
            known = Known(
                yields=seen.yields,
                priced=~unpriced,
                net_yield=np.where(unpriced, 0.0, st.path @ own),
                entry_blocked=seen.entry_blocked,
                exit_only=seen.exit_only,
                entry_discount=seen.entry_discount,
            )
        rate = np.nan_to_num(earned[t])
        for strategy, book, path in zip(strategies, books, paths, strict=True):
            book.land(day)
            if day in shocks:
                path.stress_exposed[day] = book.exposed()
                path.stress_loss_eth += book.shock(shocks[day])
            if known is not None:
                path.decisions += 1
                if isinstance(strategy, SeesInFlight):
                    settled = dict(zip(st.venue_ids, book.balances.tolist(), strict=True))
                    strategy.see_book(settled, book.in_flight_moves(day), book.trades(day))
                target = strategy.target(known, book.weights(), book.value)
                path.targets.append((day, target))
                if target is not None:
                    path.plans += 1
                    path.planned_turnover += book.decide(target, known.net_yield)
            before = book.costs_eth
            book.execute(day)
            path.costs_eth += book.costs_eth - before
            held = book.balances > 1e-9
            path.unpriced_days += int(bool(np.any(held & ~priced[t])))
            path.settled.append(book.balances / book.value if book.value > 0 else book.balances.copy())
            book.accrue(rate)
            x = book.exposure()
            scen = model.losses.losses(x)
            path.values.append(book.value)
            path.weights.append(book.weights())
            path.exposure.append(x)
            cvar = weighted_cvar(scen, model.losses.probabilities, model.shape.cvar_beta)
            path.cvar.append(cvar)
            path.cvar_within.append(cvar <= limit_values.cvar_budget + drift_tolerance)
            bad = violations(
                st, model.losses, model.shape, limit_values, x, check_turnover=False, tol=drift_tolerance
            )
            path.within.append(not bad)
            for b in bad:
                path.broken["CVaR budget" if b.startswith("CVaR") else b.split(":")[0]] += 1
        if progress is not None:
            progress(t, n_days - 1)
    for book, path in zip(books, paths, strict=True):
        path.trades = len(book.legs)
        path.reversed = len(reversed_legs(book.legs))
        path.turnover = book.executed_turnover
        path.legs = book.legs
    return Replay(
        days=history.days[1:],
        venues=st.venue_ids,
        venue_yield=net[1:],
        venue_earned=earned[1:],
        paths=tuple(paths),
        start_eth=total,
        drift_tolerance=drift_tolerance,
    )


def annualised(start: float, end: float, days: int) -> float:
    if days <= 0 or start <= 0:
        return math.nan
    return float((end / start) ** (DAYS_PER_YEAR / days) - 1.0)


def max_drawdown(values: Sequence[float]) -> float:
    v = np.asarray(values)
    peak = np.maximum.accumulate(v)
    return float(np.max(1.0 - v / peak)) if v.size else 0.0
