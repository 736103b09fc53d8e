"""The replay engine checked by hand: accrual, costs, gas, exit queues; no look-ahead; stress losses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pytest

from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.history import History, build_history
from aggregator.research.backtest.replay import run
from aggregator.research.backtest.run import backtest, input_rule, strategies_for
from aggregator.research.backtest.strategies import Fixed, Known
from aggregator.settings import Settings, load_settings
from aggregator.settings.backtest import StressEvent
from optimizer import ModelCache
from optimizer.optimize import shape_of
from optimizer.structure import FloatArray


@dataclass
class Scripted:
    """Trades to `plan[day]` on that day and holds otherwise; records what it was shown each day."""

    ids: tuple[str, ...]
    plan: dict[date, dict[str, float]]
    day: date
    name: str = "script"
    shown: list[Known] = field(default_factory=list)

    def target(self, known: Known, weights: FloatArray, value_eth: float) -> FloatArray | None:
        today, self.day = self.day, self.day + timedelta(days=1)  # the replay asks once a day, in order
        self.shown.append(known)
        if today not in self.plan:
            return None
        return np.array([self.plan[today].get(v, 0.0) for v in self.ids])


def scripted(settings: Settings, plan: dict[date, dict[str, float]]) -> Scripted:
    assert settings.backtest is not None
    return Scripted(tuple(v.id for v in settings.venues), plan, settings.backtest.start)


def replay(settings: Settings, strategies, history: History | None = None, stress=()):  # type: ignore[no-untyped-def]
    cache = ModelCache()
    model = cache.get(settings.universe(), shape_of(settings.limits))
    assert settings.backtest is not None
    return run(
        model,
        settings.limits,
        history or build_history(inputs_from_settings(settings), settings.backtest),
        strategies,
        {"eth": 1000.0},
        stress=stress,
    )


def test_accrual_costs_gas_and_the_exit_queue_by_hand(small: Settings) -> None:
    """1,000 ETH staked on 2024-01-23 (entry 0.1 %, gas 0.003), earning the published stETH APY of each day
    (3.8 %, 3.2 % on the 23rd and 24th), withdrawn on the 25th (exit 0.2 %, gas 0.003) into a 2-day queue that
    earns nothing and lands on the 27th."""
    strategy = scripted(small, {date(2024, 1, 23): {"lido-steth": 1.0}, date(2024, 1, 25): {"eth": 1.0}})
    out = replay(small, [strategy])
    path = out.paths[0]
    staked = 1000.0 - 1000.0 * 0.001 - 0.003
    day1 = staked * (1 + 0.038 / 365)
    day2 = day1 * (1 + 0.032 / 365)
    exit_cost = day2 * 0.002 + 0.003
    queued = day2 - exit_cost
    assert out.days[0] == date(2024, 1, 23)
    assert path.values[0] == pytest.approx(day1, rel=1e-12)
    assert path.values[1] == pytest.approx(day2, rel=1e-12)
    assert path.values[2:] == pytest.approx([queued] * 4, rel=1e-12)  # queued two days, then idle ETH
    assert path.weights[2][0] == pytest.approx(1.0)  # queued capital counts where it lands
    assert path.costs_eth == pytest.approx(1.0 + 0.003 + exit_cost, rel=1e-12)
    assert path.turnover == pytest.approx(2.0)
    assert path.trades == 2 and path.decisions == 6
    # the first decision saw 2024-01-22's 3.2 %, never the 3.8 % of the day it trades on
    assert strategy.shown[0].yields["lido-steth"]["base"] == pytest.approx(0.032)


def test_rate_series_becomes_the_onchain_adapters_apr(small: Settings) -> None:
    """rETH from exchange rates: APR = (R_t / R_{t−1} − 1) · 365 with 1-day windows (the bundled CSV's rows)."""
    assert small.backtest is not None
    h = build_history(inputs_from_settings(small), small.backtest)
    k = h.components.index("rocketpool-reth.base")
    r22, r23 = 1.096091678394700786, 1.096228592346495390
    assert h.days[1] == date(2024, 1, 23)
    assert h.values[1, k] == pytest.approx((r23 / r22 - 1) * 365, rel=1e-12)


def test_no_look_ahead_decisions_ignore_everything_after_their_day(demo_settings: Settings) -> None:
    """Scramble every value after a cut-off: every strategy's decisions up to the day after it, and its path up
    to it, are identical to the bit."""
    assert demo_settings.backtest is not None
    history = build_history(inputs_from_settings(demo_settings), demo_settings.backtest)
    cut = history.index(date(2024, 4, 20))
    rng = np.random.default_rng(7)
    scrambled = history.values.copy()
    future = scrambled[cut + 1 :]
    scrambled[cut + 1 :] = np.where(np.isnan(future), 0.05, future * rng.uniform(0.0, 3.0, future.shape))
    assert history.earned is not None  # what was earned after the cut-off is scrambled too
    earned = history.earned.copy()
    later = earned[cut + 1 :]
    earned[cut + 1 :] = np.where(np.isnan(later), 1e-4, later * rng.uniform(0.0, 3.0, later.shape))
    other = dataclasses.replace(history, values=scrambled, earned=earned)
    runs = []
    for h in (history, other):
        # A fresh model per replay: the solver keeps its basis and CVaR cuts from solve to solve, so the same
        # answers to the bit need the same solves before them (the past, never the future, shapes a decision).
        cache = ModelCache()
        model = cache.get(demo_settings.universe(), shape_of(demo_settings.limits))
        strategies = strategies_for(
            inputs_from_settings(demo_settings), demo_settings.backtest, cache, (0.25, 1.0)
        )
        runs.append(
            run(
                model,
                demo_settings.limits,
                h,
                strategies,
                {"eth": 10_000.0},
                rule=input_rule(inputs_from_settings(demo_settings), demo_settings.backtest),
            )
        )
    upto = cut  # replay day index of the cut-off (replay days start one after the history's first row)
    changed_later = False
    for a, b in zip(runs[0].paths, runs[1].paths, strict=True):
        decided = [d for d, _ in a.targets if d <= history.days[cut + 1]]
        for (da, ta), (db, tb) in zip(a.targets[: len(decided)], b.targets, strict=False):
            assert da == db
            assert (ta is None and tb is None) or np.array_equal(ta, tb), (a.name, da)
        assert a.values[:upto] == b.values[:upto], a.name
        changed_later |= a.values[-1] != b.values[-1]
    assert changed_later  # the scrambled future did change what happened after the cut-off


@pytest.fixture
def demo_settings(demo_config) -> Settings:  # type: ignore[no-untyped-def]
    return load_settings(demo_config())


def test_stress_loss_shows_in_every_strategy_that_held_the_failed_venue(demo_config) -> None:  # type: ignore[no-untyped-def]
    """Kelp loses 20 % on 2024-06-03: each strategy holding rsETH that morning loses 20 % of it, the one all-in
    rsETH loses 20 % of its book, strategies without rsETH lose nothing."""
    settings = load_settings(
        demo_config(
            lambda t: t.replace(
                'fixed = { "100% stETH"', 'fixed = { "all rsETH" = { kelp-rseth = 1.0 }, "100% stETH"'
            )
        )
    )
    on = date(2024, 6, 3)
    result = backtest(inputs_from_settings(settings), stress=[StressEvent(node="kelp", on=on, loss=0.2)])
    t = result.replay.days.index(on)
    kelp = result.replay.venues.index("kelp-rseth")
    held = []
    for p in result.replay.paths:
        at_risk = p.stress_exposed[on][kelp]  # settled rsETH plus rsETH still in its exit queue
        if at_risk > 1e-6:
            held.append(p.name)
            assert p.stress_loss_eth == pytest.approx(0.2 * at_risk, rel=1e-9), p.name
            assert p.values[t] < p.values[t - 1]
        else:
            assert p.stress_loss_eth == 0.0, p.name
            assert p.weights[t - 1][kelp] < 1e-9
    # the optimizer holds rsETH that day or not (it no longer buys it on its first prints): either is checked above
    assert {"all rsETH", "equal weight"} <= set(held)
    assert "100% stETH" not in held
    all_in = next(p for p in result.replay.paths if p.name == "all rsETH")
    assert all_in.stress_loss_eth == pytest.approx(0.2 * all_in.values[t - 1], rel=1e-9)


def test_fixed_strategy_is_untouched_by_the_optimizer_and_keeps_its_weights(small: Settings) -> None:
    cache = ModelCache()
    structure = cache.get(small.universe(), shape_of(small.limits)).structure
    out = replay(small, [Fixed("all stETH", structure, {"lido-steth": 1.0})])
    assert [w[1] for w in out.paths[0].weights] == pytest.approx([1.0] * 6)
    assert out.paths[0].trades == 1


@pytest.mark.parametrize("budget", [None, 0.01])
def test_days_in_limits_count_the_forced_sale_budget_when_set(small_config, budget) -> None:  # type: ignore[no-untyped-def]
    """A 7-day rung of 50 %: all-stETH meets it at par through its 2-day queue, so without a forced-sale budget
    every day is within the limits; with one, stETH has no market route in this universe, the rung cannot be raised
    if the queues stall, and every day counts as out of the limits, under "forced sale"."""
    extra = "ladder = [{ days = 7, min_share = 0.5 }]\n"
    if budget is not None:
        extra += f"forced_sale_budget = {budget}\n"
    settings = load_settings(
        small_config(lambda t: t.replace("gas_cost_eth = 0.003\n", f"gas_cost_eth = 0.003\n{extra}"))
    )
    structure = ModelCache().get(settings.universe(), shape_of(settings.limits)).structure
    out = replay(settings, [Fixed("all stETH", structure, {"lido-steth": 1.0})])
    path = out.paths[0]
    if budget is None:
        assert all(path.within) and not path.broken
    else:
        assert not any(path.within)
        assert path.broken == {"forced sale": len(path.within)}
