"""What strategies earn is what happened; what is counted is what was done (issue 13: an honest replay).

Small synthetic series beside the two-venue config: each test writes the rows it needs, so every figure is
checked by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from aggregator.core.errors import ConfigError
from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.book import Book, Leg, reversed_legs
from aggregator.research.backtest.history import build_history
from aggregator.research.backtest.run import backtest, strategies_for
from aggregator.research.backtest.strategies import Optimizer
from aggregator.settings import Settings, load_settings
from optimizer import ModelCache
from optimizer.optimize import shape_of
from optimizer.scenarios import weighted_cvar
from tests.backtest.test_replay import replay, scripted

STETH_SERIES = 'path = "../data/history/steth_apy_daily.csv"\ncolumn = "apy_pct"'
RETH_SERIES = 'path = "../data/history/reth_eth_rate_daily.csv"\ncolumn = "reth_eth_rate"'
GAS = 0.003


def load(
    small_config: Callable[..., Path],
    files: dict[str, str],
    steth: str | None = None,
    reth: str | None = None,
    extra: str = "",
) -> Settings:
    """The small config with stETH's and/or rETH's series replaced, `files` written beside it."""

    def edit(text: str) -> str:
        if steth is not None:
            text = text.replace(STETH_SERIES, steth)
        if reth is not None:
            text = text.replace(RETH_SERIES, reth)
        return text.replace("[limits]\n", f"[limits]\n{extra}")

    path = small_config(edit)
    for name, body in files.items():
        (path.parent / name).write_text(body)
    return load_settings(path)


def history_of(s: Settings):  # type: ignore[no-untyped-def]
    assert s.backtest is not None
    return build_history(inputs_from_settings(s), s.backtest)


RATES = {  # rETH/ETH: up, then a 1 % fall on the 24th, then up again
    "2024-01-21": 1.0,
    "2024-01-22": 1.0001,
    "2024-01-23": 1.0002,
    "2024-01-24": 0.9902,
    "2024-01-25": 0.9903,
    "2024-01-26": 0.9904,
    "2024-01-27": 0.9905,
    "2024-01-28": 0.9906,
}


def test_a_venue_whose_realised_return_turns_negative_loses_money(small_config: Callable[..., Path]) -> None:
    """All in rETH from the 23rd: the book ends at its cost × R(28th) / R(22nd), below what it paid, although the
    negative APR of the 24th is rejected from what decisions see (min_yield 0)."""
    body = "date,rate\n" + "".join(f"{d},{r}\n" for d, r in RATES.items())
    s = load(small_config, {"rates.csv": body}, reth='path = "rates.csv"\ncolumn = "rate"')
    h = history_of(s)
    k = h.components.index("rocketpool-reth.base")
    assert np.nanmin(h.values[:, k]) > 0.0  # decisions never see the fall …
    out = replay(s, [scripted(s, {date(2024, 1, 23): {"rocketpool-reth": 1.0}})], h)
    final = (1000.0 - GAS) * RATES["2024-01-28"] / RATES["2024-01-22"]
    assert out.paths[0].values[-1] == pytest.approx(final, rel=1e-12)  # … but the book earns it
    assert out.paths[0].values[-1] < 1000.0 - GAS - 9.0
    assert out.paths[0].values[1] == pytest.approx((1000.0 - GAS) * 0.9902 / 1.0001, rel=1e-12)


def test_trailing_windows_earn_over_the_days_they_measured_negative_ones_too(
    small_config: Callable[..., Path],
) -> None:
    """Trailing-window APRs: the latest window first, earlier ones fill the days it leaves; a −36.5 % window is
    earned over its four days (decisions do not see it); a day no window covers earns nothing."""
    body = (
        "date,apr_pct,window_days\n"
        "2024-01-23,7.3,2\n"  # covers the 22nd and 23rd
        "2024-01-27,-36.5,4\n"  # covers 24th–26th (the 27th is the next window's)
        "2024-01-28,18.25,2\n"  # covers the 27th and 28th
    )
    s = load(
        small_config,
        {"w.csv": body},
        steth='path = "w.csv"\ncolumn = "apr_pct"\nwindow_column = "window_days"',
    )
    h = history_of(s)
    assert h.earned is not None
    k = h.components.index("lido-steth.base")
    got = {d: h.earned[t, k] for t, d in enumerate(h.days)}
    first = (1 + 0.073 * 2 / 365) ** 0.5 - 1
    fall = (1 - 0.365 * 4 / 365) ** 0.25 - 1
    last = (1 + 0.1825 * 2 / 365) ** 0.5 - 1
    assert [got[date(2024, 1, d)] for d in range(22, 29)] == pytest.approx(
        [first, first, fall, fall, fall, last, last], rel=1e-12
    )
    assert fall < 0
    seen = h.values[:, k]
    assert np.nanmin(seen) >= 0.0  # the negative window is rejected from what decisions see
    path = replay(s, [scripted(s, {date(2024, 1, 23): {"lido-steth": 1.0}})], h).paths[0]
    staked = 1000.0 * (1 - 0.001) - GAS
    expected = staked * (1 + first) * (1 + fall) ** 3 * (1 + last) ** 2
    assert path.values[-1] == pytest.approx(expected, rel=1e-12)


def test_apy_accrues_once_as_apy(small_config: Callable[..., Path]) -> None:
    """A published APY of 3.65 % earns (1.0365)^(1/365) a day, not 1 + 3.65 %/365 compounded again."""
    body = "date,apy_pct\n" + "".join(f"2024-01-{d},3.65\n" for d in range(20, 29))
    s = load(
        small_config, {"apy.csv": body}, steth='path = "apy.csv"\ncolumn = "apy_pct"\ncompounding = "apy"'
    )
    path = replay(s, [scripted(s, {date(2024, 1, 23): {"lido-steth": 1.0}})]).paths[0]
    staked = 1000.0 * (1 - 0.001) - GAS
    assert path.values == pytest.approx([staked * 1.0365 ** (n / 365) for n in range(1, 7)], rel=1e-12)
    assert path.values[-1] != pytest.approx(staked * (1 + 0.0365 / 365) ** 6, rel=1e-9)


def test_a_static_assumption_with_from_earns_nothing_before_it(small_config: Callable[..., Path]) -> None:
    """rETH's yield as a static 3.65 %/yr from the 26th: 0 before (seen and earned), 0.01 % a day from it."""
    s = load(
        small_config,
        {},
        reth='format = "static"\nvalue = 0.0365\nfrom = 2024-01-26\nnote = "starts on the 26th"',
    )
    h = history_of(s)
    k = h.components.index("rocketpool-reth.base")
    assert h.values[:, k] == pytest.approx([0.0] * 4 + [0.0365] * 3)  # 22nd … 28th
    path = replay(s, [scripted(s, {date(2024, 1, 23): {"rocketpool-reth": 1.0}})], h).paths[0]
    staked = 1000.0 - GAS
    assert path.values[:3] == pytest.approx([staked] * 3, rel=1e-12)  # 23rd–25th: nothing
    assert path.values[3:] == pytest.approx([staked * (1 + 0.0001) ** n for n in (1, 2, 3)], rel=1e-12)
    report = next(r for r in h.series if r.component == "rocketpool-reth.base")
    assert report.observations == 3 and "from 2024-01-26" in report.origin


