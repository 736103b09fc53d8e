"""Real incidents replayed on a backtest: what each strategy had at stake the day before, and what it lost.

Three events of the evidence (docs/risk.md), each on the risk node whose venues it hit:

- stETH's depeg after the UST collapse (E1): from 2022-05-12, a market low of 0.93502 on 2022-06-18, back to ≈ 0.962
  by 2022-07-02; no backing lost.
- ezETH's depeg after the REZ launch (E5): 2024-04-24, a market-wide low of ≈ −13 %; no backing lost.
- rsETH's backing loss (E9): 2026-04-18, ≈ 18 % of supply released unbacked.

A depeg costs a holder who must sell at the low (`loss_if_sold`), not one who can wait in the queue (`loss_if_held`
is the backing lost). "At stake" is the capital exposed to the node (or to a node failing with it) at the close of
the day before, queued exits counted at the venue they are leaving, as the replay counts exposure (`"basis": "day
before"`).

An incident a little AFTER the window's last day (at most `MAX_DAYS_AFTER_WINDOW` = 120 days; rsETH's loss of
2026-04-18 falls 56 days after the last day of ETH.STORE, 2026-02-21) is applied to each strategy's book as held at
the close of the window's last day (`"basis": "last book of the window, N days before the event"`): the stake is
that day's exposure to the node and its descendants, the value that day's value; no return, trade or decision after
the window is invented, so the figure says what the book the backtest ended with would have lost, not what the
strategy would have held on the eve. The bound keeps that a statement about the book the strategy still holds: the
demo's optimizer may move half the book per weekly decision and is judged over a 180-day horizon, so a book older
than four months says little about the eve. An incident before the window's first day, or further after its last,
is listed as not replayed with the reason, never extrapolated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np

from aggregator.research.backtest.replay import Replay
from optimizer import Universe
from optimizer.structure import Structure

MAX_DAYS_AFTER_WINDOW = (
    120  # an incident at most this long after the window is replayed on the window's last book
)
DAY_BEFORE = "day before"


@dataclass(frozen=True)
class Incident:
    """A real event: the node it hit, its first day, its market low and the backing it cost, and its evidence."""

    name: str
    node: str
    on: date
    kind: Literal["depeg", "backing_loss"]
    market_low: float  # fraction below the exchange rate at the worst print
    backing_loss: float  # fraction of the backing lost for good
    evidence: str


INCIDENTS = (
    Incident(
        "stETH depeg, May–July 2022",
        "lido",
        date(2022, 5, 12),
        "depeg",
        1.0 - 0.93502,
        0.0,
        "E1: Chainlink stETH/ETH low 0.93502 on 2022-06-18, ≈ 0.962 by 2022-07-02; no backing lost",
    ),
    Incident(
        "ezETH depeg, April 2024",
        "renzo",
        date(2024, 4, 24),
        "depeg",
        0.13,
        0.0,
        "E5: market-wide low ≈ −13 % after the REZ launch, > $60 m of liquidations; backing intact",
    ),
    Incident(
        "rsETH backing loss, April 2026",
        "kelp",
        date(2026, 4, 18),
        "backing_loss",
        0.18,
        0.18,
        "E9: a forged cross-chain message released 116,500 rsETH, ≈ 18 % of supply, unbacked",
    ),
)


def hit_venues(universe: Universe, node: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Venues exposed to `node` or to a node failing with it (its descendants), in the universe's order."""
    st = Structure(universe)
    closure = sorted(st.failure_closure[st.node_index[node]])
    return np.asarray(st.exposure[closure].any(axis=0), dtype=bool)


def last_book_basis(days: int) -> str:
    """The label of a replay on the window's last book, `days` before the event."""
    return f"last book of the window, {days} day{'' if days == 1 else 's'} before the event"


def replay_incidents(
    replay: Replay,
    universe: Universe,
    incidents: tuple[Incident, ...] = INCIDENTS,
    max_days_after: int = MAX_DAYS_AFTER_WINDOW,
) -> list[dict[str, Any]]:
    """Each incident with every strategy's stake and loss: on the book of the day before when the window covers that
    day and the first, on the window's last book when the incident falls at most `max_days_after` days after it."""
    out: list[dict[str, Any]] = []
    nodes = {n.id for n in universe.nodes}
    for inc in incidents:
        row: dict[str, Any] = {
            "name": inc.name,
            "node": inc.node,
            "on": str(inc.on),
            "kind": inc.kind,
            "market_low": inc.market_low,
            "backing_loss": inc.backing_loss,
            "evidence": inc.evidence,
        }
        eve = inc.on - timedelta(days=1)
        if inc.node not in nodes:
            out.append(row | {"replayed": False, "why": f"no risk node {inc.node!r} in the universe"})
            continue
        first, last = replay.days[0], replay.days[-1]
        if eve in replay.days and inc.on in replay.days:
            t = replay.days.index(eve)
            basis: dict[str, Any] = {"basis": DAY_BEFORE, "book_day": str(eve), "day_before": str(eve)}
        elif last < inc.on and (inc.on - last).days <= max_days_after:
            t = len(replay.days) - 1
            gap = (inc.on - last).days
            basis = {"basis": last_book_basis(gap), "book_day": str(last), "days_before_event": gap}
        else:
            why = f"outside the window {first} → {last}"
            if inc.on > last:
                why += f" ({(inc.on - last).days} days after its last day; at most {max_days_after} are replayed)"
            out.append(row | {"replayed": False, "why": why})
            continue
        hit = hit_venues(universe, inc.node)
        strategies = []
        for p in replay.paths:
            share = float(np.asarray(p.exposure[t])[hit].sum())
            stake = share * p.values[t]
            strategies.append(
                {
                    "strategy": p.name,
                    "value_eth": p.values[t],
                    "at_stake_eth": stake,
                    "at_stake_share": share,
                    "loss_if_sold_eth": stake * inc.market_low,
                    "loss_if_held_eth": stake * inc.backing_loss,
                }
            )
        out.append(row | basis | {"replayed": True, "strategies": strategies})
    return out
