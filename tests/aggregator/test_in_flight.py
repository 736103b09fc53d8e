"""The daemon's book is settled positions plus capital in flight: an applied plan's queued exits stay exposed where
they left until due, the next cycle passes them to the optimizer (and never exits them again), and they land."""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any, cast

import pytest

from aggregator.interfaces.dashboard.view import build
from aggregator.service import Service, flight_kind
from aggregator.settings import load_settings
from aggregator.store.ledger import Pending, Position, apply_moves
from optimizer import Move
from tests.conftest import AGGREGATOR, ROOT, clean_env
from tests.helpers.api import api_client
from tests.helpers.settings import demo_settings

T0 = datetime(2026, 9, 14, 12, 0, tzinfo=UTC)
TREE: dict[str, str | None] = {
    "eth": None,
    **dict.fromkeys(("steth", "lst", "reth", "rocketpool-reth", "ezeth", "weeth"), "eth"),
    "eigenlayer-steth": "steth",
    "restaked": "lst",
}
"""The position tree of the ledger tests: venue → parent (an exit goes up it, a deposit down)."""


def move(step: int, action: str, frm: str, to: str, eth: float, *, days: float = 0.0) -> Move:
    return Move(
        step=step, action=action, venue=frm if action == "withdraw" else to, from_venue=frm, to_venue=to,
        amount_eth=eth, share=eth / 1000.0, cost_eth=0.0, days=days,
    )  # fmt: skip


def test_a_queued_exit_is_in_flight_until_due_then_lands() -> None:
    """A 14-day exit leaves the settled book at once and lands at its destination when due, not before."""
    start = Position({"lst": 400.0, "restaked": 600.0})
    after = apply_moves(
        start, [move(1, "withdraw", "restaked", "lst", 200.0, days=14)], T0, "p1", parents=TREE
    )
    assert after.settled == {"lst": 400.0, "restaked": 400.0}
    assert after.pending == (Pending("restaked", "lst", 200.0, T0 + timedelta(days=14), "p1"),)
    assert after.headed() == {"lst": 600.0, "restaked": 400.0}
    flight = after.pending[0].in_flight(T0 + timedelta(days=4))
    assert (flight.from_venue, flight.to_venue) == ("restaked", "lst")
    assert flight.days_left == pytest.approx(10.0)
    early, landed = after.land(T0 + timedelta(days=13, hours=23))
    assert landed == [] and early == after
    late, landed = after.land(T0 + timedelta(days=14))
    assert late.settled == {"lst": 600.0, "restaked": 400.0} and late.pending == () and len(landed) == 1


def test_a_deposit_that_needs_capital_still_in_flight_extends_the_flight() -> None:
    """ETH queued on its way out of stETH cannot be deposited before it arrives: the flight is redirected to the
    deposit's venue (still exposed to stETH until due). The settled ETH the deposit also needs waits for the exit
    too (deposits wait until the exits land): it is in flight from ETH to rETH, not in rETH at once."""
    start = Position({"eth": 100.0, "steth": 900.0})
    moves = [
        move(1, "withdraw", "steth", "eth", 500.0, days=5),
        move(2, "deposit", "eth", "reth", 300.0),
    ]
    after = apply_moves(start, moves, T0, "p1", parents=TREE)
    assert after.settled == {"steth": 400.0}
    assert sorted((p.from_venue, p.to_venue, p.amount_eth, p.due) for p in after.pending) == [
        ("eth", "reth", 100.0, T0 + timedelta(days=5)),
        ("steth", "eth", 300.0, T0 + timedelta(days=5)),
        ("steth", "reth", 200.0, T0 + timedelta(days=5)),
    ]
    assert after.headed() == pytest.approx({"eth": 300.0, "reth": 300.0, "steth": 400.0})
    assert after.total_eth() == pytest.approx(1000.0)