def test_a_static_series_without_value_takes_the_config_static_quote(
    small_config: Callable[..., Path],
) -> None:
    def edit(text: str) -> str:
        text = text.replace("value = 0.0\n", "value = 0.0365\n")
        return text.replace(RETH_SERIES, 'format = "static"\nfrom = 2024-01-26')

    s = load_settings(small_config(edit))
    h = history_of(s)
    k = h.components.index("rocketpool-reth.base")
    assert h.values[:, k] == pytest.approx([0.0] * 4 + [0.0365] * 3)


def test_queued_capital_is_exposed_at_the_venue_it_left(small_config: Callable[..., Path]) -> None:
    """Staked on the 23rd, exited on the 25th into a 2-day queue (lands on the 27th). On the 25th and 26th the
    capital is still exposed to Lido: the exposure, the CVaR and the limit checks say so; the weights a strategy
    sees put it at its destination."""
    s = load(small_config, {}, extra="cvar_budget = 0.01\n")
    plan = {date(2024, 1, 23): {"lido-steth": 1.0}, date(2024, 1, 25): {"eth": 1.0}}
    path = replay(s, [scripted(s, plan)]).paths[0]
    model = ModelCache().get(s.universe(), shape_of(s.limits))
    lido = np.array([0.0, 1.0, 0.0])
    all_lido = weighted_cvar(model.losses.losses(lido), model.losses.probabilities, s.limits.cvar_beta)
    assert all_lido > 0.01
    for t in (2, 3):  # the queue days
        assert path.weights[t][0] == pytest.approx(1.0)
        assert path.exposure[t] == pytest.approx(lido)
        assert path.cvar[t] == pytest.approx(all_lido, rel=1e-12)
        assert not path.within[t] and not path.cvar_within[t]
    assert path.within == [False, False, False, False, True, True]
    assert path.broken["CVaR budget"] == 4


