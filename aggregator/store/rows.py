"""The store's rows as they are read back: what `Store.proposals`, `Store.proposal` and `Store.latest_rates`
return to the CLI, the API and the dashboard (frozen: one reader cannot change what another reads). The API
returns them as they are (they are its response models in /openapi.json); `--json` dumps them. A row that does
not fit its model is reported by the store as that record's damage (DamagedRecordError), never as pydantic's
error. The book and its capital in flight are `aggregator.store.ledger.Position`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# A time in JSON as Python's isoformat writes it ("+00:00"), as the API and `--json` wrote it before rows were typed.
IsoTime = Annotated[datetime, PlainSerializer(lambda t: t.isoformat(), return_type=str, when_used="json")]


class ProposalRow(BaseModel):
    """One stored proposal without its plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    created_at: IsoTime
    trigger: str  # schedule | start | cli | api
    mode: str  # dry_run | applied
    status: str  # rebalance | hold
    reason: str
    moves: int
    turnover: float
    yield_before: float  # fraction per year
    yield_after: float
    cvar_before: float
    cvar_after: float
    gain_bps: float
    collection_id: int | None


class ListedProposalRow(ProposalRow):
    """A proposal in a listing: a row whose time does not parse is listed too, with `created_at` None and
    `damaged` saying why (`damaged` is present only then)."""

    created_at: IsoTime | None  # type: ignore[assignment]
    damaged: str | None = None


class PlanLeg(BaseModel):
    """One move of a stored plan as the holding period reads it: which way, the venue capital enters or leaves
    (`optimizer.Move.venue`) and, for an exit, where it goes and how many days its queue takes (when the plan's
    deposits are made); the move's other fields are not read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["deposit", "withdraw"]
    venue: str
    from_venue: str | None = None
    to_venue: str | None = None
    # bounded as the optimizer bounds a route's days: a damaged record is refused (and logged), not a date overflow
    days: float = Field(default=0.0, ge=0.0, le=365.0, allow_inf_nan=False)


def release_days(legs: list[PlanLeg]) -> float:
    """Days after a plan is applied until its last exit lands, so its deposits are made (`store.ledger`): an exit
    out of a venue that another of its exits fills waits for that one first (EigenLayer, then Lido)."""
    arrive: dict[str, float] = {}
    exits = [leg for leg in legs if leg.action == "withdraw"]
    for _ in exits:  # a chain is at most as long as the plan's exits: enough passes to follow it
        for leg in exits:
            to = leg.to_venue or "?"
            arrive[to] = max(arrive.get(to, 0.0), arrive.get(leg.from_venue or leg.venue, 0.0) + leg.days)
    return max(arrive.values(), default=0.0)


class PlanLegs(BaseModel):
    """A stored plan's moves, nothing else of it (`Store.recent_moves`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    moves: list[PlanLeg]


class StoredRateRow(BaseModel):
    """One venue component's yield of a stored collection (a fraction per year)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venue: str
    component: str
    value: float
    sources: list[str]
    observed_at: IsoTime
    spread: float | None
    # source lineage (aggregator.rates.lineage), None for rates stored before migration 0008
    independent: int | None = None  # independent observations among the sources
    independence: str | None = None  # "2 independent of 3"
    lineage: list[str] | None = None  # per observation: "origin: source, source"


class StoredRejection(BaseModel):
    """A quote the collection did not use, and why (a quarantined jump's reason starts "quarantined jump")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    key: str
    value: float | None
    reason: str


class LatestRates(BaseModel):
    """The latest stored collection, its rates and the quotes it rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collection: int
    fetched_at: IsoTime
    failed_sources: dict[str, str]  # source -> why it failed
    rates: list[StoredRateRow]
    rejected: list[StoredRejection] = []
