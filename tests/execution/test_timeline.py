"""The plan timeline: each move on the day the chain allows it (issue #16)."""

from __future__ import annotations

from datetime import date

import pytest

from execution.timeline import schedule
from optimizer import Move

START = date(2026, 9, 14)
HOLDINGS = {"eth": 1000.0, "lido-steth": 5000.0, "eigenlayer-steth": 4000.0}


def move(step: int, action: str, src: str, dst: str, amount: float, days: float, route: str) -> Move:  # noqa: PLR0917
    venue = src if action == "withdraw" else dst
    return Move(
        step=step,
        action=action,
        venue=venue,
        from_venue=src,
        to_venue=dst,
        amount_eth=amount,
        share=amount / 10_000,
        cost_eth=0.0,
        days=days,
        route=route,
    )


# Leave EigenLayer (2,000 stETH, 14-day queue) and most of Lido (6,000 ETH of stETH, 5-day queue: 5,000 held now,
# 1,000 only once EigenLayer returns it), and put 6,500 ETH into rETH (1,000 idle now, the rest as Lido pays out).
MOVES = [
    move(1, "withdraw", "eigenlayer-steth", "lido-steth", 2000.0, 14.0, "queue"),
    move(2, "withdraw", "lido-steth", "eth", 6000.0, 5.0, "queue"),
    move(3, "deposit", "eth", "rocketpool-reth", 6500.0, 0.0, "deposit"),
]


def test_exit_eigenlayer_and_lido_into_reth_puts_each_step_on_its_day() -> None:
    timeline = schedule(MOVES, HOLDINGS, START)
    got = [(e.day, e.kind, e.from_venue, e.to_venue, round(e.amount_eth, 6)) for e in timeline.events]
    assert got == [
        (0, "request", "eigenlayer-steth", "lido-steth", 2000.0),
        (0, "request", "lido-steth", "eth", 5000.0),
        (0, "deposit", "eth", "rocketpool-reth", 1000.0),
        (5, "claim", "lido-steth", "eth", 5000.0),
        (5, "deposit", "eth", "rocketpool-reth", 5000.0),
        (14, "claim", "eigenlayer-steth", "lido-steth", 2000.0),
        (14, "request", "lido-steth", "eth", 1000.0),
        (19, "claim", "lido-steth", "eth", 1000.0),
        (19, "deposit", "eth", "rocketpool-reth", 500.0),
    ]
    assert [e.date for e in timeline.events][-1] == date(2026, 10, 3)
    assert dict(timeline.reached) == {
        "eigenlayer-steth": 0,
        "lido-steth": 14,
        "eth": 19,
        "rocketpool-reth": 19,
    }
    assert timeline.days == 19
    assert [(i.from_day, i.to_day, i.amount_eth) for i in timeline.idle] == [
        (0, 14, 2000.0),  # in EigenLayer's queue
        (0, 5, 5000.0),  # in Lido's
        (14, 19, 1000.0),
    ]
    out = timeline.as_dict()
    assert out["done_on"] == "2026-10-03"
    assert out["idle_eth_days"] == pytest.approx(5000 * 5 + 2000 * 14 + 1000 * 5)


def test_a_dex_sale_and_deposits_from_idle_eth_all_happen_on_day_zero() -> None:
    moves = [
        move(1, "withdraw", "lido-steth", "eth", 500.0, 0.0, "dex"),
        move(2, "deposit", "eth", "rocketpool-reth", 1500.0, 0.0, "deposit"),
    ]
    timeline = schedule(moves, HOLDINGS, START)
    assert {e.day for e in timeline.events} == {0}
    assert [e.kind for e in timeline.events] == ["sell", "deposit"]
    assert timeline.idle == ()
    assert timeline.days == 0


def test_a_fractional_queue_rounds_up_to_the_next_whole_day() -> None:
    timeline = schedule([move(1, "withdraw", "lido-steth", "eth", 100.0, 4.2, "queue")], HOLDINGS, START)
    assert [(e.day, e.kind) for e in timeline.events] == [(0, "request"), (5, "claim")]