def test_the_book_lists_its_in_flight_moves(small: Settings) -> None:
    model = ModelCache().get(small.universe(), shape_of(small.limits))
    book = Book.start(model.structure, {"lido-steth": 100.0}, 0.0)
    book.decide(np.array([1.0, 0.0, 0.0]), np.zeros(3))
    book.execute(date(2024, 1, 25))
    assert book.in_flight_moves(date(2024, 1, 26)) == [("lido-steth", "eth", pytest.approx(99.8), 1)]
    assert book.exposed() == pytest.approx([0.0, 99.8, 0.0]) and book.positions() == pytest.approx(
        [99.8, 0, 0]
    )


def test_a_deposit_waits_for_the_queued_exit_even_with_idle_eth_at_hand(small: Settings) -> None:
    """A rotation stETH → rETH with idle ETH on hand: the rETH deposit is not made from the idle ETH while the stETH
    exit is queued (the book would hold the queued stETH and the new rETH at once, which the optimizer no longer
    charges: its limits hold on the target). It is made the day the exit lands, in full."""
    model = ModelCache().get(small.universe(), shape_of(small.limits))
    book = Book.start(model.structure, {"eth": 40.0, "lido-steth": 60.0}, 0.0)
    book.decide(np.array([0.1, 0.3, 0.6]), np.zeros(3))
    book.execute(date(2024, 1, 25))
    assert book.balances[2] == pytest.approx(0.0)  # nothing in rETH yet
    assert book.balances[0] == pytest.approx(40.0)  # the idle ETH waits too
    assert book.exposed()[1] == pytest.approx(60.0, abs=0.1)  # the 30 leaving stETH is still exposed there
    book.land(date(2024, 1, 26))
    book.execute(date(2024, 1, 26))
    assert book.balances[2] == pytest.approx(0.0)  # the exit lands on the 27th (2 days)
    book.land(date(2024, 1, 27))
    book.execute(date(2024, 1, 27))
    assert not book.in_flight
    assert book.balances[2] == pytest.approx(60.0, abs=0.1)
    assert [(leg.day, leg.action, leg.venue) for leg in book.legs] == [
        (date(2024, 1, 25), "withdraw", 1),
        (date(2024, 1, 27), "deposit", 2),
    ]


