"""A two-venue universe on real bundled history, small enough to check the replay by hand."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aggregator.settings import Settings, load_settings
from tests.fixture_server import FixtureServer

ROOT = Path(__file__).resolve().parents[2]

SMALL = """
[portfolio]
holdings_eth = { eth = 1000.0 }

[limits]
risk_aversion = 0.0
gas_cost_eth = 0.003

[sources.assumptions]
adapter = "static"
[sources.assumptions.values.none]
value = 0.0
note = "unused: every yield comes from the backtest series"

[[venues]]
id = "eth"
kind = "idle"

[[venues]]
id = "lido-steth"
parent = "eth"
kind = "liquid_staking"
risk_nodes = ["lido"]
exit_days = 2
entry_cost = 0.001
exit_cost = 0.002
components = [{ name = "base", quotes = [{ source = "assumptions", key = "none" }] }]

[[venues]]
id = "rocketpool-reth"
parent = "eth"
kind = "liquid_staking"
risk_nodes = ["rocketpool"]
components = [{ name = "base", quotes = [{ source = "assumptions", key = "none" }] }]

[[risk_nodes]]
id = "lido"
p = 0.005
lgd = 0.10

[[risk_nodes]]
id = "rocketpool"
p = 0.005
lgd = 0.10

[backtest]
start = 2024-01-23
end = 2024-01-28
max_gap_days = 1

[[backtest.series]]
component = "lido-steth.base"
path = "../data/history/steth_apy_daily.csv"
column = "apy_pct"

[[backtest.series]]
component = "rocketpool-reth.base"
path = "../data/history/reth_eth_rate_daily.csv"
column = "reth_eth_rate"
unit = "rate"
window_days = 1
"""


@pytest.fixture
def small_config(tmp_path: Path) -> Callable[[Callable[[str], str] | None], Path]:
    """The small universe's TOML (optionally edited) in tmp_path/config, with data/history beside it."""

    def make(edit: Callable[[str], str] | None = None) -> Path:
        (tmp_path / "config").mkdir(exist_ok=True)
        if not (tmp_path / "data" / "history").exists():
            shutil.copytree(ROOT / "data" / "history", tmp_path / "data" / "history")
        path = tmp_path / "config" / "small.toml"
        path.write_text(edit(SMALL) if edit else SMALL)
        return path

    return make


@pytest.fixture
def small(small_config: Callable[..., Path]) -> Settings:
    return load_settings(small_config())


@pytest.fixture
def fixture_server() -> Iterator[FixtureServer]:
    with FixtureServer() as server:
        yield server


@pytest.fixture
def small_config_path(small_config: Callable[..., Path]) -> Path:
    return small_config()
