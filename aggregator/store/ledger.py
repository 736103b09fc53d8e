"""The book as the service believes it: settled positions plus capital in flight (exit queues), and how an applied
plan's moves change it. Pure: no I/O, no clock (times are passed in).

A withdrawal with an exit time does not land at once: the capital is in flight from the venue it left until it is
due, still exposed to that venue (the optimizer counts it there, `optimizer.InFlight`). The next exit up the tree of
capital still in flight (stETH that EigenLayer is returning, then out of Lido) extends that flight: the flight keeps
its origin, its new destination is the move's, and it waits the next queue too.

A plan's deposits wait until its exits land ("deposits wait until the exits land"): once the plan's withdrawals are
applied, if any capital of the book is still in flight, every deposit of the plan lands at the latest due of those
flights (the release). The part of a deposit funded by settled capital becomes a flight from the deposit's source (its
parent: idle ETH, or the parent token) to its venue, due at the release, so it stays exposed where it is until then
and the optimizer, which counts flights at their destination, does not issue it again (with the book read on
chain, where it is still settled capital, `aggregator.service.reconcile` gives it to the optimizer the same way);
the part funded by capital still in flight extends those flights to the deposit's venue, due at the release at the
earliest. So every state during a rebalance is today's book with some exits done, or the target. With nothing in
flight, deposits land at once.

A later plan's exits hold back an earlier plan's deposits too: when a plan queues an exit that lands after the
release an earlier plan's deposits were waiting for, those deposits (every flight that ends with a deposit: its
destination is not an ancestor of the venue it is held at) wait for the new release. Exits are never re-dated: they
land when their queue pays out. Re-dating moves no capital: settled plus in flight stays the book's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    position: Position,
    moves: Iterable[Move],
    now: datetime,
    proposal_id: str | None,
    *,
    parents: Mapping[str, str | None],
) -> Position:
    """The position after a plan's moves are executed at `now`: its withdrawals first (in the plan's order), then its
    deposits, which land once nothing of the book is in flight any more (at once if nothing is). Deposits earlier
    plans left waiting wait for this plan's exits too. `parents` is the position tree (venue → its parent, None at
    the root), which tells a deposit in flight (down the tree) from an exit (up it)."""
    ordered = list(moves)
    settled = dict(position.settled)
    pending = list(position.pending)
    for m in (m for m in ordered if m.action == "withdraw"):
        take = _take_settled(settled, m)
        if take > DUST_ETH:
            if m.days > 0:
                pending.append(
                    Pending(m.from_venue, m.to_venue, take, now + timedelta(days=m.days), proposal_id)
                )
            else:
                settled[m.to_venue] = settled.get(m.to_venue, 0.0) + take
        _extend(pending, m, m.amount_eth - take, delay=timedelta(days=m.days))
    release = max((p.due for p in pending if p.amount_eth > DUST_ETH), default=now)
    pending = [replace(p, due=release) if p.due < release and not is_exit(p, parents) else p for p in pending]
    for m in (m for m in ordered if m.action != "withdraw"):
        take = _take_settled(settled, m)
        if take > DUST_ETH:
            if release > now:  # waits for the exits: stays exposed to its source until then
                pending.append(Pending(m.from_venue, m.to_venue, take, release, proposal_id))
            else:
                settled[m.to_venue] = settled.get(m.to_venue, 0.0) + take
        _extend(pending, m, m.amount_eth - take, earliest=release)
    return Position(
        {v: a for v, a in settled.items() if a > DUST_ETH},
        tuple(p for p in pending if p.amount_eth > DUST_ETH),
    )


def ancestors(parents: Mapping[str, str | None], venue: str) -> list[str]:
    """`venue`'s parent, its parent's parent, ... up to the root (`parents`: the position tree, venue → parent)."""
    out: list[str] = []
    node = parents.get(venue)
    while node is not None and node not in out:
        out.append(node)
        node = parents.get(node)
    return out


def is_exit(flight: Pending, parents: Mapping[str, str | None]) -> bool:
    """Whether a flight is an exit only (its destination is an ancestor of the venue it left): it lands when its
    queue pays out. Any other flight ends with a deposit, which waits for the book's exits. A flight naming a venue
    the tree does not have (removed from the config while in flight) is left as it is: nothing says what it is."""
    if flight.from_venue not in parents or flight.to_venue not in parents:
        return True
    return flight.to_venue in ancestors(parents, flight.from_venue)


def _take_settled(settled: dict[str, float], m: Move) -> float:
    """Spend what the move's source holds settled (up to the move's amount); returns how much."""
    take = min(settled.get(m.from_venue, 0.0), m.amount_eth)
    settled[m.from_venue] = settled.get(m.from_venue, 0.0) - take
    return take


def _extend(
    pending: list[Pending],
    m: Move,
    rest: float,
    *,
    delay: timedelta = timedelta(0),
    earliest: datetime | None = None,
) -> None:
    """`rest` of move `m` is capital still on its way to its source: redirect those flights to the move's venue, due
    `delay` later (the next queue of a chain of exits) and not before `earliest` (a deposit's release), splitting the
    last one if it holds more than the move needs."""
    for k, p in enumerate(list(pending)):
        if rest <= DUST_ETH:
            break
        if p.to_venue != m.from_venue:
            continue
        moved = min(p.amount_eth, rest)
        due = p.due + delay if earliest is None else max(p.due + delay, earliest)
        redirected = replace(p, to_venue=m.to_venue, amount_eth=moved, due=due)
        if moved < p.amount_eth - DUST_ETH:
            pending[k] = replace(p, amount_eth=p.amount_eth - moved)
            pending.append(redirected)
        else:
            pending[k] = redirected
        rest -= moved