def test_a_rotation_deposits_from_settled_eth_only_once_the_exit_lands() -> None:
    """Selling stETH through Lido's 5-day queue and buying rETH with idle ETH: the rETH deposit waits for the exit.
    Until the claim the ETH is a flight from ETH to rETH (exposed to ETH, where it is; counted at rETH by the
    optimizer, so not issued again), nothing of rETH is settled, and at the claim everything lands where the plan
    headed."""
    start = Position({"eth": 300.0, "steth": 700.0})
    moves = [
        move(1, "withdraw", "steth", "eth", 500.0, days=5),
        move(2, "deposit", "eth", "rocketpool-reth", 300.0),
    ]
    after = apply_moves(start, moves, T0, "p1", parents=TREE)
    claim = T0 + timedelta(days=5)
    assert after.settled == {"steth": 200.0}  # the idle ETH is spoken for, not in rETH yet
    assert after.pending == (
        Pending("steth", "eth", 500.0, claim, "p1"),
        Pending("eth", "rocketpool-reth", 300.0, claim, "p1"),
    )
    flight = after.pending[1].in_flight(T0 + timedelta(days=2))
    assert (flight.from_venue, flight.to_venue) == ("eth", "rocketpool-reth")
    assert flight.days_left == pytest.approx(3.0)
    early, landed = after.land(claim - timedelta(seconds=1))
    assert landed == [] and "rocketpool-reth" not in early.settled
    done, landed = after.land(claim)
    assert done.pending == () and len(landed) == 2
    assert done.settled == pytest.approx({"eth": 500.0, "steth": 200.0, "rocketpool-reth": 300.0})
    assert done.settled == pytest.approx(after.headed())


def test_with_nothing_in_flight_a_deposit_lands_at_once() -> None:
    """A DEX sale and a deposit: no exit queue, so the deposit is made at once (as before)."""
    start = Position({"eth": 100.0, "steth": 900.0})
    moves = [
        move(1, "withdraw", "steth", "eth", 200.0),
        move(2, "deposit", "eth", "reth", 300.0),
    ]
    after = apply_moves(start, moves, T0, "p1", parents=TREE)
    assert after.pending == ()
    assert after.settled == pytest.approx({"reth": 300.0, "steth": 700.0})


def test_a_deposit_funded_by_a_flight_lands_at_the_release_not_when_its_own_flight_does() -> None:
    """The book still has an earlier plan's 14-day EigenLayer exit out: this plan's 5-day Lido exit pays the rETH
    deposit, but the deposit waits until nothing is in flight (day 14), not for its own flight (day 5)."""
    earlier = Pending("eigenlayer-steth", "steth", 200.0, T0 + timedelta(days=14), "p0")
    start = Position({"steth": 500.0}, (earlier,))
    moves = [
        move(1, "withdraw", "steth", "eth", 500.0, days=5),
        move(2, "deposit", "eth", "reth", 500.0),
    ]
    after = apply_moves(start, moves, T0, "p1", parents=TREE)
    assert after.settled == {}
    assert after.pending == (earlier, Pending("steth", "reth", 500.0, T0 + timedelta(days=14), "p1"))
    on_day_5, landed = after.land(T0 + timedelta(days=5))
    assert landed == [] and on_day_5 == after


def test_a_chain_of_exits_waits_each_queue_and_the_deposit_waits_for_the_chain() -> None:
    """EigenLayer → stETH (7 days) then stETH → ETH (5 days) extends one flight to day 12 (a withdrawal is not a
    deposit); the rETH deposit of that ETH plus idle ETH lands on day 12 too."""
    start = Position({"eth": 50.0, "eigenlayer-steth": 100.0})
    moves = [
        move(1, "withdraw", "eigenlayer-steth", "steth", 100.0, days=7),
        move(2, "withdraw", "steth", "eth", 100.0, days=5),
        move(3, "deposit", "eth", "reth", 150.0),
    ]
    after = apply_moves(start, moves, T0, "p1", parents=TREE)
    day_12 = T0 + timedelta(days=12)
    assert after.settled == {}
    assert after.pending == (
        Pending("eigenlayer-steth", "reth", 100.0, day_12, "p1"),
        Pending("eth", "reth", 50.0, day_12, "p1"),
    )
    assert after.land(day_12)[0].settled == pytest.approx({"reth": 150.0})


def applied(position: Position, moves: list[Move], now: datetime, proposal_id: str) -> Position:
    """`apply_moves` with the ledger's invariant checked: settled plus in flight is the book's value, exactly (a
    plan's moves, with no costs, move capital and never make or lose any; re-dating a flight moves none)."""
    after = apply_moves(position, moves, now, proposal_id, parents=TREE)
    assert after.total_eth() == position.total_eth()
    return after


def landed(position: Position, now: datetime) -> Position:
    after, _ = position.land(now)
    assert after.total_eth() == position.total_eth()
    return after


