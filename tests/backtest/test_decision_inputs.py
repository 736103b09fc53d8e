"""What the backtest's decisions see: the daemon's robust estimate over observed values, and its entry gate: a
venue on its first observation is not bought (rsETH at 21 % in April 2024), a carried value never buys."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.history import History, build_history
from aggregator.research.backtest.replay import run
from aggregator.research.backtest.run import input_rule
from aggregator.research.backtest.strategies import Optimizer
from aggregator.settings import Settings, load_settings
from aggregator.settings.rates import InputRule
from optimizer import ModelCache
from optimizer.optimize import shape_of


def _targets(settings: Settings, history: History, rule: InputRule, venue: str) -> dict[date, float]:
    """The optimizer's target weight of `venue` on each day it decided to trade."""
    cache = ModelCache()
    model = cache.get(settings.universe(), shape_of(settings.limits))
    opt = Optimizer(name="optimizer", universe=settings.universe(), limits=settings.limits, cache=cache)
    out = run(model, settings.limits, history, [opt], {"eth": settings.portfolio_eth}, rule=rule)
    i = [v.id for v in settings.universe().venues].index(venue)
    return {day: float(x[i]) for day, x in out.paths[0].targets if x is not None}


def test_rseth_is_not_bought_on_its_first_observations(demo_config: Callable[..., Path]) -> None:
    """The bundled rsETH series starts on 2024-04-06 at 21.29 %. With the demo's gate (7 observed days) the
    optimizer holds none of it in the week after; with the gate at 1 it buys on the first print, as it did."""

    def edit(text: str) -> str:
        text = re.sub(r"(?m)^start = 2024-01-23.*$", "start = 2024-04-03", text)
        text = re.sub(r"(?m)^end = 2024-09-05.*$", "end = 2024-04-12", text)
        # the daemon's plausible range (15 % at most for an LRT's base yield) would reject the 21.29 % print itself
        text = re.sub(r"(?m)^\[rates\]$", "[rates]\nplausible_staking = [0.005, 0.5]", text)
        text = re.sub(r"(?m)^hold_days = .*$", "hold_days = 0.0", text)  # nor the first days' book held
        return re.sub(
            r"(?m)^cvar_budget = .*$", "cvar_budget = 0.5", text
        )  # so that only the gate can stop it

    settings = load_settings(demo_config(edit))
    assert settings.backtest is not None
    history = build_history(inputs_from_settings(settings), settings.backtest)
    k = history.components.index("kelp-rseth.base")
    first = int(np.flatnonzero(history.observed[:, k])[0])  # type: ignore[index]
    assert history.days[first] == date(2024, 4, 6) and history.values[first, k] == pytest.approx(0.2129)
    seen = history.seen(
        first, settings.universe(), input_rule(inputs_from_settings(settings), settings.backtest)
    )
    assert seen.entry_blocked["kelp-rseth"] == "kelp-rseth.base too few observations: 1 of the 7 needed"
    gated = _targets(
        settings, history, input_rule(inputs_from_settings(settings), settings.backtest), "kelp-rseth"
    )
    assert gated and max(gated.values()) == 0.0
    rule = dataclasses.replace(settings.rates.rule(), min_observations=1)
    assert (
        _targets(settings, history, rule, "kelp-rseth")[date(2024, 4, 7)] > 0.1
    )  # the morning after, as it did


def test_a_carried_value_never_triggers_an_entry(small: Settings) -> None:
    """rETH at 9 % (stETH 3 %): the same values bought when observed, never when only carried."""
    days = tuple(date(2024, 1, 1) + timedelta(days=i) for i in range(6))
    components = ("lido-steth.base", "rocketpool-reth.base")
    values = np.tile([0.03, 0.09], (len(days), 1))
    observed = np.ones(values.shape, dtype=bool)
    fresh = History(days, components, values, (), observed=observed)
    carried = dataclasses.replace(fresh, observed=observed & np.array([True, False]))
    rule = InputRule(window_days=14, min_observations=1)
    assert _targets(small, fresh, rule, "rocketpool-reth")[days[1]] == pytest.approx(1.0)
    never = _targets(small, carried, rule, "rocketpool-reth")
    assert max(never.values()) == 0.0
    assert _targets(small, carried, rule, "lido-steth")[days[1]] == pytest.approx(
        1.0
    )  # observed: bought instead


def test_the_first_decisions_window_reaches_back_before_the_period(small_config: Callable[..., Path]) -> None:
    """A period starting on 2024-02-10, with stETH history from 2024-01-23: the first decision's window holds the
    13 days before it, so stETH is open to entries at once instead of after a week of idle ETH."""

    def edit(text: str) -> str:
        text = text.replace("start = 2024-01-23", "start = 2024-02-10").replace(
            "end = 2024-01-28", "end = 2024-02-12"
        )
        return text.replace("max_gap_days = 1", "max_gap_days = 1\nmin_observations = 7") + (
            "\n[rates]\nwindow_days = 14\n"
        )

    settings = load_settings(small_config(edit))
    assert settings.backtest is not None
    history = build_history(inputs_from_settings(settings), settings.backtest)
    assert history.days[0] == date(2024, 2, 9) and history.lead_values is not None
    assert len(history.lead_values) == 13
    rule = input_rule(inputs_from_settings(settings), settings.backtest)
    first = history.seen(0, settings.universe(), rule)
    assert "lido-steth" not in first.entry_blocked
    assert first.estimates[("lido-steth", "base")].observations == 14
    cut = dataclasses.replace(history, lead_values=None, lead_observed=None)
    assert (
        "lido-steth" in cut.seen(0, settings.universe(), rule).entry_blocked
    )  # what it would be without them


def test_a_cold_start_does_not_commit_idle_eth_while_the_best_venue_warms_up(
    demo_config: Callable[..., Path],
) -> None:
    """The bundled stETH series begins on 2024-01-22, the day before the demo's start; the other series years or
    weeks earlier. Replayed from the start, the entry gate keeps stETH closed for a week: the optimizer used to
    put the idle ETH into rETH (the second-best venue) meanwhile, then kept or churned that book. With the warm-up
    rule rETH waits while stETH (a better estimate) warms up, and stETH is bought once its gate opens. The same
    history without its first-observation dates (`first_observed=None`: nothing is known to be new) still buys
    rETH in the first week, which is the old behaviour."""

    def edit(text: str) -> str:
        return re.sub(r"(?m)^end = 2024-09-05.*$", "end = 2024-02-08", text)

    settings = load_settings(demo_config(edit))
    assert settings.backtest is not None
    history = build_history(inputs_from_settings(settings), settings.backtest)
    assert history.first_observed is not None
    assert dict(zip(history.components, history.first_observed, strict=True))["lido-steth.base"] == date(
        2024, 1, 22
    )
    rule = input_rule(inputs_from_settings(settings), settings.backtest)
    week = date(2024, 1, 29)
    seen = history.seen(0, settings.universe(), rule)
    assert seen.entry_blocked["rocketpool-reth"].startswith("waiting for lido-steth to warm up")
    reth = _targets(settings, history, rule, "rocketpool-reth")
    assert all(w == 0.0 for day, w in reth.items() if day <= week)
    steth = _targets(settings, history, rule, "lido-steth")
    assert max(steth.values()) > 0.5
    old = _targets(settings, dataclasses.replace(history, first_observed=None), rule, "rocketpool-reth")
    assert max(w for day, w in old.items() if day <= week) > 0.1
