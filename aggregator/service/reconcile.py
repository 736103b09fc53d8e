"""The expected book (the store's) against the book read on chain: what the chain should show of each expected
flight, and what the optimizer is given. Pure: no I/O, no clock.

The store keeps three kinds of flight (`aggregator.store.ledger`), and the chain shows each differently:

- an exit up the tree (stETH in Lido's queue, shares in EigenLayer's): a withdrawal request on chain, from the
  venue it left or, once a first queue of a chain of exits is done, from a venue above it on its way;
- a deposit waiting for the plan's exits to land (from a venue down to one below it): nothing in flight on chain,
  the capital is still held settled where it waits;
- an exit whose proceeds a deposit spends (extended to the deposit's venue, due at the release): a request while
  it is queued; once claimed, capital held settled at the turn of its path (where its exits end and its deposits
  begin: idle ETH for stETH sold to buy rETH), waiting for the release like a deposit.

The optimizer counts a flight at its destination, so it must see every flight the store has, headed where the
store says, or it proposes the same move again: a chain request is given the store's destination, and capital
waiting on chain is taken out of the settled venue that holds it (never more than the chain shows there) and given
as a flight to the deposit's venue. Settled plus in flight is then still the chain's total.

Nothing is hidden from the drift check: capital counts as arrived only where the chain holds it settled on top of
everything expected there: at its destination (an exit claimed before the store's due date, a waiting deposit the
operator made early: from then on it is held, not in flight, so the optimizer does not count it twice), or at the
turn of its path (a claimed request waiting for the release); what the chain does not hold stays expected in flight
or settled, and its absence is drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.store.ledger import ancestors
from optimizer import InFlight

DUST_ETH = 1e-9


@dataclass(frozen=True)
class Reconciled:
    """`expected` and `expected_flights`: the book the chain should show (settled per venue, in exit queues), to
    compare with it. `holdings` and `flights`: the chain's book as the optimizer is to see it. `unfunded`: venue →
    ETH of waiting deposits (and arrived exits) the chain does not hold there (drift, not given to the optimizer).
    `chain`: the chain's settled book (a venue the chain reader does not cover: as expected)."""

    chain: dict[str, float]
    expected: dict[str, float]
    expected_flights: tuple[InFlight, ...]
    holdings: dict[str, float]
    flights: tuple[InFlight, ...]
    unfunded: dict[str, float]


def turn(parents: Mapping[str, str | None], from_venue: str, to_venue: str) -> str | None:
    """Where a flight from `from_venue` to `to_venue` stops going up and starts going down: the deepest venue that
    is `from_venue` or above it and `to_venue` or above it (None when they share none)."""
    up_to = {to_venue, *ancestors(parents, to_venue)}
    return next((v for v in (from_venue, *ancestors(parents, from_venue)) if v in up_to), None)


def _kind(parents: Mapping[str, str | None], f: InFlight) -> str:
    t = turn(parents, f.from_venue, f.to_venue)
    if t == f.from_venue:
        return "waiting"
    if t is None or t == f.to_venue:
        return "exit"
    return "extended"


