"""From sources to venue yields: fetch every source concurrently, reject bad quotes with a logged reason, cross-check
what is left (`aggregator.rates.crosscheck`: median, disagreement flag, jump quarantine). Nothing invalid reaches the
optimizer: a component with no usable quote is missing, and the optimizer holds that venue at its current weight.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import structlog

from adapters import REGISTRY, Quote, SourceDataError, SourceError
from adapters.endpoints import rejected_reasons
from aggregator.core.clock import Clock
from aggregator.rates.breaker import BreakerState, SourceHealth
from aggregator.rates.crosscheck import RateMemory, check_component, plausible_range
from aggregator.settings import Settings
from aggregator.settings.rates import Bounds

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ComponentRate:
    """One venue component's yield this cycle and what it rests on."""

    venue: str
    component: str
    value: float
    sources: tuple[str, ...]
    observed_at: datetime
    notes: tuple[str, ...]
    spread: float | None = None
    disagree: bool = False
    change: float | None = None
    independent: int = 0  # independent observations among the sources (aggregator.rates.lineage)
    lineage: tuple[str, ...] = ()  # per observation: "origin: source, source"
    urls: tuple[str, ...] = ()  # per used quote: "source: the URL that answered"


@dataclass(frozen=True)
class Rejection:
    source: str
    key: str
    value: float | None
    reason: str


