"""Real incident replays on the backtest: the stake each strategy had the day before and its loss, sold at the
low or held; incidents outside the window are listed as not replayed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.incidents import hit_venues
from aggregator.research.backtest.report import summary, write
from aggregator.research.backtest.run import backtest
from aggregator.settings import load_settings


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
    for name in ("stETH depeg, May–July 2022", "rsETH backing loss, April 2026"):
        assert not incidents[name]["replayed"] and "outside the window 2024-04-01" in incidents[name]["why"]
    files = write(result, tmp_path)
    saved = json.loads(files["summary"].read_text())
    assert saved["incidents"][1]["strategies"] == json.loads(json.dumps(ezeth["strategies"]))
    assert "ezETH depeg, April 2024" in (tmp_path / "report.html").read_text()
