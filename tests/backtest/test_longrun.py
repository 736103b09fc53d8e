"""The long window (config/backtest-2022.toml): modelled values only where nothing observed has one, each value
marked observed or modelled in the history, summary.json, the report and the table; the ETH.STORE benchmark line;
and the 2022 stETH depeg replayed in the window."""

from __future__ import annotations

import json
import math
import tomllib
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest import report
from aggregator.research.backtest.history import build_history
from aggregator.research.backtest.longrun import day_marks, eth_store_line, mark_runs
from aggregator.research.backtest.modelled import fit_apy, fit_rate, read_dated
from aggregator.research.backtest.run import backtest
from aggregator.research.backtest.table import rows
from aggregator.settings import Settings, load_settings
from aggregator.settings.backtest import SeriesSettings
from tests.helpers.cli import run as cli
from tests.helpers.demo import ROOT

CONFIG = ROOT / "config" / "backtest-2022.toml"
HISTORY = ROOT / "data" / "history"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONFIG)


def _window(settings: Settings, start: date, end: date) -> Settings:
    assert settings.backtest is not None
    bt = settings.backtest.model_copy(update={"start": start, "end": end})
    return settings.model_copy(update={"backtest": bt})


def test_the_long_config_is_the_demo_above_its_backtest() -> None:
    """Everything but [backtest] is config/demo.toml's: the long window judges the same venues and priors."""
    long = tomllib.loads(CONFIG.read_text())
    demo = tomllib.loads((ROOT / "config" / "demo.toml").read_text())
    long.pop("backtest")
    demo.pop("backtest")
    assert long == demo


def test_the_configured_ratios_are_the_fits(settings: Settings) -> None:
    """The config's ratios are what scripts/modelled_history.py fits on the bundled files (to its 4 digits)."""
    assert settings.backtest is not None
    eth_store = read_dated(HISTORY / "eth_store_apr_daily.csv", "apr")
    fits = {
        "lido-steth.base": fit_apy(
            read_dated(HISTORY / "steth_apy_daily.csv", "apy_pct", scale=0.01), eth_store
        ),
        "rocketpool-reth.base": fit_rate(
            read_dated(HISTORY / "reth_eth_rate_daily.csv", "reth_eth_rate"), eth_store
        ),
    }
    modelled = {s.component: s.ratio for s in settings.backtest.series if s.format == "modelled"}
    assert modelled.keys() == fits.keys()
    for comp, fit in fits.items():
        assert modelled[comp] == pytest.approx(fit.ratio, abs=5e-5), comp


def test_observed_wins_and_every_modelled_value_is_marked(settings: Settings) -> None:
    """stETH: modelled (ETH.STORE × 0.9451) before its series starts and after it ends, observed in between; rETH
    observed until its rates end; the marks cover every day of every component, and what is earned on a modelled day
    is the modelled APR."""
    assert settings.backtest is not None
    h = build_history(inputs_from_settings(settings), settings.backtest)
    assert h.modelled is not None and h.earned is not None
    eth_store = read_dated(HISTORY / "eth_store_apr_daily.csv", "apr")
    steth = h.components.index("lido-steth.base")
    reth = h.components.index("rocketpool-reth.base")
    marks = day_marks(h)
    for day, mark in [
        (date(2022, 6, 1), "modelled"),
        (date(2024, 6, 1), "observed"),
        (date(2025, 10, 1), "modelled"),
    ]:
        t = h.index(day)
        assert marks[t, steth] == mark, day
        if mark == "modelled":
            assert h.values[t, steth] == pytest.approx(eth_store[day] * 0.9451, rel=1e-12)
            assert h.earned[t, steth] == pytest.approx(eth_store[day] * 0.9451 / 365.0, rel=1e-12)
    t = h.index(date(2024, 6, 1))
    steth_apy = read_dated(HISTORY / "steth_apy_daily.csv", "apy_pct", scale=0.01)
    assert h.values[t, steth] == pytest.approx(steth_apy[date(2024, 6, 1)])  # the observation, not the model
    assert marks[h.index(date(2023, 1, 10)), reth] == "observed"
    assert marks[h.index(date(2025, 1, 10)), reth] == "modelled"
    assert not h.modelled[:, h.components.index("renzo-ezeth.base")].any()  # an LRT has no model
    runs = mark_runs(h)
    for comp, comp_runs in runs.items():
        assert sum(r["days"] for r in comp_runs) == len(h.days), comp
        assert comp_runs[0]["from"] == str(h.days[0]) and comp_runs[-1]["to"] == str(h.days[-1])
    assert {r["mark"] for r in runs["lido-steth.base"]} == {"modelled", "observed"}
    assert {r["mark"] for r in runs["eigenlayer-steth.restaking"]} == {"assumption"}
    assert any(s.origin.startswith("MODELLED") for s in h.series)


