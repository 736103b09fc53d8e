"""The replay's optimizer plans on the book as it is (settled balances and capital in exit queues), and the book
exits each venue by the route the model prices as cheaper (a DEX sale or the protocol queue)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from aggregator.research.backtest.book import Book
from aggregator.research.backtest.strategies import InFlightMove, Known, Optimizer, SeesInFlight, Trade
from aggregator.settings import Settings, load_settings
from optimizer import ModelCache
from optimizer.optimize import shape_of
from optimizer.structure import FloatArray
from tests.backtest.test_replay import replay, scripted

RETH_PLAIN = """risk_nodes = ["rocketpool"]
components"""
RETH_ROUTES = """risk_nodes = ["rocketpool"]
exit_routes = [{ kind = "queue", days = 7 }, { kind = "dex", fee = 0.0005 }]
components"""


def with_reth_routes(small_config: Callable[..., Path]) -> Settings:
    """The small universe with rETH exiting by a 7-day queue or a DEX sale at 5 bp."""
    return load_settings(small_config(lambda text: text.replace(RETH_PLAIN, RETH_ROUTES, 1)))


def test_the_book_exits_by_the_route_the_model_prices_cheaper(small_config: Callable[..., Path]) -> None:
    """At a 2 % path yield the 7-day queue costs 3.8 bp (yield forgone): it is taken, capital waits 7 days. At 10 %
    it costs 19 bp and the 5 bp DEX sale is taken: it lands at once, paying its fee. Before, the book always used
    the venue's legacy `exit_days`/`exit_cost` (now the queue), so an LRT never got its DEX exit in the replay."""
    s = with_reth_routes(small_config)
    st = ModelCache().get(s.universe(), shape_of(s.limits)).structure
    reth = st.venue_index["rocketpool-reth"]
    for path_yield, days in ((0.02, 7), (0.10, 0)):
        book = Book.start(st, {"rocketpool-reth": 100.0}, 0.0)
        book.decide(np.array([1.0, 0.0, 0.0]), np.full(3, path_yield))
        book.execute(date(2024, 1, 25))
        if days:
            assert book.costs_eth == 0.0
            assert book.in_flight_moves(date(2024, 1, 25)) == [("rocketpool-reth", "eth", 100.0, 7)]
        else:
            assert book.costs_eth == pytest.approx(100.0 * 0.0005)
            assert book.in_flight == [] and book.balances[0] == pytest.approx(100.0 * (1 - 0.0005))
        assert book.balances[reth] == 0.0


def test_a_scripted_lrt_exit_in_the_replay_uses_the_dex_when_cheaper(
    small_config: Callable[..., Path],
) -> None:
    """rETH bought on the 23rd and sold on the 24th: the DEX (5 bp) beats a week of rETH's ~3 % in the queue
    (5.8 bp), so the ETH is back the same day, not a week later."""
    s = with_reth_routes(small_config)
    plan = {date(2024, 1, 23): {"rocketpool-reth": 1.0}, date(2024, 1, 24): {"eth": 1.0}}
    path = replay(s, [scripted(s, plan)]).paths[0]
    assert path.exposure[1][0] == pytest.approx(1.0)  # idle ETH on the 24th: nothing queued at rETH
    assert path.values[1] == pytest.approx(path.values[-1])  # and nothing earned after: it is ETH


@dataclass
class Spy(Optimizer):
    """The optimizer strategy, scripted on its first decisions, recording the book it is shown."""

    script: dict[int, dict[str, float]] = field(default_factory=dict)
    calls: int = 0
    seen: list[list[InFlightMove]] = field(default_factory=list)
    traded: list[list[Trade]] = field(default_factory=list)

    def see_book(
        self, settled: dict[str, float], in_flight: list[InFlightMove], trades: Sequence[Trade] = ()
    ) -> None:
        self.seen.append(list(in_flight))
        self.traded.append(list(trades))
        super().see_book(settled, in_flight, trades)

    def target(self, known: Known, weights: FloatArray, value_eth: float) -> FloatArray | None:
        self.calls += 1
        if self.calls in self.script:
            self._settled, self._in_flight = None, ()
            ids = [v.id for v in self.universe.venues]
            return np.array([self.script[self.calls].get(v, 0.0) for v in ids])
        return super().target(known, weights, value_eth)


def test_the_optimizer_is_shown_capital_in_flight_and_never_re_issues_its_exit(small: Settings) -> None:
    """Scripted into stETH on the 23rd and out on the 24th (a 2-day queue, landing on the 26th); from the 25th the
    optimizer decides. It is shown the capital in the queue (exposed to stETH) and issues no second stETH exit
    while it is in flight."""
    cache = ModelCache()
    spy = Spy(
        name="optimizer",
        universe=small.universe(),
        limits=small.limits,
        cache=cache,
        script={1: {"lido-steth": 1.0}, 2: {"eth": 1.0}},
    )
    assert isinstance(spy, SeesInFlight)
    path = replay(small, [spy]).paths[0]
    flights = spy.seen[2]  # the 25th: the stETH exit in its queue, one day left
    assert [(f[0], f[1], f[3]) for f in flights] == [("lido-steth", "eth", 1)]
    assert flights[0][2] > 990.0  # the whole book, less the entry and exit costs
    assert spy.traded[2] == [
        (2, "deposit", "lido-steth"),
        (1, "withdraw", "lido-steth"),
    ]  # for the holding period
    landed = date(2024, 1, 26)
    withdrawals = [
        leg for leg in path.legs if leg.action == "withdraw" and leg.venue == 1 and leg.day <= landed
    ]
    assert [leg.day for leg in withdrawals] == [date(2024, 1, 24)]  # none while the first is in its queue


def test_the_replay_shows_the_optimizer_its_trades_for_the_holding_period(small: Settings) -> None:
    """With `hold_days`, the optimizer strategy keeps what the replay's book says it bought 3 days ago, although
    rETH now pays far more; 20 days ago is outside the period and it rotates. The replay passes `Book.trades`."""
    limits = small.limits.model_copy(update={"hold_days": 14.0, "risk_aversion": 0.0, "cvar_budget": None})
    opt = Optimizer(name="optimizer", universe=small.universe(), limits=limits, cache=ModelCache())
    yields = {"lido-steth": {"base": 0.03}, "rocketpool-reth": {"base": 0.09}}
    known = Known(yields=yields, priced=np.ones(3, dtype=bool), net_yield=np.array([0.0, 0.03, 0.09]))
    book = {"lido-steth": 1000.0}

    def target(trades: list[tuple[int, str, str]]) -> FloatArray | None:
        opt.see_book(book, [], trades)
        return opt.target(known, np.array([0.0, 1.0, 0.0]), 1000.0)

    assert target([(3, "deposit", "lido-steth")]) is None  # held: nothing may leave stETH
    rotated = target([(20, "deposit", "lido-steth")])
    assert rotated is not None and rotated[2] > 0.5