def reconcile(
    parents: Mapping[str, str | None],
    expected: Mapping[str, float],
    expected_flights: tuple[InFlight, ...],
    read: Mapping[str, float],
    chain_flights: tuple[InFlight, ...],
    *,
    covered: frozenset[str],
) -> Reconciled:
    """The expected book (`expected` settled, `expected_flights`) reconciled with the chain's (`read` settled at
    the `covered` venues, `chain_flights` in queues); `parents` is the position tree (venue → parent)."""
    settled = dict(expected)
    waiting: list[tuple[str, InFlight]] = []  # (venue holding it on chain, flight to give the optimizer)
    exits: list[InFlight] = []
    for f in expected_flights:
        if _kind(parents, f) == "waiting":
            settled[f.from_venue] = settled.get(f.from_venue, 0.0) + f.amount_eth
            waiting.append((f.from_venue, f))
        else:
            exits.append(f)
    chain = {v: eth for v, eth in settled.items() if v not in covered} | {
        v: read.get(v, 0.0) for v in covered
    }
    given, rest = _carry(parents, exits, chain_flights)

    def arrive(venue: str, eth: float) -> float:
        """Up to `eth` counted as arrived at `venue`: what the chain holds there beyond what is expected."""
        land = min(eth, max(0.0, chain.get(venue, 0.0) - settled.get(venue, 0.0)))
        if land <= DUST_ETH:
            return 0.0
        settled[venue] = settled.get(venue, 0.0) + land
        return land

    # An exit no request carries has arrived where the chain holds it settled at its destination (claimed early,
    # or its deposit made early) ...
    for k, f in enumerate(exits):
        land = arrive(f.to_venue, rest[k]) if rest[k] > DUST_ETH else 0.0
        rest[k] -= land
        exits[k] = f.model_copy(update={"amount_eth": f.amount_eth - land})
    # ... or, for an extended exit, at its turn: from then on it waits for the release like a deposit.
    for k, f in enumerate(exits):
        at = turn(parents, f.from_venue, f.to_venue)
        if rest[k] <= DUST_ETH or at is None or _kind(parents, f) != "extended":
            continue
        land = arrive(at, rest[k])
        if land > DUST_ETH:
            waiting.append((at, f.model_copy(update={"from_venue": at, "amount_eth": land})))
            exits[k] = f.model_copy(update={"amount_eth": f.amount_eth - land})
    # A waiting deposit the chain already holds at its destination was made early: held there, no longer waiting.
    for k, (at, f) in enumerate(waiting):
        land = arrive(f.to_venue, f.amount_eth)
        if land > DUST_ETH:
            settled[at] = settled.get(at, 0.0) - land
            waiting[k] = (at, f.model_copy(update={"amount_eth": f.amount_eth - land}))

    holdings = dict(chain)
    unfunded: dict[str, float] = {}
    for at, f in waiting:  # out of the settled venue where it waits, never more than the chain holds there
        take = min(f.amount_eth, max(0.0, holdings.get(at, 0.0)))
        holdings[at] = holdings.get(at, 0.0) - take
        if take > DUST_ETH:
            given.append(f.model_copy(update={"amount_eth": take}))
        if f.amount_eth - take > DUST_ETH:
            unfunded[at] = unfunded.get(at, 0.0) + f.amount_eth - take
    return Reconciled(
        chain=chain,
        expected=settled,
        expected_flights=tuple(f for f in exits if f.amount_eth > DUST_ETH),
        holdings=holdings,
        flights=tuple(given),
        unfunded=unfunded,
    )


def _carry(
    parents: Mapping[str, str | None], exits: list[InFlight], chain_flights: tuple[InFlight, ...]
) -> tuple[list[InFlight], list[float]]:
    """Each chain request carries expected exits: one of the same route first, then any it is a leg of (a request
    from the venue the exit left or from one above it on its way up). What it carries is given the store's
    destination and waits the longer of the two; what it carries of no exit stays as the chain has it. Returns the
    flights for the optimizer and, per exit, how much of it no request carries."""
    left = [p.amount_eth for p in chain_flights]
    rest = [f.amount_eth for f in exits]
    given: list[InFlight] = []
    for exact in (True, False):
        for k, f in enumerate(exits):
            path = {f.from_venue, *ancestors(parents, f.from_venue)} - {
                turn(parents, f.from_venue, f.to_venue)
            }
            for j, p in enumerate(chain_flights):
                same = (p.from_venue, p.to_venue) == (f.from_venue, f.to_venue)
                if (
                    rest[k] <= DUST_ETH
                    or left[j] <= DUST_ETH
                    or not (same if exact else p.from_venue in path)
                ):
                    continue
                moved = min(rest[k], left[j])
                left[j] -= moved
                rest[k] -= moved
                days = max(p.days_left, f.days_left)
                given.append(
                    p.model_copy(update={"to_venue": f.to_venue, "amount_eth": moved, "days_left": days})
                )
    given += [
        p.model_copy(update={"amount_eth": a})
        for p, a in zip(chain_flights, left, strict=True)
        if a > DUST_ETH
    ]
    return given, rest
