"""The simulated portfolio of one strategy: settled balances, capital in exit queues, and orders waiting for funds.

A decision becomes orders, the same tree steps a plan lists (`optimizer.moves.tree_moves`): withdrawals first,
deepest first, then deposits. Each day every open order moves as much as its source holds:
- a withdrawal takes the venue's cheaper exit route at the decision's path yields (`Structure.exit_routes`, as the
  model prices it: a protocol queue's wait or a DEX's fee): it pays the route's fee, then waits the route's days in
  transit (earning nothing) before it lands in the parent venue;
- a deposit pays the venue's `entry_cost` and lands at once, but only once no capital is in an exit queue and no
  exit order is open (the daemon's ledger and the execution timeline wait the same way): the capital it spends is
  where it was until then, so no state of a rebalance is riskier than the book before it or the target, which is
  why the optimizer's risk limits hold on the target (`optimizer.problem`);
- each order pays `gas_cost_eth` once, when it first moves capital.
A new decision cancels the orders still open. The weights a strategy sees count queued capital at its destination;
risk and limits are measured on `exposed()`: queued capital still at the venue it left, until it lands.

What was done is recorded as executed legs (`legs`): an order is one leg, counted when it first moves capital, with
all it moved; `executed_turnover` is half the change in positions the executed legs made, as a share of the book.
A re-issued plan whose orders match the open ones adds nothing until capital actually moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from optimizer.moves import tree_moves
from optimizer.structure import FloatArray, Structure

DUST = 1e-9


@dataclass
class Transfer:
    """Capital in an exit queue: it left `source` and lands in `dest` on `arrives`."""

    source: int
    dest: int
    amount: float
    arrives: date


@dataclass
class Leg:
    """An executed order: first moved capital on `day`; `amount_eth` is all it moved."""

    day: date
    action: str  # "withdraw" | "deposit"
    venue: int
    amount_eth: float = 0.0


@dataclass
class Order:
    action: str  # "withdraw" | "deposit"
    venue: int
    remaining: float
    gas_paid: bool = False
    leg: Leg | None = None
    fee: float = 0.0  # a withdrawal's route: fee (fraction of the amount) and days in transit
    days: float = 0.0


@dataclass
class Book:
    structure: Structure
    gas_eth: float
    balances: FloatArray
    in_flight: list[Transfer] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    costs_eth: float = 0.0
    traded_eth: float = 0.0
    legs: list[Leg] = field(default_factory=list)
    executed_turnover: float = 0.0

    @classmethod
    def start(cls, structure: Structure, holdings: dict[str, float], gas_eth: float) -> Book:
        bal = np.array([holdings.get(v, 0.0) for v in structure.venue_ids], dtype=float)
        return cls(structure=structure, gas_eth=gas_eth, balances=bal)

    @property
    def value(self) -> float:
        return float(self.balances.sum() + sum(t.amount for t in self.in_flight))

    def positions(self) -> FloatArray:
        """ETH per venue with queued capital counted where it will land."""
        out = self.balances.copy()
        for t in self.in_flight:
            out[t.dest] += t.amount
        return out

    def weights(self) -> FloatArray:
        pos = self.positions()
        total = pos.sum()
        out: FloatArray = pos / total if total > 0 else pos
        return out

    def exposure(self) -> FloatArray:
        """Weights with queued capital counted where it is still exposed: the venue it left."""
        pos = self.exposed()
        total = pos.sum()
        out: FloatArray = pos / total if total > 0 else pos
        return out

    def exposed(self) -> FloatArray:
        """ETH at risk per venue: settled, plus queued capital still exposed to the venue it is leaving."""
        out = self.balances.copy()
        for t in self.in_flight:
            out[t.source] += t.amount
        return out

    def in_flight_moves(self, day: date) -> list[tuple[str, str, float, int]]:
        """Capital in exit queues as (from venue, to venue, ETH, days left on `day`), for a planner that must not
        re-issue a move already in flight."""
        ids = self.structure.venue_ids
        return [(ids[t.source], ids[t.dest], t.amount, (t.arrives - day).days) for t in self.in_flight]

    def trades(self, day: date) -> list[tuple[int, str, str]]:
        """The executed legs as (days before `day`, action, venue id), for a planner's holding period."""
        ids = self.structure.venue_ids
        return [((day - leg.day).days, leg.action, ids[leg.venue]) for leg in self.legs]

    def land(self, day: date) -> None:
        """Queued capital due by `day` arrives in its destination."""
        keep: list[Transfer] = []
        for t in self.in_flight:
            if t.arrives <= day:
                self.balances[t.dest] += t.amount
            else:
                keep.append(t)
        self.in_flight = keep

    def decide(self, target: FloatArray, path_yield: FloatArray) -> float:
        """Replace open orders with the steps from today's weights to `target`, each exit by its venue's cheaper
        route at `path_yield` (the yield of each venue's whole path); returns the turnover share."""
        st = self.structure
        x0 = self.weights()
        value = self.value
        _, days, route = st.exit_routes(path_yield)
        self.orders = []
        for m in tree_moves(st, x0, target, value, path_yield):
            i = st.venue_index[m.venue]
            order = Order(action=m.action, venue=i, remaining=m.amount_eth)
            if m.action == "withdraw":
                order.fee, order.days = float(st.route_fee[i, route[i]]), float(days[i])
            self.orders.append(order)
        return 0.5 * float(np.abs(target - x0).sum())

    def execute(self, day: date) -> None:
        """Move what each open order can with the funds there are today. Deposits wait while any capital is in an
        exit queue or an exit order is still open (module doc)."""
        st = self.structure
        open_orders: list[Order] = []
        moved = np.zeros(st.n_venues)
        value = self.value
        for o in self.orders:  # withdrawals first (`decide`), so open ones are known when deposits come
            parent = st.parent_index[o.venue]
            assert parent is not None
            if o.action == "deposit" and (self.in_flight or any(w.action == "withdraw" for w in open_orders)):
                open_orders.append(o)
                continue
            source = o.venue if o.action == "withdraw" else parent
            amount = min(o.remaining, float(self.balances[source]))
            if amount > DUST:
                gas = 0.0 if o.gas_paid else min(self.gas_eth, amount)
                o.gas_paid = True
                if o.leg is None:
                    o.leg = Leg(day, o.action, o.venue)
                    self.legs.append(o.leg)
                o.leg.amount_eth += amount
                sign = -1.0 if o.action == "withdraw" else 1.0
                moved[o.venue] += sign * amount
                moved[parent] -= sign * amount
                self.balances[source] -= amount
                o.remaining -= amount
                self.traded_eth += amount
                if o.action == "withdraw":
                    cost = amount * o.fee + gas
                    days = math.ceil(o.days - 1e-9)
                    landed = amount - cost
                    if days <= 0:
                        self.balances[parent] += landed
                    else:
                        self.in_flight.append(Transfer(o.venue, parent, landed, day + timedelta(days=days)))
                else:
                    cost = amount * float(st.entry_cost[o.venue]) + gas
                    self.balances[o.venue] += amount - cost
                self.costs_eth += cost
            incoming = any(t.dest == source for t in self.in_flight)
            if o.remaining > DUST * max(1.0, self.value) and (incoming or self.balances[source] > DUST):
                open_orders.append(o)  # else nothing more will reach the source: costs ate the rest
        self.orders = open_orders
        if value > 0:
            self.executed_turnover += 0.5 * float(np.abs(moved).sum()) / value

    def accrue(self, daily_rate: FloatArray) -> None:
        """One day of yield on settled balances (queued capital earns nothing)."""
        self.balances *= 1.0 + daily_rate

    def shock(self, venue_loss: FloatArray) -> float:
        """A failure: every settled or queued position loses its venue's share; returns the ETH lost."""
        before = self.value
        self.balances *= 1.0 - venue_loss
        for t in self.in_flight:
            t.amount *= 1.0 - float(venue_loss[t.source])
        return before - self.value


REVERSAL_DAYS = 14


def reversed_legs(legs: list[Leg], within_days: int = REVERSAL_DAYS) -> list[Leg]:
    """Legs whose opposite leg (the same venue, the other direction) executed within `within_days` after them."""
    out: list[Leg] = []
    for i, leg in enumerate(legs):
        for later in legs[i + 1 :]:
            if (later.day - leg.day).days > within_days:
                break
            if later.venue == leg.venue and later.action != leg.action:
                out.append(leg)
                break
    return out
