"""Strategies: given what was known yesterday and today's weights, the target weights, or None to hold.

Every strategy sees the same `Known` (yields from the history row of the day before, never later) and trades
under the same costs. The optimizer strategy is the daemon's own `optimize()` on a shared compiled model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from optimizer import InFlight, Limits, ModelCache, OptimizationInputs, Universe
from optimizer.optimize import optimize
from optimizer.structure import FloatArray, Structure


@dataclass(frozen=True)
class Known:
    """What a strategy may know on a decision day: the robust estimates of the yields up to yesterday (venue →
    component → fraction) and the venues closed to entries (venue → why: carried, stale, too few observations)."""

    yields: dict[str, dict[str, float]]
    priced: npt.NDArray[np.bool_]  # per venue: every component along its path has a value
    net_yield: FloatArray  # per venue, after haircuts; 0 where not priced
    entry_blocked: dict[str, str] = field(default_factory=dict)
    exit_only: dict[str, str] = field(default_factory=dict)  # went stale past the window: sell, never buy
    entry_discount: dict[str, float] = field(default_factory=dict)  # what an entry does not count on


class Strategy(Protocol):
    name: str

    def target(self, known: Known, weights: FloatArray, value_eth: float) -> FloatArray | None: ...


InFlightMove = tuple[str, str, float, int]  # (from venue, to venue, ETH, days left): `Book.in_flight_moves`
Trade = tuple[int, str, str]  # (days ago, "deposit" | "withdraw", venue): `Book.trades`


@runtime_checkable
class SeesInFlight(Protocol):
    """A strategy that plans on the book as it is: settled balances and the capital in exit queues (still exposed
    to the venue it left). The replay calls `see_book` before each `target`."""

    def see_book(
        self, settled: dict[str, float], in_flight: list[InFlightMove], trades: Sequence[Trade] = ()
    ) -> None: ...


def _onto(structure: Structure, shares: dict[int, float]) -> FloatArray:
    x = np.zeros(structure.n_venues)
    for i, s in shares.items():
        x[i] += s
    return x


@dataclass
class Fixed:
    """Hold fixed weights (e.g. 100 % stETH); re-trade only when a weight has drifted by more than `band`."""

    name: str
    structure: Structure
    weights_by_venue: dict[str, float]
    band: float = 0.0

    def target(self, known: Known, weights: FloatArray, value_eth: float) -> FloatArray | None:
        idx = self.structure.venue_index
        x = _onto(self.structure, {idx[v]: w for v, w in self.weights_by_venue.items()})
        if np.abs(x - weights).max() <= max(self.band, 1e-9):
            return None
        return x


@dataclass
class EqualWeight:
    """An equal share in every venue with a yield known (idle ETH excluded); re-trade past `band` drift."""

    name: str
    structure: Structure
    band: float = 0.0

    def target(self, known: Known, weights: FloatArray, value_eth: float) -> FloatArray | None:
        root = self.structure.venue_index[self.structure.universe.root.id]
        eligible = [int(i) for i in np.flatnonzero(known.priced) if i != root]
        if not eligible:
            return None
        x = _onto(self.structure, {i: 1.0 / len(eligible) for i in eligible})
        if np.abs(x - weights).max() <= max(self.band, 1e-9):
            return None
        return x


@dataclass
class ChaseYield:
    """Everything in the venue with the highest known net yield; moves whenever the leader changes."""

    name: str
    structure: Structure

    def target(self, known: Known, weights: FloatArray, value_eth: float) -> FloatArray | None:
        if not known.priced.any():
            return None
        scores = np.where(known.priced, known.net_yield, -np.inf)
        best = int(np.argmax(scores))
        if weights[best] >= 1.0 - 1e-9:
            return None
        return _onto(self.structure, {best: 1.0})


@dataclass
class Optimizer:
    """The daemon's optimizer at one risk aversion, on a model compiled once and re-solved every decision."""

    name: str
    universe: Universe
    limits: Limits
    cache: ModelCache
    holds: int = 0
    rebalances: int = 0
    _settled: dict[str, float] | None = None
    _in_flight: tuple[InFlight, ...] = ()
    _entries: dict[str, str] = field(default_factory=dict)
    _exits: dict[str, str] = field(default_factory=dict)

    def see_book(
        self, settled: dict[str, float], in_flight: list[InFlightMove], trades: Sequence[Trade] = ()
    ) -> None:
        """The book of the next `target`: settled ETH per venue and the capital in exit queues, which the optimizer
        counts at its destination (so a move in flight is not issued again) and exposed where it left; `trades`,
        the executed legs as (days ago, "deposit" | "withdraw", venue), for the holding period
        (`Limits.hold_days`)."""
        days = self.limits.hold_days
        self._entries = {
            v: f"{ago} d ago" for ago, action, v in trades if action == "deposit" and ago <= days
        }
        self._exits = {v: f"{ago} d ago" for ago, action, v in trades if action == "withdraw" and ago <= days}
        self._settled = {v: float(a) for v, a in settled.items() if a > 0.0}
        self._in_flight = tuple(
            InFlight(from_venue=src, to_venue=dst, amount_eth=float(a), days_left=float(max(d, 0)))
            for src, dst, a, d in in_flight
            if a > 0.0
        )

    def target(self, known: Known, weights: FloatArray, value_eth: float) -> FloatArray | None:
        ids = [v.id for v in self.universe.venues]
        entries: dict[str, str] = {}
        exits: dict[str, str] = {}
        if self._settled is not None:
            holdings, in_flight = self._settled, self._in_flight
            entries, exits = self._entries, self._exits
            # seen once: a later call without see_book plans on weights
            self._settled, self._in_flight, self._entries, self._exits = None, (), {}, {}
        else:
            holdings = {v: float(w * value_eth) for v, w in zip(ids, weights, strict=True) if w > 0}
            in_flight = ()
        plan = optimize(
            OptimizationInputs(
                universe=self.universe,
                limits=self.limits,
                portfolio_eth=sum(holdings.values()) + sum(f.amount_eth for f in in_flight),
                holdings_eth=holdings,
                yields=known.yields,
                entry_blocked=known.entry_blocked,
                exit_only=known.exit_only,
                entry_discount=known.entry_discount,
                in_flight=in_flight,
                recent_entries=entries,
                recent_exits=exits,
            ),
            cache=self.cache,
        )
        if plan.status != "rebalance":
            self.holds += 1
            return None
        self.rebalances += 1
        return np.array([plan.target_weights.get(v, 0.0) for v in ids])
