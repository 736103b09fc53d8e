"""Real incident replays on the backtest: the stake each strategy had the day before and its loss, sold at the
low or held; an incident shortly after the window on the window's last book, labelled so; incidents before the window
or too far after it are listed as not replayed, with the reason."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.incidents import (
    MAX_DAYS_AFTER_WINDOW,
    hit_venues,
    replay_incidents,
)
from aggregator.research.backtest.report import summary, write
from aggregator.research.backtest.run import backtest
from aggregator.settings import load_settings
from tests.helpers.cli import run as cli


def test_the_demo_universe_maps_each_incident_to_its_venues() -> None:
    """stETH's depeg hits every venue holding stETH; rsETH's loss only rsETH; consensus every staked venue."""
    universe = load_settings(Path(__file__).resolve().parents[2] / "config" / "demo.toml").universe()
    ids = np.array([v.id for v in universe.venues])
    assert set(ids[hit_venues(universe, "lido")]) == {
        "lido-steth",
        "eigenlayer-steth",
        "symbiotic-steth",
        "karak-steth",
    }
    assert set(ids[hit_venues(universe, "kelp")]) == {"kelp-rseth"}
    assert set(ids[hit_venues(universe, "ethereum-consensus")]) == set(ids) - {"eth"}


def test_ezeth_depeg_replayed_with_each_strategys_stake(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """April 2024 in the demo's window: the all-ezETH book had its whole value at stake on 2024-04-23 and would lose
    13 % of it sold at the low, nothing held; 100 % stETH had nothing at stake; the 2022 and 2026 incidents are
    outside the window and say so. summary.json and report.html carry them."""

    def edit(text: str) -> str:
        text = re.sub(r"(?m)^start = 2024-01-23.*$", "start = 2024-04-01", text)
        text = re.sub(r"(?m)^end = 2024-09-05.*$", "end = 2024-05-10", text)
        return text.replace(
            'fixed = { "100% stETH"', 'fixed = { "all ezETH" = { renzo-ezeth = 1.0 }, "100% stETH"'
        )

    result = backtest(inputs_from_settings(load_settings(demo_config(edit))))
    incidents = {i["name"]: i for i in summary(result)["incidents"]}
    ezeth = incidents["ezETH depeg, April 2024"]
    assert ezeth["replayed"] and ezeth["day_before"] == "2024-04-23"
    rows = {r["strategy"]: r for r in ezeth["strategies"]}
    t = result.replay.days.index(date(2024, 4, 23))
    all_in = next(p for p in result.replay.paths if p.name == "all ezETH")
    assert rows["all ezETH"]["at_stake_eth"] == pytest.approx(all_in.values[t], rel=1e-9)
    assert rows["all ezETH"]["loss_if_sold_eth"] == pytest.approx(0.13 * all_in.values[t], rel=1e-9)
    assert rows["all ezETH"]["loss_if_held_eth"] == 0.0
    assert rows["100% stETH"]["at_stake_eth"] == 0.0
    assert ezeth["basis"] == "day before" and ezeth["book_day"] == "2024-04-23"
    for name in ("stETH depeg, May–July 2022", "rsETH backing loss, April 2026"):
        assert not incidents[name]["replayed"] and "outside the window 2024-04-01" in incidents[name]["why"]
    # rsETH's 2026-04-18 is 708 days after 2024-05-10: past the bound, so not replayed, and the reason says so
    assert "708 days after its last day; at most 120" in incidents["rsETH backing loss, April 2026"]["why"]
    files = write(result, tmp_path)
    saved = json.loads(files["summary"].read_text())
    assert saved["incidents"][1]["strategies"] == json.loads(json.dumps(ezeth["strategies"]))
    assert "ezETH depeg, April 2024" in (tmp_path / "report.html").read_text()


def _all_ezeth(end: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        text = re.sub(r"(?m)^start = 2024-01-23.*$", "start = 2024-04-01", text)
        text = re.sub(r"(?m)^end = 2024-09-05.*$", f"end = {end}", text)
        return text.replace(
            'fixed = { "100% stETH"', 'fixed = { "all ezETH" = { renzo-ezeth = 1.0 }, "100% stETH"'
        )

    return edit


def test_an_incident_after_the_window_is_replayed_on_its_last_book_and_labelled(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A window ending 2024-04-10, 14 days before ezETH's depeg: the depeg is applied to each strategy's book at the
    close of 2024-04-10 (its value and exposure that day, nothing invented after), labelled "last book of the window,
    14 days before the event" in summary.json, report.html, incidents.png and the console table; with a bound of 13
    days it is not replayed, and says why."""
    result = backtest(inputs_from_settings(load_settings(demo_config(_all_ezeth("2024-04-10")))))
    assert result.replay.days[-1] == date(2024, 4, 10) and result.universe is not None
    incidents = {i["name"]: i for i in summary(result)["incidents"]}
    ezeth = incidents["ezETH depeg, April 2024"]
    assert ezeth["replayed"]
    assert ezeth["basis"] == "last book of the window, 14 days before the event"
    assert ezeth["book_day"] == "2024-04-10" and ezeth["days_before_event"] == 14
    assert "day_before" not in ezeth  # the book of the eve is not known: never claimed
    rows = {r["strategy"]: r for r in ezeth["strategies"]}
    all_in = next(p for p in result.replay.paths if p.name == "all ezETH")
    assert rows["all ezETH"]["value_eth"] == all_in.values[-1]
    assert rows["all ezETH"]["at_stake_eth"] == pytest.approx(all_in.values[-1], rel=1e-9)
    assert rows["all ezETH"]["loss_if_sold_eth"] == pytest.approx(0.13 * all_in.values[-1], rel=1e-9)
    assert rows["all ezETH"]["loss_if_held_eth"] == 0.0
    assert rows["100% stETH"]["at_stake_eth"] == 0.0

    bounded = {i["name"]: i for i in replay_incidents(result.replay, result.universe, max_days_after=13)}
    assert not bounded["ezETH depeg, April 2024"]["replayed"]
    assert bounded["ezETH depeg, April 2024"]["why"] == (
        "outside the window 2024-04-01 → 2024-04-10 (14 days after its last day; at most 13 are replayed)"
    )
    assert MAX_DAYS_AFTER_WINDOW == 120

    files = write(result, tmp_path)
    saved = {i["name"]: i for i in json.loads(files["summary"].read_text())["incidents"]}
    assert saved["ezETH depeg, April 2024"]["basis"] == "last book of the window, 14 days before the event"
    page = (tmp_path / "report.html").read_text()
    assert (
        "Basis: last book of the window, 14 days before the event (the book at the close of 2024-04-10)"
        in page
    )
    assert 'src="incidents.png"' in page
    with Image.open(files["incidents"]) as img:
        img.verify()
        assert img.format == "PNG" and img.size[1] > 400


def test_cli_names_the_basis_of_each_incident(demo_config: Callable[..., Path], tmp_path: Path) -> None:
    """`aggregator backtest` prints each incident's table with its basis, or why it was not replayed."""
    config = demo_config(_all_ezeth("2024-04-10"))
    done = cli("backtest", "--config", str(config), "--out", str(tmp_path), "--no-progress", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = " ".join(done.stdout.split())
    assert "basis last book of the window, 14 days before the event (book of 2024-04-10)" in out
    assert "incident rsETH backing loss, April 2026 (2026-04-18): not replayed, outside the window" in out
    assert (tmp_path / "incidents.png").stat().st_size > 0
