"""The daemon's book is settled positions plus capital in flight: an applied plan's queued exits stay exposed where
they left until due, the next cycle passes them to the optimizer (and never exits them again), and they land."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.service import Service
from aggregator.settings import load_settings
from aggregator.store.ledger import Pending, Position, apply_moves
from optimizer import Move

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
    deposit's venue (still exposed to stETH until due), and only settled ETH is spent at once."""
    start = Position({"eth": 100.0, "steth": 900.0})
    moves = [
        move(1, "withdraw", "steth", "eth", 500.0, days=5),
        move(2, "deposit", "eth", "reth", 300.0),
    ]
    after = apply_moves(start, moves, T0, "p1")
    assert after.settled == {"reth": 100.0, "steth": 400.0}
    assert sorted((p.from_venue, p.to_venue, p.amount_eth) for p in after.pending) == [
        ("steth", "eth", 300.0),
        ("steth", "reth", 200.0),
    ]
    assert after.headed() == pytest.approx({"eth": 300.0, "reth": 300.0, "steth": 400.0})
    assert after.total_eth() == pytest.approx(1000.0)


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
    assert position.pending and {p.from_venue for p in position.pending} <= {m.from_venue for m in queued}
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
