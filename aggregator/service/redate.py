"""A stored plan's waiting deposits as the book has them now (issue #13).

A plan's timeline and Safe batches are rebuilt from what the plan recorded (`execution.timeline.plan_timeline`), but
the book can re-date its deposits after it was made: a later applied plan's exit that lands after them holds them
back (`aggregator.store.ledger.apply_moves`). Someone who follows the earlier plan's batch would deposit while
capital is still in an exit queue. `redated` reads the day the book now makes the plan's waiting deposits, and the
exits of other proposals that hold them back, for the timeline to put them there and say why. Pure: the caller
reads the position from the store.
"""

from __future__ import annotations

from datetime import UTC, date

from aggregator.store.ledger import Pending, Position, is_exit
from execution.timeline import Redated
from optimizer import Plan

HELD_SECONDS = 1.0
"""An exit due this close to a deposit's due (seconds) or later holds it back: the book re-dates a waiting deposit
to the due of the exit that lands last, exactly (stored to the microsecond)."""


def redated(position: Position | None, proposal_id: str, plan: Plan, start: date) -> Redated | None:
    """The day (from `start`, the plan's day) the book makes the waiting deposits of the applied plan
    `proposal_id`, with the exits of other proposals due then, or None when the book holds none of its deposits or
    no other proposal's exit holds them. A day no later than the plan's own changes nothing in its timeline."""
    if position is None or not plan.moves:
        return None
    parents = {v.id: v.parent for v in plan.problem.inputs.universe.venues}
    venues = {m.to_venue for m in plan.moves if m.action != "withdraw"}
    waiting = [
        p
        for p in position.pending
        if p.proposal_id == proposal_id and p.to_venue in venues and not is_exit(p, parents)
    ]
    if not waiting:
        return None
    due = max(p.due for p in waiting)
    holding = [
        p
        for p in position.pending
        if p.proposal_id not in (None, proposal_id)
        and is_exit(p, parents)
        and (p.due - due).total_seconds() >= -HELD_SECONDS
    ]
    if not holding:
        return None
    when = due.astimezone(UTC).date()
    by = tuple(sorted({str(p.proposal_id) for p in holding}))
    return Redated(day=(when - start).days, by=by, why=_why(by, holding, when))


def _why(by: tuple[str, ...], holding: list[Pending], when: date) -> str:
    """ "re-dated by proposal B: waits for its exit of 1,000.000000 ETH eigenlayer-steth → lido-steth until …"."""
    exits = " and ".join(
        f"{p.amount_eth:,.6f} ETH {p.from_venue} → {p.to_venue}"
        for p in sorted(holding, key=lambda p: (str(p.proposal_id), p.from_venue, p.to_venue))
    )
    if len(by) == 1:
        whose, noun = f"proposal {by[0]}", "its exit" if len(holding) == 1 else "its exits"
    else:
        whose, noun = f"proposals {', '.join(by)}", "their exits"
    return f"re-dated by {whose}: waits for {noun} of {exits} until {when.isoformat()}"
