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
from aggregator.service import Service
from aggregator.settings import load_settings
from aggregator.store.ledger import Pending, Position, apply_moves
from optimizer import Move
from tests.conftest import AGGREGATOR, ROOT, clean_env
from tests.helpers.api import api_client

T0 = datetime(2026, 9, 14, 12, 0, tzinfo=UTC)


def move(step: int, action: str, frm: str, to: str, eth: float, *, days: float = 0.0) -> Move:
    return Move(
        step=step, action=action, venue=frm if action == "withdraw" else to, from_venue=frm, to_venue=to,
        amount_eth=eth, share=eth / 1000.0, cost_eth=0.0, days=days,
    )  # fmt: skip


def test_a_queued_exit_is_in_flight_until_due_then_lands() -> None:
    """A 14-day exit leaves the settled book at once and lands at its destination when due, not before."""
    start = Position({"lst": 400.0, "restaked": 600.0})
    after = apply_moves(start, [move(1, "withdraw", "restaked", "lst", 200.0, days=14)], T0, "p1")
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
    after = apply_moves(start, moves, T0, "p1")
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
    after = apply_moves(start, moves, T0, "p1")
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
    after = apply_moves(start, moves, T0, "p1")
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
    after = apply_moves(start, moves, T0, "p1")
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
    after = apply_moves(start, moves, T0, "p1")
    day_12 = T0 + timedelta(days=12)
    assert after.settled == {}
    assert after.pending == (
        Pending("eigenlayer-steth", "reth", 100.0, day_12, "p1"),
        Pending("eth", "reth", 50.0, day_12, "p1"),
    )
    assert after.land(day_12)[0].settled == pytest.approx({"reth": 150.0})


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
        "deposit": "deposit, held until the plan's exits land",
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
    assert all("until the plan's exits land" in line for line in waiting)
