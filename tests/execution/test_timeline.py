"""The plan timeline: each move on the day the chain allows it (issue #16)."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from execution.timeline import plan_timeline, schedule
from optimizer import InFlight, Move

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
# 1,000 only once EigenLayer returns it), and put 6,500 ETH into rETH (1,000 idle now, the rest as Lido pays out),
# once the last exit has landed (day 19).
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
        (5, "claim", "lido-steth", "eth", 5000.0),
        (14, "claim", "eigenlayer-steth", "lido-steth", 2000.0),
        (14, "request", "lido-steth", "eth", 1000.0),
        (19, "claim", "lido-steth", "eth", 1000.0),
        # deposits wait until the exits land: the whole 6,500 ETH on day 19, not 1,000 on day 0 and 5,000 on day 5
        (19, "deposit", "eth", "rocketpool-reth", 6500.0),
    ]
    assert [e.date for e in timeline.events][-1] == date(2026, 10, 3)
    assert dict(timeline.reached) == {
        "eigenlayer-steth": 0,
        "lido-steth": 14,
        "eth": 19,
        "rocketpool-reth": 19,
    }
    assert timeline.days == 19
    assert [(i.from_day, i.to_day, i.venue, i.amount_eth) for i in timeline.idle] == [
        (0, 14, "eigenlayer-steth", 2000.0),  # in EigenLayer's queue
        (0, 19, "eth", 1000.0),  # idle ETH waiting for the exits
        (0, 5, "lido-steth", 5000.0),  # in Lido's
        (5, 19, "eth", 5000.0),  # Lido's payout waiting for the last exit
        (14, 19, "lido-steth", 1000.0),
    ]
    out = timeline.as_dict()
    assert out["done_on"] == "2026-10-03"
    assert out["idle_eth_days"] == pytest.approx(5000 * 5 + 2000 * 14 + 1000 * 5 + 1000 * 19 + 5000 * 14)


def test_a_rotation_funded_by_idle_eth_deposits_on_the_day_the_exit_lands() -> None:
    """Sell 500 of stETH through Lido's 5-day queue and put 1,000 of idle ETH into rETH: the deposit is made on day 5
    (the claim), not day 0, and the 5 days the ETH waits are shown as idle."""
    moves = [
        move(1, "withdraw", "lido-steth", "eth", 500.0, 5.0, "queue"),
        move(2, "deposit", "eth", "rocketpool-reth", 1000.0, 0.0, "deposit"),
    ]
    timeline = schedule(moves, HOLDINGS, START)
    assert [(e.day, e.kind, round(e.amount_eth, 6)) for e in timeline.events] == [
        (0, "request", 500.0),
        (5, "claim", 500.0),
        (5, "deposit", 1000.0),
    ]
    assert timeline.reached["rocketpool-reth"] == 5
    waits = [i for i in timeline.idle if i.venue == "eth"]
    assert [(i.from_day, i.to_day, i.amount_eth) for i in waits] == [(0, 5, 1000.0)]
    assert "waiting for the plan's exits to land" in waits[0].why and "rocketpool-reth" in waits[0].why
    assert timeline.as_dict()["idle_eth_days"] == pytest.approx(500 * 5 + 1000 * 5)


def test_a_deposit_after_a_nested_chain_of_exits_is_made_when_the_chain_lands() -> None:
    """EigenLayer → stETH (7 days), then that stETH → ETH (5 days): the deposit of it and of the idle ETH is on day
    12."""
    moves = [
        move(1, "withdraw", "eigenlayer-steth", "lido-steth", 1000.0, 7.0, "queue"),
        move(2, "withdraw", "lido-steth", "eth", 1000.0, 5.0, "queue"),
        move(3, "deposit", "eth", "rocketpool-reth", 1100.0, 0.0, "deposit"),
    ]
    timeline = schedule(moves, {"eth": 100.0, "eigenlayer-steth": 1000.0}, START)
    assert [(e.day, e.kind, e.move, round(e.amount_eth, 6)) for e in timeline.events] == [
        (0, "request", 1, 1000.0),
        (7, "claim", 1, 1000.0),
        (7, "request", 2, 1000.0),
        (12, "claim", 2, 1000.0),
        (12, "deposit", 3, 1100.0),
    ]
    assert timeline.days == 12
    assert [(i.from_day, i.to_day, i.venue, i.amount_eth) for i in timeline.idle] == [
        (0, 7, "eigenlayer-steth", 1000.0),
        (0, 12, "eth", 100.0),
        (7, 12, "lido-steth", 1000.0),
    ]


def test_a_dex_sale_and_deposits_from_idle_eth_all_happen_on_day_zero() -> None:
    """No queued exit: nothing to wait for, the deposit is made on day 0."""
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


# An earlier applied plan's 14-day EigenLayer exit of 2,000 stETH is still out (`plan.problem.inputs.in_flight`): it
# lands in Lido on day 14. The settled book does not count it.
EARLIER = InFlight(from_venue="eigenlayer-steth", to_venue="lido-steth", amount_eth=2000.0, days_left=13.5)
SETTLED = {"eth": 1000.0, "lido-steth": 5000.0, "eigenlayer-steth": 2000.0}


def test_a_deposit_waits_for_an_earlier_plans_exit_still_in_flight() -> None:
    """The new plan only deposits idle ETH into rETH: nothing of its own to wait for, but the book still has capital
    in an exit queue, so the deposit is made on the day that capital lands (day 14, 13.5 days rounded up), as the
    ledger makes it, not on day 0. The wait is shown as idle, and says whose exits it waits for."""
    moves = [move(1, "deposit", "eth", "rocketpool-reth", 1000.0, 0.0, "deposit")]
    timeline = schedule(moves, SETTLED, START, [EARLIER])
    assert [(e.day, e.kind, e.to_venue, e.amount_eth) for e in timeline.events] == [
        (14, "deposit", "rocketpool-reth", 1000.0)
    ]
    assert timeline.reached["rocketpool-reth"] == 14
    [wait] = timeline.idle
    assert (wait.from_day, wait.to_day, wait.venue, wait.amount_eth) == (0, 14, "eth", 1000.0)
    assert wait.why == "waiting for earlier plans' exits to land before it is deposited into rocketpool-reth"


def test_capital_in_flight_is_at_its_destination_only_once_it_lands() -> None:
    """Selling 6,000 of stETH through Lido's 5-day queue when 5,000 is settled and 2,000 lands from the earlier
    EigenLayer exit on day 14: 5,000 is requested on day 0 and 1,000 on day 14 (not all 6,000 on day 0, as when the
    flight counted at Lido from the start), and the rETH deposit waits for the last claim (day 19): the plan's own
    exits decide the day."""
    moves = [
        move(1, "withdraw", "lido-steth", "eth", 6000.0, 5.0, "queue"),
        move(2, "deposit", "eth", "rocketpool-reth", 7000.0, 0.0, "deposit"),
    ]
    timeline = schedule(moves, SETTLED, START, [EARLIER])
    assert [(e.day, e.kind, round(e.amount_eth, 6)) for e in timeline.events] == [
        (0, "request", 5000.0),
        (5, "claim", 5000.0),
        (14, "request", 1000.0),
        (19, "claim", 1000.0),
        (19, "deposit", 7000.0),
    ]
    waits = [i for i in timeline.idle if i.venue == "eth"]
    assert waits and all(i.to_day == 19 for i in waits)
    assert {i.why for i in waits} == {
        "waiting for the plan's exits to land before it is deposited into rocketpool-reth"
    }


def test_when_the_plans_exits_and_an_earlier_flight_land_together_both_are_named() -> None:
    moves = [
        move(1, "withdraw", "lido-steth", "eth", 500.0, 14.0, "queue"),
        move(2, "deposit", "eth", "rocketpool-reth", 1500.0, 0.0, "deposit"),
    ]
    timeline = schedule(moves, SETTLED, START, [EARLIER])
    assert [(e.day, e.kind) for e in timeline.events] == [(0, "request"), (14, "claim"), (14, "deposit")]
    assert {i.why for i in timeline.idle if i.venue == "eth"} == {
        "waiting for the plan's exits and earlier plans' exits to land before it is deposited into rocketpool-reth"
    }


def test_plan_timeline_starts_from_the_settled_book_and_the_plans_capital_in_flight() -> None:
    """`plan_timeline` reads the book the plan was solved from (`plan.problem.inputs`: settled holdings and the
    capital in flight), not `current_weights` (which counts the flight at Lido already): the deposit waits."""
    inputs = SimpleNamespace(holdings_eth=SETTLED, in_flight=(EARLIER,))
    plan = SimpleNamespace(
        moves=[move(1, "deposit", "eth", "rocketpool-reth", 1000.0, 0.0, "deposit")],
        problem=SimpleNamespace(inputs=inputs),
        current_weights={"eth": 0.1, "lido-steth": 0.7, "eigenlayer-steth": 0.2},
        portfolio_eth=10_000.0,
    )
    timeline = plan_timeline(plan, START)
    assert [(e.day, e.kind) for e in timeline.events] == [(14, "deposit")]
    assert timeline.as_dict()["done_on"] == "2026-09-28"
