"""A plan's moves scheduled as the chain allows them (issue #16).

A plan is a list of net moves on the position tree; on chain they cannot all happen on day 0. An exit through a
protocol queue is two events, the request (the capital leaves the venue and stops earning) and the claim `days`
later (it arrives in the parent); a DEX sale and a deposit are one event. Capital can only be moved once it is
there: a withdrawal from stETH of stETH that EigenLayer returns on day 14 is requested on day 14, and a deposit
into rETH of ETH that the Lido queue pays out on day 5 happens on day 5. Exits use the capital of their source in
the order it becomes available. Deposits wait until the exits land, the plan's own and those an earlier applied plan
still has in flight: every deposit of the plan is made on the release, the later of the day the last of its
withdrawals delivers its capital (the claim of the last queued exit in the chain) and the day the last capital in
flight at the start lands (day 0 if neither), or later if its own capital arrives later. So the book is never exposed
to both the venues it leaves and the venues it enters: every state is today's book with some exits done, or the
target. Capital in flight at the start (`plan.problem.inputs.in_flight`) is at its destination only from the day it
lands, not on day 0. Capital that waits for the release (idle ETH, or the parent token) is an `Idle` entry: it earns
what it did, no more.

A stored plan's deposits can be re-dated after it was made: a later applied plan's exit that lands after them holds
them back in the book (`aggregator.store.ledger`). `Redated` is that day, given by the caller (the service reads it
from the book); a deposit is then made no earlier than it, and the timeline says so (`Timeline.redated`).

Pure: a function of the plan's numbers (the moves with their route and days, the settled book and the capital in
flight it started from), no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, Protocol

DUST_ETH = 1e-6
"""Amounts below this (ETH) are rounding, not capital to schedule."""

EventKind = Literal["request", "claim", "sell", "deposit"]


class MoveLike(Protocol):
    """What the timeline reads of an optimizer move (`optimizer.Move` satisfies it)."""

    @property
    def step(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def from_venue(self) -> str: ...
    @property
    def to_venue(self) -> str: ...
    @property
    def amount_eth(self) -> float: ...
    @property
    def days(self) -> float: ...
    @property
    def route(self) -> str: ...


class FlightLike(Protocol):
    """What the timeline reads of capital in flight at the start (`optimizer.InFlight` satisfies it): it lands at
    `to_venue` in `days_left` days."""

    @property
    def to_venue(self) -> str: ...
    @property
    def amount_eth(self) -> float: ...
    @property
    def days_left(self) -> float: ...


@dataclass(frozen=True)
class Event:
    """One thing to do on one day: `request` a queued exit, `claim` it when due, `sell` on a DEX, or `deposit`.
    `move` is the plan's step number it belongs to (a move whose capital arrives in parts is several events)."""

    day: int
    date: date
    kind: EventKind
    move: int
    from_venue: str
    to_venue: str
    amount_eth: float
    route: str
    claim_day: int | None = None  # a request: the day its claim is due

    def as_dict(self) -> dict[str, object]:
        return {
            "day": self.day,
            "date": self.date.isoformat(),
            "kind": self.kind,
            "move": self.move,
            "from_venue": self.from_venue,
            "to_venue": self.to_venue,
            "amount_eth": self.amount_eth,
            "route": self.route,
            "claim_day": self.claim_day,
        }


@dataclass(frozen=True)
class Idle:
    """Capital that earns nothing more for a while: in a withdrawal queue between request and claim (nothing), or
    waiting in a deposit's source for the exits to land, the plan's or earlier plans' still in flight (idle ETH earns
    nothing; a parent token its own yield, not its destination's)."""

    from_day: int
    to_day: int
    amount_eth: float
    venue: str  # the venue being left (a queue), or where the capital waits (a deposit's source)
    why: str

    @property
    def eth_days(self) -> float:
        return self.amount_eth * (self.to_day - self.from_day)

    def as_dict(self) -> dict[str, object]:
        return {
            "from_day": self.from_day,
            "to_day": self.to_day,
            "amount_eth": self.amount_eth,
            "venue": self.venue,
            "why": self.why,
            "eth_days": self.eth_days,
        }


