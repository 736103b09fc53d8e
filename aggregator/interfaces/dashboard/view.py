"""What the dashboard shows, built from the same store reads as the API (so every number on the page is the API's,
only shown as percent where people read it). Pure data: the template draws it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator.core.errors import DamagedRecordError
from aggregator.events.budgets import Bar, risk_bars
from aggregator.interfaces.render import move_costs
from aggregator.rates.lineage import independent_of
from aggregator.service import Service, flight_kind
from aggregator.settings import Settings
from aggregator.store.rows import LatestRates, ListedProposalRow, StoredRateRow
from execution.timeline import Timeline
from optimizer import Plan

BACKTEST_ENV = (
    "AGGREGATOR_BACKTEST_DIR"  # the CLI's `backtest --out` default too (the image sets /data/backtest)
)
MAX_SUMMARY_BYTES = 4 << 20  # a backtest summary.json is ~50 KB
QUARANTINED = re.compile(r"^quarantined jump from (?P<last>\S+)$")


class FlaggedRate(StoredRateRow):
    """A stored rate as the dashboard shows it: whether its sources disagree (spread above the tolerance), its
    quarantined quotes, and its independence (this process's lineage when it made the collection)."""

    disagree: bool
    quarantined: list[dict[str, Any]]


@dataclass
class Page:
    now: datetime
    names: dict[str, str]
    book: list[dict[str, Any]] = field(default_factory=list)
    book_source: str = ""
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    risk: list[Bar] = field(default_factory=list)
    latest: ListedProposalRow | None = None
    plan: Plan | None = None
    plan_error: str | None = None
    move_costs: list[tuple[float, float]] = field(default_factory=list)  # per move: (fees, forgone) ETH
    timeline: Timeline | None = (
        None  # the moves as the chain allows them, from the proposal's day (as `show`)
    )
    rates: LatestRates | None = None
    rate_rows: list[FlaggedRate] = field(default_factory=list)  # page.rates' rates, flagged
    tolerance: float = 0.0  # [rates] disagreement_tolerance: a spread above it is flagged
    quarantined: list[dict[str, Any]] = field(
        default_factory=list
    )  # the latest collection's quarantined quotes
    history: list[ListedProposalRow] = field(default_factory=list)
    backtest: dict[str, Any] | None = None  # summary.json of the configured report folder
    backtest_dir: Path | None = None
    backtest_written: datetime | None = None
    backtest_error: str | None = None


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
                "kind": flight_kind(settings, p.from_venue, p.to_venue),
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
            found = service.store.proposal(page.latest.id)
        except DamagedRecordError as exc:
            page.plan_error = str(exc)
        else:
            page.plan = found[1] if found else None
    if page.plan is not None:
        page.risk = risk_bars(page.plan)
        page.move_costs = [move_costs(page.plan, m) for m in page.plan.moves]  # split as the CLI's table
        created = page.latest.created_at if page.latest else None
        if page.plan.moves and created is not None and page.latest is not None:
            page.timeline = service.proposal_timeline(page.latest.id, page.plan, created)
    page.rates = service.store.latest_rates()
    if page.rates is not None:
        _flag_rates(page, service, settings)
    page.backtest_dir = backtest_dir(settings)
    if page.backtest_dir is not None:
        _read_backtest(page, page.backtest_dir)
    return page


def _flag_rates(page: Page, service: Service, settings: Settings) -> None:
    """Each stored rate with its disagreement flag (spread above the tolerance, as the collection logged
    `rates_disagree`), its quarantined quotes (`quote_quarantined`, stored as rejections) and, when this process
    made the collection, how many of its sources are independent observations."""
    assert page.rates is not None
    page.tolerance = settings.rates.disagreement_tolerance
    targets: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for venue in settings.venues:
        for comp in venue.components:
            for ref in comp.quotes:
                targets.setdefault((ref.source, ref.key), []).append((venue.id, comp.name))
    for j in page.rates.rejected:
        found = QUARANTINED.match(j.reason)
        if found is None:
            continue
        for venue_id, comp_name in targets.get((j.source, j.key), [("", j.key)]):
            page.quarantined.append(
                {
                    "venue": venue_id,
                    "component": comp_name,
                    "source": j.source,
                    "value": j.value,
                    "last": _float(found.group("last")),
                }
            )
    live = service.last_book
    same = live is not None and live.fetched_at.isoformat() == page.rates.fetched_at.isoformat()
    lineage = {(r.venue, r.component): r for r in live.rates} if live is not None and same else {}
    for row in page.rates.rates:
        r = lineage.get((row.venue, row.component))
        flags = {
            "disagree": row.spread is not None and row.spread > page.tolerance,
            "quarantined": [
                q for q in page.quarantined if (q["venue"], q["component"]) == (row.venue, row.component)
            ],
            # the stored lineage (migration 0008) when this process did not collect it
            "independence": independent_of(r.independent, len(r.sources))
            if r is not None
            else row.independence,
        }
        page.rate_rows.append(FlaggedRate.model_validate(row.model_dump() | flags))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def backtest_dir(settings: Settings) -> Path | None:
    """Where `aggregator backtest` writes its report by default: AGGREGATOR_BACKTEST_DIR, else the config's
    backtest.output_dir (None without a [backtest] section)."""
    if os.environ.get(BACKTEST_ENV):
        return Path(os.environ[BACKTEST_ENV])
    return Path(settings.backtest.output_dir) if settings.backtest is not None else None


def _read_backtest(page: Page, folder: Path) -> None:
    """summary.json of the report in `folder`, when there is one; a damaged one is shown as such."""
    path = folder / "summary.json"
    try:
        if not path.is_file():
            return
        stat = path.stat()
        if stat.st_size > MAX_SUMMARY_BYTES:
            page.backtest_error = f"{path} is {stat.st_size} bytes, over the {MAX_SUMMARY_BYTES} read here"
            return
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        page.backtest_error = f"{path} cannot be read: {exc}"
        return
    if not isinstance(data, dict) or not isinstance(data.get("strategies"), list):
        page.backtest_error = f"{path} is not a backtest summary (no list of strategies)"
        return
    page.backtest = data
    page.backtest_written = datetime.fromtimestamp(stat.st_mtime, UTC)
