"""What the dashboard shows, built from the same store reads as the API (so every number on the page is the API's,
only shown as percent where people read it). Pure data: the template draws it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aggregator.core.errors import DamagedRecordError
from aggregator.events.budgets import Bar, risk_bars
from aggregator.service import Service
from optimizer import Plan


@dataclass
class Page:
    now: datetime
    names: dict[str, str]
    book: list[dict[str, Any]] = field(default_factory=list)
    book_source: str = ""
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    risk: list[Bar] = field(default_factory=list)
    latest: dict[str, Any] | None = None
    plan: Plan | None = None
    plan_error: str | None = None
    rates: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def build(service: Service, now: datetime, history: int = 50) -> Page:
    """Read the store once per section; a damaged latest proposal is shown as such, the rest still renders."""
    settings = service.settings
    page = Page(now=now, names={v.id: v.name or v.id for v in settings.venues})
    position = service.store.position()
    if position is None:
        settled, page.book_source = (
            dict(settings.portfolio.holdings_eth),
            "config [portfolio] (no plan applied yet)",
        )
    else:
        settled, page.book_source = dict(position.settled), "the store (an applied plan)"
        page.in_flight = [
            {
                "from": p.from_venue,
                "to": p.to_venue,
                "amount_eth": p.amount_eth,
                "due": p.due,
                "proposal": p.proposal_id,
            }
            for p in position.pending
        ]
    total = sum(settled.values()) + sum(f["amount_eth"] for f in page.in_flight)
    page.book = [
        {"venue": v, "amount_eth": eth, "share": eth / total if total else 0.0}
        for v, eth in sorted(settled.items(), key=lambda kv: -kv[1])
    ]
    page.history = service.store.proposals(history)
    if page.history:
        page.latest = page.history[0]
        try:
            found = service.store.proposal(page.latest["id"])
        except DamagedRecordError as exc:
            page.plan_error = str(exc)
        else:
            page.plan = found[1] if found else None
    if page.plan is not None:
        page.risk = risk_bars(page.plan)
    page.rates = service.store.latest_rates()
    return page