@dataclass(frozen=True)
class Redated:
    """A stored plan's waiting deposits re-dated in the book after it was made: they are made on `day` (from the
    plan's start) because of the exits of the proposals `by`; `why` says so for people ("re-dated by proposal …:
    waits for its exit of … until …")."""

    day: int
    by: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Timeline:
    """The plan's events in order of day, the day each venue reaches its target, and what earns nothing.
    `redated`: set when a later plan's exits hold the plan's deposits back past the day the plan itself gave them
    (None otherwise)."""

    start: date
    events: tuple[Event, ...]
    reached: Mapping[str, int]  # venue → the day its target weight is reached (0: at once)
    idle: tuple[Idle, ...]
    redated: Redated | None = None

    @property
    def days(self) -> int:
        """The day the whole plan is done."""
        return max(self.reached.values(), default=0)

    def dates(self) -> list[date]:
        """Every day with something to do, in order."""
        return sorted({e.date for e in self.events})

    def on(self, day: date) -> list[Event]:
        return [e for e in self.events if e.date == day]

    def redated_dict(self) -> dict[str, object] | None:
        """`redated` as JSON (with its date), None when nothing re-dated the plan's deposits."""
        r = self.redated
        if r is None:
            return None
        return {
            "day": r.day,
            "date": (self.start + timedelta(days=r.day)).isoformat(),
            "by": list(r.by),
            "why": r.why,
        }

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "start": self.start.isoformat(),
            "days": self.days,
            "done_on": (self.start + timedelta(days=self.days)).isoformat(),
            "events": [e.as_dict() for e in self.events],
            "reached": {
                v: {"day": d, "date": (self.start + timedelta(days=d)).isoformat()}
                for v, d in sorted(self.reached.items())
            },
            "idle": [i.as_dict() for i in self.idle],
            "idle_eth_days": sum(i.eth_days for i in self.idle),
        }
        redated = self.redated_dict()
        if redated is not None:  # only then: a plan nothing re-dated reads as before
            out["redated"] = redated
        return out


def _queue_days(days: float) -> int:
    """A queue's wait in whole days: a claim cannot be made before the queue's days have passed."""
    whole = int(days)
    return whole if whole == days else whole + 1


def schedule(
    moves: Iterable[MoveLike],
    holdings_eth: Mapping[str, float],
    start: date,
    in_flight: Iterable[FlightLike] = (),
    redated: Redated | None = None,
) -> Timeline:
    """The moves on the days the chain allows. `holdings_eth` is what each venue holds directly at the start (its
    own position, not its children's, settled: not counting `in_flight`); `in_flight` is capital an earlier plan
    still has on its way, at its destination on the day it lands (`days_left` rounded up). A move takes its source's
    capital as it becomes available (held at day 0, landing from an earlier plan's flight, or arriving from a
    child's exit or a parent's deposit), earliest first. Withdrawals are scheduled first; a deposit is made no
    earlier than the release: the day the last withdrawal's capital arrives, or the last flight lands if later, nor
    before `redated.day` (a later plan's exits hold it back in the book). The timeline carries `redated` only when
    it moved a deposit."""
    available: dict[str, list[list[float]]] = {v: [[0.0, a]] for v, a in holdings_eth.items() if a > DUST_ETH}
    flights_land = 0  # the day the last capital already in flight lands
    for f in in_flight:
        if f.amount_eth > DUST_ETH:
            lands = _queue_days(f.days_left)
            available.setdefault(f.to_venue, []).append([float(lands), f.amount_eth])
            flights_land = max(flights_land, lands)
    events: list[Event] = []
    idle: list[Idle] = []
    ordered = sorted(moves, key=lambda m: (m.action != "withdraw", m.step))
    release = flights_land
    own = 0  # the day the plan's own last exit delivers
    held = False  # whether `redated` moved a deposit
    for move in ordered:
        deposit = move.action != "withdraw"
        remaining = move.amount_eth
        queue = available.setdefault(move.from_venue, [])
        queue.sort(key=lambda chunk: chunk[0])
        while remaining > DUST_ETH:
            if not queue:
                # more than the source will ever hold: schedule the rest on the last day anything arrived (the
                # optimizer's moves balance, so this is rounding; never drop capital)
                day = max((e.day for e in events), default=0)
                taken = remaining
            else:
                chunk = queue[0]
                day = int(chunk[0])
                taken = min(remaining, chunk[1])
                chunk[1] -= taken
                if chunk[1] <= DUST_ETH:
                    queue.pop(0)
            remaining -= taken
            if deposit and day < release:
                idle.append(
                    Idle(day, release, taken, move.from_venue, _waiting(own, flights_land, move.to_venue))
                )
                day = release
            if deposit and redated is not None and day < redated.day:
                idle.append(Idle(day, redated.day, taken, move.from_venue, redated.why))
                day, held = redated.day, True
            arrive = _emit(events, idle, move, day=day, amount=taken, start=start)
            available.setdefault(move.to_venue, []).append([float(arrive), taken])
            if not deposit:
                own = max(own, arrive)
                release = max(release, arrive)
    merged = _merge(events)
    reached: dict[str, int] = {}
    for e in merged:
        for venue, when in (
            (e.from_venue, e.day if e.kind != "claim" else None),
            (e.to_venue, e.claim_day if e.kind == "request" else e.day),
        ):
            if when is not None:
                reached[venue] = max(reached.get(venue, 0), when)
    return Timeline(
        start=start,
        events=tuple(merged),
        reached=reached,
        idle=tuple(_merge_idle(idle)),
        redated=redated if held else None,
    )


