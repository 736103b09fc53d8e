"""The pieces of `benchmarks.decisions` that decide what the optimizer is compared with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.history import build_history
from aggregator.settings import load_settings
from benchmarks.decisions import hindsight_book, realised_yields, steth_case


def capped(small_config: Callable[..., Path]) -> Path:
    """The small universe with each staking venue capped at 60 % and Lido's node at 60 %; no entry costs."""
    return small_config(
        lambda t: (
            t.replace("exit_cost = 0.002\n", "exit_cost = 0.002\nmax_share = 0.6\n")
            .replace("entry_cost = 0.001\n", "entry_cost = 0.0\n")
            .replace('risk_nodes = ["rocketpool"]\n', 'risk_nodes = ["rocketpool"]\nmax_share = 0.6\n')
            .replace(
                'id = "lido"\np = 0.005\nlgd = 0.10\n', 'id = "lido"\np = 0.005\nlgd = 0.10\ncap = 0.6\n'
            )
        )
    )


def test_the_hindsight_book_fills_the_better_realised_venue_to_its_cap(
    small_config: Callable[..., Path],
) -> None:
    s = load_settings(capped(small_config))
    assert s.backtest is not None
    h = build_history(inputs_from_settings(s), s.backtest)
    got = realised_yields(s, h)
    steth, reth = got["lido-steth"]["base"], got["rocketpool-reth"]["base"]
    assert steth != pytest.approx(reth)
    best, other = ("lido-steth", "rocketpool-reth") if steth > reth else ("rocketpool-reth", "lido-steth")
    # both earn more than idle ETH: the better one to its cap, the rest in the other
    book = hindsight_book(s, h)
    assert book[best] == pytest.approx(0.6, abs=1e-6) and book[other] == pytest.approx(0.4, abs=1e-6)


def test_the_steth_case_lifts_exactly_what_100_percent_steth_breaks(
    small_config: Callable[..., Path],
) -> None:
    s = load_settings(capped(small_config))
    lifted_settings, cvar, lifted = steth_case(s)
    assert sorted(lifted) == ["lido node cap", "lido-steth max_share"]
    assert lifted_settings.limits.cvar_budget == cvar > 0
    assert next(v for v in lifted_settings.venues if v.id == "lido-steth").max_share == 1.0
    assert next(v for v in lifted_settings.venues if v.id == "rocketpool-reth").max_share == 0.6  # untouched
    assert next(n for n in lifted_settings.risk_nodes if n.id == "lido").cap is None
