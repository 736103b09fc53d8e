"""The book as the service believes it: settled positions plus capital in flight (exit queues), and how an applied
plan's moves change it. Pure: no I/O, no clock (times are passed in).

A withdrawal with an exit time does not land at once: the capital is in flight from the venue it left until it is
due, still exposed to that venue (the optimizer counts it there, `optimizer.InFlight`). A move that needs capital
still in flight (a deposit of ETH that is queued on its way, or the next exit up the tree) extends that flight
instead of spending capital that is not there: the flight keeps its origin and its new destination is the move's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from optimizer import InFlight, Move

DUST_ETH = 1e-9


@dataclass(frozen=True)
class Pending:
    """Capital in flight: left `from_venue`, lands at `to_venue` at `due`."""

    from_venue: str
    to_venue: str
    amount_eth: float
    due: datetime
    proposal_id: str | None = None

    def in_flight(self, now: datetime) -> InFlight:
        days = max((self.due - now).total_seconds() / 86_400.0, 0.0)
        return InFlight(
            from_venue=self.from_venue, to_venue=self.to_venue, amount_eth=self.amount_eth, days_left=days
        )


@dataclass(frozen=True)
class Position:
    """Settled holdings (venue → ETH) and the capital in flight."""

    settled: dict[str, float]
    pending: tuple[Pending, ...] = ()

    def total_eth(self) -> float:
        return sum(self.settled.values()) + sum(p.amount_eth for p in self.pending)

    def headed(self) -> dict[str, float]:
        """Where the capital will be once everything lands."""
        out = dict(self.settled)
        for p in self.pending:
            out[p.to_venue] = out.get(p.to_venue, 0.0) + p.amount_eth
        return {v: a for v, a in out.items() if a > DUST_ETH}

    def land(self, now: datetime) -> tuple[Position, list[Pending]]:
        """Every flight due by `now` lands at its destination; returns the new position and what landed."""
        landed = [p for p in self.pending if p.due <= now]
        if not landed:
            return self, []
        settled = dict(self.settled)
        for p in landed:
            settled[p.to_venue] = settled.get(p.to_venue, 0.0) + p.amount_eth
        return Position(settled, tuple(p for p in self.pending if p.due > now)), landed


def apply_moves(
    position: Position, moves: Iterable[Move], now: datetime, proposal_id: str | None
) -> Position:
    """The position after a plan's moves are executed at `now` (exits first, as the plan orders them)."""
    settled = dict(position.settled)
    pending = list(position.pending)
    for m in moves:
        source = m.from_venue
        take = min(settled.get(source, 0.0), m.amount_eth)
        settled[source] = settled.get(source, 0.0) - take
        rest = m.amount_eth - take
        if take > DUST_ETH:
            if m.action == "withdraw" and m.days > 0:
                due = now + timedelta(days=m.days)
                pending.append(Pending(source, m.to_venue, take, due, proposal_id))
            else:
                settled[m.to_venue] = settled.get(m.to_venue, 0.0) + take
        # The rest is capital still on its way to `source`: extend those flights to the move's destination.
        for k, p in enumerate(pending):
            if rest <= DUST_ETH:
                break
            if p.to_venue != source:
                continue
            moved = min(p.amount_eth, rest)
            extra = timedelta(days=m.days) if m.action == "withdraw" else timedelta(0)
            redirected = replace(p, to_venue=m.to_venue, amount_eth=moved, due=p.due + extra)
            if moved < p.amount_eth - DUST_ETH:
                pending[k] = replace(p, amount_eth=p.amount_eth - moved)
                pending.append(redirected)
            else:
                pending[k] = redirected
            rest -= moved
    return Position(
        {v: a for v, a in settled.items() if a > DUST_ETH},
        tuple(p for p in pending if p.amount_eth > DUST_ETH),
    )