def _waiting(own: int, flights_land: int, venue: str) -> str:
    """Why capital waits to be deposited into `venue`: the plan's own exits (the last landing on day `own`), the
    exits earlier plans still have in flight (the last landing on day `flights_land`), or both when they land on the
    same day."""
    if flights_land > own:
        whose = "earlier plans' exits"
    elif flights_land == own:
        whose = "the plan's exits and earlier plans' exits"
    else:
        whose = "the plan's exits"
    return f"waiting for {whose} to land before it is deposited into {venue}"


def _emit(
    events: list[Event], idle: list[Idle], move: MoveLike, *, day: int, amount: float, start: date
) -> int:
    """Append the events of `amount` of `move` starting on `day`; returns the day it arrives at its destination."""

    def event(kind: EventKind, on: int, claim: int | None = None) -> Event:
        return Event(
            day=on,
            date=start + timedelta(days=on),
            kind=kind,
            move=move.step,
            from_venue=move.from_venue,
            to_venue=move.to_venue,
            amount_eth=amount,
            route=move.route,
            claim_day=claim,
        )

    if move.action == "withdraw" and move.route == "queue" and move.days > 0:
        due = day + _queue_days(move.days)
        events.append(event("request", day, due))
        events.append(event("claim", due))
        idle.append(Idle(day, due, amount, move.from_venue, f"in the {move.from_venue} exit queue"))
        return due
    events.append(event("sell" if move.action == "withdraw" else "deposit", day))
    return day


def _merge(events: list[Event]) -> list[Event]:
    """One event per (day, kind, move, claim day): parts of a move that happen together are one transaction."""
    out: dict[tuple[int, str, int, int | None], Event] = {}
    for e in events:
        key = (e.day, e.kind, e.move, e.claim_day)
        if key in out:
            prior = out[key]
            out[key] = Event(**{**prior.__dict__, "amount_eth": prior.amount_eth + e.amount_eth})
        else:
            out[key] = e
    kind_order = {"claim": 0, "request": 1, "sell": 2, "deposit": 3}
    return sorted(out.values(), key=lambda e: (e.day, kind_order[e.kind], e.move))


def _merge_idle(idle: list[Idle]) -> list[Idle]:
    out: dict[tuple[int, int, str, str], Idle] = {}
    for i in idle:
        key = (i.from_day, i.to_day, i.venue, i.why)
        prior = out.get(key)
        out[key] = (
            i
            if prior is None
            else Idle(i.from_day, i.to_day, prior.amount_eth + i.amount_eth, i.venue, i.why)
        )
    return sorted(out.values(), key=lambda i: (i.from_day, i.venue))


class InputsLike(Protocol):
    """What the timeline reads of a plan's recorded inputs (`optimizer.OptimizationInputs` satisfies it)."""

    @property
    def holdings_eth(self) -> Mapping[str, float]: ...
    @property
    def in_flight(self) -> Sequence[FlightLike]: ...


class ProblemLike(Protocol):
    @property
    def inputs(self) -> InputsLike: ...


class PlanLike(Protocol):
    """What the timeline reads of an optimizer plan (`optimizer.Plan` satisfies it)."""

    @property
    def moves(self) -> Sequence[MoveLike]: ...
    @property
    def problem(self) -> ProblemLike: ...


def plan_timeline(plan: PlanLike, start: date, redated: Redated | None = None) -> Timeline:
    """The timeline of a plan proposed on `start`, from the book it was solved from: its settled holdings, and the
    capital earlier plans still had in flight (at its destination from the day it lands; the plan's deposits wait
    for it). `plan.current_weights` is not the start: it counts that capital at its destination already.
    `redated`: the day the book now makes the plan's waiting deposits, when a later plan re-dated them (the caller
    reads it from the book; a day no later than the plan's own changes nothing)."""
    inputs = plan.problem.inputs
    return schedule(plan.moves, inputs.holdings_eth, start, inputs.in_flight, redated)