def test_a_modelled_series_needs_its_ratio() -> None:
    with pytest.raises(ValidationError, match=r"format 'modelled' needs .*ratio"):
        SeriesSettings(component="lido-steth.base", format="modelled", path="es.csv", column="apr")
    with pytest.raises(ValidationError, match=r"`ratio` is only for format 'modelled'"):
        SeriesSettings(component="lido-steth.base", path="s.csv", column="apy", ratio=0.9)


def test_the_2022_window_marks_strategies_draws_eth_store_and_replays_the_depeg(
    settings: Settings, tmp_path: Path
) -> None:
    """May–June 2022: stETH earned only modelled yields (100 % of its capital-days), rETH only observed ones; the
    table says so; the stETH depeg is replayed with every strategy's stake and loss, the later incidents are listed
    as outside the window; the ETH.STORE line is 1 ETH compounded at its APR."""
    b = backtest(inputs_from_settings(_window(settings, date(2022, 5, 1), date(2022, 6, 30))))
    data = report.summary(b)
    shares = data["modelled_share"]
    assert shares["100% stETH"] == pytest.approx(1.0)
    assert shares["100% rETH"] == 0.0
    names = {r[0] for r in rows(b)}
    assert "100% stETH (modelled 100%)" in names and "100% rETH" in names
    incidents = {i["name"]: i for i in data["incidents"]}
    steth = incidents["stETH depeg, May–July 2022"]
    assert steth["replayed"] and steth["day_before"] == "2022-05-11"
    by = {s["strategy"]: s for s in steth["strategies"]}
    assert by["100% stETH"]["at_stake_share"] == pytest.approx(1.0, abs=1e-6)
    assert by["100% stETH"]["loss_if_sold_eth"] == pytest.approx(
        by["100% stETH"]["value_eth"] * (1 - 0.93502)
    )
    assert by["100% rETH"]["at_stake_eth"] == 0.0
    assert not incidents["ezETH depeg, April 2024"]["replayed"]
    assert not incidents["rsETH backing loss, April 2026"]["replayed"]  # 657 days after 2022-06-30
    line = data["eth_store"]
    eth_store = read_dated(HISTORY / "eth_store_apr_daily.csv", "apr")
    expected = 1.0
    for day in b.replay.days[1:]:
        expected *= 1.0 + eth_store[day] / 365.0
    assert line["value"][0] == 1.0 and line["value"][-1] == pytest.approx(expected, rel=1e-12)
    assert line["apr"][-1] == eth_store[b.replay.days[-1]]
    files = report.write(b, tmp_path)
    page = files["report"].read_text()
    assert "Observed and modelled values" in page and "MODELLED" in page
    written = json.loads(files["summary"].read_text())
    assert written["marks"]["lido-steth.base"] == [
        {"from": "2022-04-30", "to": "2022-06-30", "mark": "modelled", "days": 62}
    ]


def test_eth_store_line_stops_where_the_data_stops(tmp_path: Path) -> None:
    path = tmp_path / "es.csv"
    path.write_text("date,apr\n2022-01-01,0.0365\n2022-01-02,0.073\n")
    days = [date(2022, 1, 1) + timedelta(days=i) for i in range(3)]
    value, apr = eth_store_line(path, days)
    assert value[:2] == [1.0, pytest.approx(1.0002)] and value[2] is None
    assert apr == [0.0365, 0.073, None]
    assert math.isclose(value[1] or 0.0, 1.0 + 0.073 / 365.0)


@pytest.mark.slow
def test_cli_runs_the_2022_to_2026_window(tmp_path: Path) -> None:
    """`aggregator backtest --config config/backtest-2022.toml` on bundled data: the three incidents (rsETH's on the
    window's last book), the marks, the ETH.STORE line, the plots."""
    done = cli(
        "backtest", "--config", str(CONFIG), "--out", str(tmp_path), "--json", "--no-progress", timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert (data["period"]["start"], data["period"]["end"]) == ("2022-01-03", "2026-02-21")
    incidents = {i["name"]: i for i in data["incidents"]}
    assert all(i["replayed"] for i in incidents.values())
    assert incidents["ezETH depeg, April 2024"]["basis"] == "day before"
    # rsETH's loss (2026-04-18) is 56 days after ETH.STORE's last day: replayed on the book of 2026-02-21, and no
    # strategy holds rsETH then (its series ends 2024-08-13, and LRTs have no modelled series)
    rseth = incidents["rsETH backing loss, April 2026"]
    assert rseth["basis"] == "last book of the window, 56 days before the event"
    assert rseth["book_day"] == "2026-02-21"
    assert len(rseth["strategies"]) == len(data["strategies"])
    assert all(s["at_stake_eth"] == 0.0 and s["loss_if_held_eth"] == 0.0 for s in rseth["strategies"])
    assert (tmp_path / "incidents.png").stat().st_size > 0
    assert data["eth_store"]["value"][-1] > 1.1
    assert 0.0 < data["modelled_share"]["optimizer λ=0.05"] < 1.0
    assert (tmp_path / "value.png").stat().st_size > 0 and (tmp_path / "yields.png").stat().st_size > 0
