"""The API's response bodies as pydantic models: FastAPI validates every response against them and documents them
in /openapi.json. The JSON is what the routes returned before they were typed; optional fields are present only
when the route sets them (the routes use `response_model_exclude_unset`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from aggregator.store.rows import ProposalRow
from optimizer import Plan


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthBody(_Body):
    """GET /health. `last_successful_cycle` is Unix time; the age fields and `reason` come with a max age."""

    status: str  # ok | degraded
    last_successful_cycle: float | None
    dry_run_default: bool
    age_seconds: float | None = None
    max_age_seconds: float | None = None
    reason: str | None = None
    # Replicas ([coordination], #18): this replica's id, its role, and the replica it sees leading (None: none)
    replica: str | None = None
    role: str | None = None  # leader | follower
    leader: str | None = None


class BookBody(_Body):
    """GET /api/v1/book: the current book in ETH per venue and where it was read. Read on chain, it also names the
    address, the block, the positions token by token, the rates and the resolved contract addresses."""

    source: str
    holdings_eth: dict[str, float]
    in_flight: list[dict[str, Any]]
    address: str | None = None
    block: int | None = None
    positions: list[dict[str, Any]] | None = None
    rates: dict[str, float] | None = None
    resolved: dict[str, str] | None = None


class ProposalBody(_Body):
    """GET /api/v1/proposals/{id}: the stored proposal, its plan, and its timeline from the day it was made."""

    proposal: ProposalRow
    plan: Plan
    timeline: dict[str, Any] | None


class SafeBatchBody(_Body):
    """GET /api/v1/proposals/{id}/safe-batch: what was written day by day, and the Transaction Builder files."""

    summary: dict[str, Any]
    batches: dict[str, dict[str, Any]]


class RebalanceBody(_Body):
    """POST /api/v1/rebalance: the new proposal's id, its plan and its timeline from today."""

    proposal: str
    plan: Plan
    timeline: dict[str, Any]


class RebalanceWithSensitivityBody(_Body):
    """POST /api/v1/rebalance with `{"sensitivity": true}`: also the re-solves with each prior halved and doubled
    (`aggregator.risk.sensitivity`, docs/risk.md). Not a subclass of `RebalanceBody`: a union's serializer takes
    the first member the value is an instance of, and would drop `sensitivity`."""

    proposal: str
    plan: Plan
    timeline: dict[str, Any]
    sensitivity: dict[str, Any]