def test_a_later_plans_exit_holds_back_an_earlier_plans_waiting_deposits() -> None:
    """Plan 1 sells 300 of stETH through Lido's 5-day queue and buys 300 of rETH (100 idle ETH, 200 of the exit's
    proceeds): its deposits wait until day 5. A day later plan 2 queues a 14-day ezETH exit (due day 15): plan 1's
    deposits must not land on day 5 while ezETH is still exposed, so they wait until day 15 too, as plan 2's own
    deposit (of a DEX sale's ETH) does. Plan 1's exit that no deposit spends still lands on day 5 (an exit is never re-dated)."""
    book = Position({"eth": 100.0, "steth": 500.0, "ezeth": 400.0})
    book = applied(
        book,
        [move(1, "withdraw", "steth", "eth", 300.0, days=5), move(2, "deposit", "eth", "reth", 300.0)],
        T0,
        "p1",
    )
    day_5 = T0 + timedelta(days=5)
    assert sorted((p.from_venue, p.to_venue, p.amount_eth, p.due) for p in book.pending) == [
        ("eth", "reth", 100.0, day_5),
        ("steth", "eth", 100.0, day_5),
        ("steth", "reth", 200.0, day_5),
    ]
    day_1, day_15 = T0 + timedelta(days=1), T0 + timedelta(days=15)
    book = applied(
        book,
        [
            move(1, "withdraw", "ezeth", "eth", 400.0, days=14),
            move(2, "withdraw", "steth", "eth", 1.0),  # a DEX sale: lands at once
            move(3, "deposit", "eth", "weeth", 1.0),
        ],
        day_1,
        "p2",
    )
    assert sorted((p.from_venue, p.to_venue, p.amount_eth, p.due, p.proposal_id) for p in book.pending) == [
        ("eth", "reth", 100.0, day_15, "p1"),  # a deposit of settled ETH: re-dated
        ("eth", "weeth", 1.0, day_15, "p2"),
        ("ezeth", "eth", 400.0, day_15, "p2"),
        ("steth", "eth", 100.0, day_5, "p1"),  # an exit: lands when its queue pays out
        ("steth", "reth", 200.0, day_15, "p1"),  # the exit's proceeds a deposit spends: the deposit waits
    ]
    on_day_5 = landed(book, day_5)
    assert on_day_5.settled == {"eth": 100.0, "steth": 199.0}  # the exit only: nothing in rETH yet
    assert landed(on_day_5, day_15 - timedelta(seconds=1)).settled == on_day_5.settled
    done = landed(on_day_5, day_15)
    assert done.pending == ()
    assert done.settled == {"eth": 500.0, "steth": 199.0, "reth": 300.0, "weeth": 1.0}


def test_a_later_exit_that_lands_earlier_neither_brings_forward_nor_delays_waiting_deposits() -> None:
    """Plan 2's 2-day exit (due day 3) and its DEX sale land before plan 1's release (day 5): plan 1's deposit still
    lands on day 5, not earlier, and plan 2's deposit waits for day 5 too (the book's last flight)."""
    book = Position({"eth": 100.0, "steth": 500.0, "ezeth": 400.0})
    book = applied(
        book,
        [move(1, "withdraw", "steth", "eth", 100.0, days=5), move(2, "deposit", "eth", "reth", 100.0)],
        T0,
        "p1",
    )
    day_5 = T0 + timedelta(days=5)
    book = applied(
        book,
        [
            move(1, "withdraw", "ezeth", "eth", 100.0, days=2),
            move(2, "withdraw", "steth", "eth", 50.0),
            move(3, "deposit", "eth", "weeth", 50.0),
        ],
        T0 + timedelta(days=1),
        "p2",
    )
    assert sorted((p.from_venue, p.to_venue, p.amount_eth, p.due) for p in book.pending) == [
        ("eth", "reth", 100.0, day_5),
        ("eth", "weeth", 50.0, day_5),
        ("ezeth", "eth", 100.0, T0 + timedelta(days=3)),
        ("steth", "eth", 100.0, day_5),
    ]


def test_settled_plus_in_flight_is_the_book_value_through_a_sequence_of_plans() -> None:
    """Four plans, some chaining exits of capital still in flight and depositing it, with flights landing between
    them: after every plan and every landing the book's value is what it was (`applied`, `landed`), no deposit lands
    while an exit is still out, and at the end everything is where the plans headed it."""
    book = Position({"eth": 200.0, "steth": 600.0, "eigenlayer-steth": 400.0, "ezeth": 300.0})
    value = book.total_eth()
    plans = [
        (0, [move(1, "withdraw", "eigenlayer-steth", "steth", 400.0, days=7),
             move(2, "deposit", "eth", "reth", 150.0)]),
        (2, [move(1, "withdraw", "steth", "eth", 800.0, days=5),
             move(2, "deposit", "eth", "weeth", 250.0)]),
        (4, [move(1, "withdraw", "ezeth", "eth", 300.0, days=14),
             move(2, "deposit", "eth", "reth", 100.0)]),
        (9, [move(1, "withdraw", "reth", "eth", 50.0),
             move(2, "deposit", "eth", "rocketpool-reth", 300.0)]),
    ]  # fmt: skip
    for k, (day, moves) in enumerate(plans):
        now = T0 + timedelta(days=day)
        book = applied(landed(book, now), moves, now, f"p{k}")
        exits_out = [p.due for p in book.pending if p.to_venue in {"eth", "steth"}]
        deposits = [p for p in book.pending if p.to_venue not in {"eth", "steth"}]
        assert all(p.due >= max(exits_out) for p in deposits), book.pending
    assert max(p.due for p in book.pending) == T0 + timedelta(days=18)  # plan 3's ezETH exit
    done = landed(book, T0 + timedelta(days=18))
    assert done.pending == () and done.total_eth() == value
    assert done.settled == {
        "eth": 200.0 + 800.0 + 300.0 + 50.0 - 150.0 - 250.0 - 100.0 - 300.0,
        "reth": 150.0 + 100.0 - 50.0,
        "weeth": 250.0,
        "rocketpool-reth": 300.0,
        "steth": 200.0,
    }