def test_turnover_and_trades_count_executed_flows_not_reissued_plans(
    small_config: Callable[..., Path],
) -> None:
    """stETH on the 23rd; rETH asked for on the 24th, 25th and 26th while the stETH exit waits 2 days in the
    queue. Plans: 4, as issued 400 % (each plan from where the capital is headed: the stETH, then the ETH on its
    way). Executed: deposit stETH, withdraw stETH, and the rETH deposit only once the exit has landed on the 26th
    (a plan's deposits wait until no capital is queued, as the daemon's ledger and the timeline do): 3 legs, 300 %
    turnover (ETH → stETH, stETH → ETH, ETH → rETH), the ETH in the queue counted nowhere else meanwhile."""
    s = load(small_config, {})
    to_reth = {"rocketpool-reth": 1.0}
    plan = {
        date(2024, 1, 23): {"lido-steth": 1.0},
        date(2024, 1, 24): to_reth,
        date(2024, 1, 25): to_reth,
        date(2024, 1, 26): to_reth,
    }
    path = replay(s, [scripted(s, plan)]).paths[0]
    assert path.plans == 4 and path.planned_turnover == pytest.approx(4.0)
    assert path.trades == 3
    assert [(leg.day, leg.action) for leg in path.legs] == [
        (date(2024, 1, 23), "deposit"),
        (date(2024, 1, 24), "withdraw"),
        (date(2024, 1, 26), "deposit"),
    ]
    assert path.exposure[1][2] == pytest.approx(0.0)  # nothing in rETH while the stETH is queued
    assert path.exposure[1][1] == pytest.approx(1.0)  # still exposed to stETH
    assert path.turnover == pytest.approx(3.0)
    assert path.reversed == 1  # the stETH deposit, withdrawn the next day
    assert path.weights[-1][2] == pytest.approx(1.0)


def test_reversed_legs_are_those_undone_within_14_days() -> None:
    d = date(2024, 3, 1)

    def leg(day: int, action: str, venue: int = 1) -> Leg:
        return Leg(date(2024, 3, day), action, venue, 1.0)

    legs = [leg(1, "deposit"), leg(2, "deposit", venue=2), leg(15, "withdraw"), leg(30, "withdraw", venue=2)]
    assert reversed_legs(legs) == [legs[0]]  # 14 days later; venue 2's exit came after 28 days
    assert reversed_legs([leg(1, "deposit"), leg(16, "withdraw")]) == []  # 15 days: not a reversal
    assert reversed_legs([leg(1, "deposit"), leg(3, "deposit")]) == []  # the same direction
    assert d.day == 1


def test_summary_reports_costs_per_year_and_executed_counts(small: Settings) -> None:
    result = backtest(inputs_from_settings(small))
    days = len(result.replay.days)
    for r in result.results:
        assert r.costs_bps == pytest.approx(r.costs_eth / 1000.0 / (days / 365) * 1e4)
        assert r.trades >= 0 and r.reversed <= r.trades
    assert [r.name for r in result.results if r.name.startswith("optimizer")] == ["optimizer λ=0"]


def test_comparison_optimizers_come_from_the_backtest_section(small_config: Callable[..., Path]) -> None:
    """`[backtest] optimizers`: the config's limits with some fields replaced; a field [limits] does not have is
    a clear error; with `optimizers` and no `risk_aversions`, only the listed optimizers run."""

    def variants(extra: str) -> Callable[[str], str]:
        return lambda t: t.replace("max_gap_days = 1\n", f"max_gap_days = 1\n{extra}\n")

    s = load_settings(
        small_config(variants('optimizers = [{ name = "cautious", limits = { risk_aversion = 2.0 } }]'))
    )
    assert s.backtest is not None
    cache = ModelCache()
    strategies = strategies_for(inputs_from_settings(s), s.backtest, cache, (), s.backtest.optimizers)
    cautious = next(x for x in strategies if x.name == "optimizer cautious")
    assert isinstance(cautious, Optimizer) and cautious.limits.risk_aversion == 2.0
    assert cautious.limits.gas_cost_eth == s.limits.gas_cost_eth  # the rest as configured
    result = backtest(inputs_from_settings(s))
    assert [r.name for r in result.results if r.name.startswith("optimizer")] == ["optimizer cautious"]
    bad = load_settings(
        small_config(variants('optimizers = [{ name = "x", limits = { risk_aversoin = 2.0 } }]'))
    )
    with pytest.raises(
        ConfigError, match=r"unknown \[limits\] fields \['risk_aversoin'\]; valid: .*'risk_aversion'"
    ):
        backtest(inputs_from_settings(bad))
