"""Modelled LST series from ETH.STORE: the fits recover a known share, the stETH check finds the error it prints,
and gaps are reported, never bridged."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date, timedelta

import pytest

from aggregator.research.backtest.modelled import (
    check_points,
    fit_apy,
    fit_rate,
    log_growth,
    modelled,
    read_dated,
    steth_points,
)
from tests.conftest import ROOT

DATA = ROOT / "data"
DAYS = [date(2022, 1, 1) + timedelta(days=i) for i in range(400)]


def test_fits_recover_the_share_of_the_network_yield() -> None:
    """A token growing at 0.9 × a varying ETH.STORE gives 0.9 from its rates and from its daily APY."""
    eth_store = {d: 0.03 + 0.02 * math.sin(i / 30) for i, d in enumerate(DAYS)}
    rates, r = {}, 1.0
    for d in DAYS:
        rates[d] = r
        r *= math.exp(0.9 * math.log1p(eth_store[d] / 365))
    assert fit_rate(rates, eth_store).ratio == pytest.approx(0.9, abs=1e-12)
    apy = {d: math.expm1(0.9 * 365 * math.log1p(eth_store[d] / 365)) for d in DAYS}
    assert fit_apy(apy, eth_store).ratio == pytest.approx(0.9, abs=1e-12)
    model = modelled(eth_store, 0.9)
    checks, uncovered = check_points(
        [(DAYS[0], rates[DAYS[0]]), (DAYS[200], rates[DAYS[200]])], eth_store, 0.9
    )
    assert not uncovered and abs(checks[0].error) < 1e-12
    assert model[DAYS[5]] == pytest.approx(0.9 * eth_store[DAYS[5]])


def test_a_gap_is_reported_not_bridged() -> None:
    """A day missing from ETH.STORE makes the growth unknown, and the point pair uncovered."""
    eth_store = {d: 0.04 for d in DAYS if d != DAYS[10]}
    assert log_growth(eth_store, DAYS[0], DAYS[20]) is None
    _, uncovered = check_points([(DAYS[0], 1.0), (DAYS[20], 1.002)], eth_store, 0.9)
    assert uncovered == [(DAYS[0], DAYS[20])]


def test_bundled_fits_and_the_steth_check() -> None:
    """On the bundled files: rETH earned 0.826 and stETH 0.945 of ETH.STORE; the modelled stETH misses the
    stEthPerToken growth by at most 0.72 pp/yr on the five covered intervals; the sixth ends after ETH.STORE."""
    eth_store = read_dated(DATA / "history" / "eth_store_apr_daily.csv", "apr")
    assert (min(eth_store), max(eth_store), len(eth_store)) == (date(2020, 12, 1), date(2026, 2, 21), 1909)
    reth = fit_rate(read_dated(DATA / "history" / "reth_eth_rate_daily.csv", "reth_eth_rate"), eth_store)
    steth = fit_apy(read_dated(DATA / "history" / "steth_apy_daily.csv", "apy_pct", scale=0.01), eth_store)
    assert reth.ratio == pytest.approx(0.8262, abs=5e-5) and steth.ratio == pytest.approx(0.9451, abs=5e-5)
    checks, uncovered = check_points(
        steth_points(DATA / "events" / "steth_rate_and_june2022_depeg.csv"), eth_store, steth.ratio
    )
    assert len(checks) == 5 and uncovered == [(date(2023, 4, 7), date(2026, 9, 15))]
    assert max(abs(c.error) for c in checks) == pytest.approx(0.00718, abs=5e-5)
    out = subprocess.run(
        [sys.executable, "scripts/modelled_history.py"], check=True, capture_output=True, text=True, cwd=ROOT
    )
    assert "largest error +0.718 pp/yr (2021-02-19 → 2021-05-24)" in out.stdout