def test_the_daemon_book_carries_queued_exits_and_never_issues_them_twice(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """On the demo (real SQLite file): an applied plan that queues exits leaves them in flight in the store; the next
    cycle sees them as InFlight (portfolio unchanged, headed at the same target) and proposes nothing, and once due
    they land in the settled book."""
    config = demo_config(lambda text: text.replace("max_turnover = 0.5", "max_turnover = 1.0"))
    settings = load_settings(config).model_copy(
        update={
            "database": load_settings(config).database.model_copy(
                update={"url": f"sqlite:///{tmp_path}/a.db"}
            )
        }
    )
    clock = {"now": T0}
    svc = Service(settings, now=lambda: clock["now"])
    first = svc.rebalance("cli", apply=True).plan
    queued = [m for m in first.moves if m.action == "withdraw" and m.days > 0]
    assert first.status == "rebalance" and queued, first.reason
    position = svc.store.position()
    assert position is not None
    # in flight: the queued exits, and the deposits, which wait (where their capital is) until the exits land
    deposits = [m for m in first.moves if m.action == "deposit"]
    assert position.pending and {p.from_venue for p in position.pending} <= {
        m.from_venue for m in queued + deposits
    }
    release = max(p.due for p in position.pending)
    assert all(p.due == release for p in position.pending if p.to_venue in {m.to_venue for m in deposits})
    before = {v: w * first.portfolio_eth for v, w in first.current_weights.items()}
    assert all(position.settled.get(m.to_venue, 0.0) <= before.get(m.to_venue, 0.0) + 1e-6 for m in deposits)
    assert position.total_eth() == pytest.approx(first.portfolio_eth)
    assert position.headed() == pytest.approx({v: a for v, a in first.target_eth.items() if a > 1e-9})

    clock["now"] = T0 + timedelta(days=1)
    flights = svc.in_flight()
    # one day on: each flight waits its queue, or the queues of its chain (stETH out of EigenLayer, then out of Lido)
    chains = {
        sum(c) for k in range(1, len(queued) + 1) for c in itertools.combinations([m.days for m in queued], k)
    }
    assert flights and all(any(f.days_left == pytest.approx(d - 1) for d in chains) for f in flights)
    second = svc.rebalance("cli").plan
    assert second.problem.inputs.in_flight == flights
    assert second.portfolio_eth == pytest.approx(first.portfolio_eth)
    assert second.current_weights == pytest.approx(first.target_weights, abs=1e-9)
    assert second.status == "hold" and second.moves == [], second.reason

    clock["now"] = T0 + timedelta(days=sum(m.days for m in queued) + 1)  # chained flights wait for each queue
    assert svc.in_flight() == ()
    landed = svc.store.position()
    assert landed is not None and landed.pending == ()
    assert landed.settled == pytest.approx({v: a for v, a in first.target_eth.items() if a > 1e-9})


def test_the_daemon_book_holds_back_waiting_deposits_for_a_later_applied_plans_exit(tmp_path: Path) -> None:
    """On the demo (real SQLite file): the first applied plan's deposits wait for its 5-day Lido exit (due T0+5). A
    plan applied a day later queues 1,000 of stETH out of EigenLayer (14 days, due T0+15): the store's book re-dates
    every waiting deposit of the first plan to T0+15, and keeps the book's value."""
    settings = demo_settings(
        tmp_path, database={"url": f"sqlite:///{tmp_path}/a.db"}, limits={"max_turnover": 1.0}
    )
    clock = {"now": T0}
    svc = Service(settings, now=lambda: clock["now"])
    first = svc.rebalance("cli", apply=True)
    before = svc.store.position()
    assert before is not None and before.pending
    day_5, day_15 = T0 + timedelta(days=5), T0 + timedelta(days=15)
    assert {p.due for p in before.pending} == {day_5}
    deposits = [p for p in before.pending if flight_kind(settings, p.from_venue, p.to_venue) == "deposit"]
    assert deposits, before.pending
    exit_ = Move(
        step=1, action="withdraw", venue="eigenlayer-steth", from_venue="eigenlayer-steth", to_venue="lido-steth",
        amount_eth=1000.0, share=0.1, cost_eth=0.0, days=14.0, route="queue",
    )  # fmt: skip
    clock["now"] = T0 + timedelta(days=1)
    plan = first.plan.model_copy(update={"moves": [exit_]})
    svc.store.record_cycle(first.book, "cli", "later-exit", plan, apply=True)
    after = svc.store.position()
    assert after is not None
    assert after.total_eth() == pytest.approx(before.total_eth(), abs=1e-9)
    new = [p for p in after.pending if p.proposal_id == "later-exit"]
    assert [(p.from_venue, p.to_venue, p.amount_eth, p.due) for p in new] == [
        ("eigenlayer-steth", "lido-steth", 1000.0, day_15)
    ]
    # every flight of the first plan ends with a deposit (its Lido exit's proceeds are all deposited): all wait
    old = [p for p in after.pending if p.proposal_id == first.run_id]
    assert sorted((p.from_venue, p.to_venue, p.amount_eth) for p in old) == sorted(
        (p.from_venue, p.to_venue, p.amount_eth) for p in before.pending
    )
    assert {p.due for p in old} == {day_15}
    assert svc.store.land_due(day_5 + timedelta(days=1)) == []
    assert [p.to_venue for p in svc.store.land_due(day_15)] == [p.to_venue for p in after.pending]


def test_book_and_dashboard_tell_a_waiting_deposit_from_an_exit_queue(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """An applied rotation's flights are of two kinds: exits in their queue, and deposits held where they are until
    those exits land. `aggregator book` (a real subprocess on the same SQLite file), GET /api/v1/book's document
    and the dashboard name each for what it is, not every one an "in flight" that lands at its destination."""
    config = demo_config(lambda text: text.replace("max_turnover = 0.5", "max_turnover = 1.0"))
    url = f"sqlite:///{tmp_path}/a.db"
    base = load_settings(config)
    settings = base.model_copy(update={"database": base.database.model_copy(update={"url": url})})
    svc = Service(settings, now=lambda: T0)
    plan = svc.rebalance("cli", apply=True).plan
    exits = {m.from_venue for m in plan.moves if m.action == "withdraw" and m.days > 0}
    deposits = {m.to_venue for m in plan.moves if m.action == "deposit"}
    assert exits and deposits, plan.reason
    doc = cast(list[dict[str, Any]], svc.book_report()["in_flight"])
    kinds = {(f["from_venue"], f["to_venue"]): f["kind"] for f in doc}
    # an exit whose proceeds a deposit spends lands at that deposit's venue (`apply_moves`): still an exit
    assert {frm for (frm, _), kind in kinds.items() if kind == "exit"} == exits
    assert {to for (_, to), kind in kinds.items() if kind == "deposit"} == deposits
    assert set(kinds.values()) == {"exit", "deposit"}

    page = build(svc, T0)
    assert {(f["from"], f["to"]): f["kind"] for f in page.in_flight} == kinds
    with api_client(
        settings, "t" * 32
    ) as client:  # a second service on the same SQLite file, as the daemon's
        html = client.get("/").text
        served = client.get("/api/v1/book").json()["in_flight"]
    assert [f["kind"] for f in served] == [f["kind"] for f in doc]
    rows = re.findall(r'<tr data-kind="(\w+)"><td>([^<]+)</td>', html)
    assert sorted(k for k, _ in rows) == sorted(kinds.values())
    assert {k: unescape(text) for k, text in rows} == {
        "deposit": "deposit, held until the book's exits land",
        "exit": "exit, in its queue",
    }

    done = subprocess.run(
        [AGGREGATOR, "book", "--config", str(config)],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
        env=clean_env({"AGGREGATOR_DATABASE__URL": url, "COLUMNS": "220"}),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    waiting = [line for line in done.stdout.splitlines() if "deposit waiting" in line]
    queued = [line for line in done.stdout.splitlines() if line.strip().startswith("in flight")]
    assert len(waiting) == list(kinds.values()).count("deposit"), done.stdout
    assert len(queued) == list(kinds.values()).count("exit"), done.stdout
    assert all("until the book's exits land" in line for line in waiting)