@dataclass
class RateBook:
    """The outcome of one collection: the rates, what was rejected, which sources failed, what is missing."""

    fetched_at: datetime
    rates: list[ComponentRate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    failed_sources: dict[str, str] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(default_factory=list)
    source_seconds: dict[str, float] = field(default_factory=dict)  # fetch time per source, retries included
    quotes: list[Quote] = field(default_factory=list)  # every valid quote, before cross-checks

    def yields(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for r in self.rates:
            out[r.venue][r.component] = r.value
        return dict(out)


def validate(quote: Quote, settings: Settings, now: datetime) -> str | None:
    """Why a quote cannot be used, or None."""
    src = settings.sources[quote.source]
    if not math.isfinite(quote.value):
        return f"value is not a finite number ({quote.value})"
    if quote.value < src.min_yield:
        return f"yield {quote.value} below min_yield {src.min_yield:g} of source {quote.source}"
    if quote.value > src.max_yield:
        return f"yield {quote.value} above max_yield {src.max_yield} of source {quote.source} (wrong units?)"
    age_h = (now - quote.observed_at).total_seconds() / 3600.0
    if age_h > src.max_age_hours:
        return f"stale: observed {age_h:.1f} h ago, max_age_hours is {src.max_age_hours:g}"
    if age_h < -1.0:
        return f"observed {-age_h:.1f} h in the future (clock skew or bad timestamp)"
    return None


async def collect(
    settings: Settings,
    client: httpx.AsyncClient,
    now: Clock,
    health: SourceHealth | None = None,
    memory: RateMemory | None = None,
) -> RateBook:
    """Fetch every source once, concurrently; one failing source never stops the others.

    A source whose circuit breaker is open is skipped (logged as `source_skipped`) until its cooldown ends.
    """
    health = health or SourceHealth()
    memory = memory or RateMemory()
    wanted: dict[str, set[str]] = defaultdict(set)
    targets: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for venue in settings.venues:
        for comp in venue.components:
            for ref in comp.quotes:
                wanted[ref.source].add(ref.key)
                targets[(ref.source, ref.key)].append((venue.id, comp.name))
    start = now()
    names = []
    skipped: dict[str, str] = {}
    for name in sorted(wanted):
        src = settings.sources[name]
        breaker = health.breaker(name, src.breaker_failures, src.breaker_cooldown_minutes)
        if breaker.allows(start):
            names.append(name)
        else:
            assert breaker.opened_at is not None
            until = breaker.opened_at + breaker.cooldown
            skipped[name] = (
                f"circuit open after {breaker.consecutive} failed cycles, until {until.isoformat()}"
            )
            log.warning("source_skipped", source=name, reason=skipped[name])

    seconds: dict[str, float] = {}

    async def one(name: str) -> list[Quote]:
        """One source's quotes. Whatever goes wrong inside it (a parser's RecursionError, a ValueError from a
        date helper, a KeyError) is that source's failure, a SourceError, never the cycle's."""
        src = settings.sources[name]
        start = time.perf_counter()
        try:
            quotes = await REGISTRY[src.adapter].fetch(client, name, src, sorted(wanted[name]), now)
            for q in quotes:
                if not isinstance(q, Quote) or q.observed_at.utcoffset() is None:
                    raise SourceDataError(
                        name, f"adapter returned {q!r:.200}, not a quote with an aware time"
                    )
            return quotes
        except SourceError:
            raise
        except Exception as exc:  # the isolation boundary between sources
            raise SourceDataError(
                name, f"adapter failed on this answer: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            seconds[name] = time.perf_counter() - start

    results = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
    book = RateBook(fetched_at=now(), failed_sources=dict(skipped), source_seconds=seconds)
    valid: dict[tuple[str, str], list[Quote]] = defaultdict(list)
    bounds: dict[tuple[str, str], tuple[Bounds, str]] = {
        (venue.id, comp.name): plausible_range(settings.rates, venue.kind, comp.name, comp.plausible)
        for venue in settings.venues
        for comp in venue.components
    }
    for name, result in zip(names, results, strict=True):
        breaker = health.breakers[name]
        if isinstance(result, SourceError):
            book.failed_sources[name] = result.reason
            state = breaker.record(False, book.fetched_at)
            log.warning(
                "source_failed",
                source=name,
                reason=result.reason,
                error=type(result).__name__,
                breaker=str(state),
            )
            if state is BreakerState.OPEN:
                log.error("circuit_opened", source=name, failed_cycles=breaker.consecutive)
            continue
        if isinstance(result, BaseException):
            raise result
        breaker.record(True, book.fetched_at)
        seen = set()
        for q in result:
            seen.add(q.key)
            reason = validate(q, settings, book.fetched_at)
            if reason:
                book.rejected.append(Rejection(q.source, q.key, q.value, reason))
                log.warning("quote_rejected", source=q.source, key=q.key, value=q.value, reason=reason)
                continue
            used = False
            for target in targets[(name, q.key)]:
                (low, high), origin = bounds[target]
                if not low <= q.value <= high:
                    why = (
                        f"yield {q.value:g} outside the plausible {low:g}..{high:g} of {target[0]}.{target[1]} "
                        f"({origin}; wrong units?)"
                    )
                    book.rejected.append(Rejection(q.source, q.key, q.value, why))
                    log.warning(
                        "quote_rejected",
                        source=q.source,
                        key=q.key,
                        value=q.value,
                        venue=target[0],
                        component=target[1],
                        reason=why,
                    )
                    continue
                valid[target].append(q)
                used = True
            if used:
                book.quotes.append(q)
        reasons = rejected_reasons(result)
        for key in sorted(wanted[name] - seen):
            why = reasons.get(key, "not in the source's answer")
            book.rejected.append(Rejection(name, key, None, why))
            log.warning("quote_rejected", source=name, key=key, value=None, reason=why)
    tol = settings.rates.disagreement_tolerance
    for venue in settings.venues:
        for comp in venue.components:
            checked = check_component(
                (venue.id, comp.name),
                valid.get((venue.id, comp.name), []),
                memory,
                settings.rates,
                book.fetched_at,
            )
            for q, last in checked.quarantined:
                book.rejected.append(Rejection(q.source, q.key, q.value, f"quarantined jump from {last}"))
                log.warning(
                    "quote_quarantined",
                    venue=venue.id,
                    component=comp.name,
                    source=q.source,
                    value=q.value,
                    last_accepted=last,
                    reason="jump beyond jump_threshold seen by one source only; waiting for confirmation",
                )
            if checked.value is None:
                book.missing.append((venue.id, comp.name))
                log.warning("yield_missing", venue=venue.id, component=comp.name)
                continue
            disagree = checked.spread is not None and checked.spread > tol
            if disagree:
                log.warning(
                    "rates_disagree",
                    venue=venue.id,
                    component=comp.name,
                    spread=checked.spread,
                    tolerance=tol,
                    values={q.source: q.value for q in checked.used},
                    independent=len(checked.observations),
                    used=checked.value,
                )
            book.rates.append(
                ComponentRate(
                    venue=venue.id,
                    component=comp.name,
                    value=checked.value,
                    sources=tuple(sorted({q.source for q in checked.used})),
                    observed_at=min(q.observed_at for q in checked.used),
                    notes=tuple(q.note for q in checked.used if q.note),
                    spread=checked.spread,
                    disagree=disagree,
                    change=checked.change,
                    independent=len(checked.observations),
                    lineage=tuple(o.describe() for o in checked.observations),
                    urls=tuple(sorted({f"{q.source}: {q.url}" for q in checked.used if q.url})),
                )
            )
    return book


def collect_sync(
    settings: Settings,
    now: Clock,
    health: SourceHealth | None = None,
    memory: RateMemory | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RateBook:
    """`collect` with its own client, for the CLI and the scheduler's worker threads."""

    async def run() -> RateBook:
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            return await collect(settings, client, now, health, memory)

    return asyncio.run(run())
