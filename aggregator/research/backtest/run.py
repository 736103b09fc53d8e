"""Set up and run a backtest from its inputs (built from the config at the edge): history, the compiled model, the
strategies, the replay."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from pydantic import ValidationError

from aggregator.core.errors import ConfigError
from aggregator.research.backtest.history import History, build_history
from aggregator.research.backtest.inputs import BacktestInputs
from aggregator.research.backtest.replay import DAYS_PER_YEAR, Replay, annualised, max_drawdown, run
from aggregator.research.backtest.strategies import ChaseYield, EqualWeight, Fixed, Optimizer, Strategy
from aggregator.settings.backtest import BacktestSettings, OptimizerVariant, StressEvent
from aggregator.settings.rates import InputRule
from optimizer import Limits, ModelCache, Universe
from optimizer.evaluate import TOLERANCE
from optimizer.optimize import shape_of

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StrategyResult:
    name: str
    final_eth: float
    net_yield: float
    costs_eth: float
    costs_bps: float  # costs per year, in bp of the starting book
    turnover: float  # executed
    trades: int  # executed legs
    reversed: int  # executed legs undone by an opposite leg within 14 days
    plans: int  # decisions that returned a target
    planned_turnover: float  # summed over plans as issued (re-issued plans counted again)
    decisions: int
    worst_drawdown: float
    within_limits: float  # share of days within every limit, on exposed capital (queued at the venue it left)
    cvar_within_budget: float
    cvar_mean: float  # on exposed capital
    cvar_max: float
    stress_loss_eth: float
    unpriced_days: int
    broken: dict[str, int]


@dataclass(frozen=True)
class Backtest:
    settings: BacktestSettings
    history: History
    replay: Replay
    results: tuple[StrategyResult, ...]
    risk_aversions: tuple[float, ...]
    stress: tuple[StressEvent, ...]
    cvar_budget: float | None
    seconds: float
    universe: Universe | None = None  # the replayed universe (incident replays find the venues a node hits)


def variant_limits(limits: Limits, variant: OptimizerVariant) -> Limits:
    """The config's limits with the variant's fields replaced, validated as the config's are."""
    valid = sorted(type(limits).model_fields)
    unknown = sorted(set(variant.limits) - set(valid))
    if unknown:
        raise ConfigError(
            f"[backtest] optimizers {variant.name!r}: unknown [limits] fields {unknown}; valid: {valid}"
        )
    try:
        base = limits.model_dump(exclude_unset=True)
        if {"risk_aversion", "tail_weight"} & set(variant.limits):
            # one spelling of risk aversion replaces the config's, whichever it used (they must otherwise agree)
            base.pop("risk_aversion", None)
            base.pop("tail_weight", None)
        return type(limits).model_validate({**base, **variant.limits})
    except ValidationError as exc:
        raise ConfigError(f"[backtest] optimizers {variant.name!r}: {exc}") from exc


def strategies_for(
    inputs: BacktestInputs,
    bt: BacktestSettings,
    cache: ModelCache,
    risk_aversions: Sequence[float],
    variants: Sequence[OptimizerVariant] = (),
) -> list[Strategy]:
    universe = inputs.universe
    band = inputs.limits.min_move_eth / inputs.portfolio_eth
    structure = cache.get(universe, shape_of(inputs.limits)).structure
    out: list[Strategy] = [
        Fixed(name=name, structure=structure, weights_by_venue=w, band=band) for name, w in bt.fixed.items()
    ]
    out.append(EqualWeight(name="equal weight", structure=structure, band=band))
    out.append(ChaseYield(name="chase yield", structure=structure))
    for lam in risk_aversions:
        limits: Limits = inputs.limits.model_copy(update={"risk_aversion": lam, "tail_weight": None})
        out.append(Optimizer(name=f"optimizer λ={lam:g}", universe=universe, limits=limits, cache=cache))
    for v in variants:
        limits = variant_limits(inputs.limits, v)
        out.append(Optimizer(name=f"optimizer {v.name}", universe=universe, limits=limits, cache=cache))
    return out


def input_rule(inputs: BacktestInputs, bt: BacktestSettings) -> InputRule:
    """How the backtest's decisions read yields: the daemon's `[rates]` rule, with `[backtest] min_observations`
    (days) in place of the daemon's (collections) when set."""
    rule = inputs.rule
    if bt.min_observations is None:
        return rule
    return dataclasses.replace(rule, min_observations=bt.min_observations)


def backtest(
    inputs: BacktestInputs,
    *,
    stress: Sequence[StressEvent] = (),
    progress: Callable[[int, int], None] | None = None,
    cache: ModelCache | None = None,
) -> Backtest:
    """Run every strategy over the configured period. Raises ConfigError when there is no [backtest] section."""
    bt = inputs.backtest
    if bt is None:
        raise ConfigError(
            "the config has no [backtest] section: add start, end and the history series "
            "(config/demo.toml has a complete example)"
        )
    nodes = inputs.risk_node_ids
    for e in stress:
        if e.node not in nodes:
            raise ConfigError(f"--stress: unknown risk node {e.node!r}; valid: {sorted(nodes)}")
        if not bt.start <= e.on <= bt.end:
            raise ConfigError(f"--stress {e.node}: date {e.on} is outside the period {bt.start}..{bt.end}")
    events = (*bt.stress, *stress)
    cache = cache or ModelCache()
    history = build_history(inputs, bt)
    lambdas = bt.risk_aversions or (() if bt.optimizers else (inputs.limits.risk_aversion,))
    strategies = strategies_for(inputs, bt, cache, lambdas, bt.optimizers)
    model = cache.get(inputs.universe, shape_of(inputs.limits))
    total = inputs.portfolio_eth
    start = {inputs.universe.root.id: total} if bt.start_from == "eth" else dict(inputs.holdings_eth)
    log.info(
        "backtest_started",
        start=str(bt.start),
        end=str(bt.end),
        strategies=[s.name for s in strategies],
        stress=[f"{e.node}@{e.on}" for e in events],
    )
    t0 = time.perf_counter()
    replay = run(
        model,
        inputs.limits,
        history,
        strategies,
        start,
        every_days=bt.rebalance_every_days,
        rule=input_rule(inputs, bt),
        stress=events,
        drift_tolerance=TOLERANCE + inputs.limits.drift_band,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    days = len(replay.days)
    results = tuple(
        StrategyResult(
            name=p.name,
            final_eth=p.values[-1],
            net_yield=annualised(replay.start_eth, p.values[-1], days),
            costs_eth=p.costs_eth,
            costs_bps=p.costs_eth / replay.start_eth / (days / DAYS_PER_YEAR) * 1e4,
            turnover=p.turnover,
            trades=p.trades,
            reversed=p.reversed,
            plans=p.plans,
            planned_turnover=p.planned_turnover,
            decisions=p.decisions,
            worst_drawdown=max_drawdown([replay.start_eth, *p.values]),
            within_limits=sum(p.within) / days,
            cvar_within_budget=sum(p.cvar_within) / days,
            cvar_mean=sum(p.cvar) / days,
            cvar_max=max(p.cvar),
            stress_loss_eth=p.stress_loss_eth,
            unpriced_days=p.unpriced_days,
            broken=dict(p.broken.most_common()),
        )
        for p in replay.paths
    )
    log.info("backtest_completed", days=days, seconds=round(seconds, 3))
    return Backtest(
        settings=bt,
        history=history,
        replay=replay,
        results=results,
        risk_aversions=tuple(lambdas),
        stress=tuple(events),
        cvar_budget=inputs.limits.cvar_budget,
        seconds=seconds,
        universe=inputs.universe,
    )
