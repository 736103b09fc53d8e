"""The rebalance cycle as a plain function: rates in, plan out, every proposed move logged.

The scheduler, the CLI and (later) the HTTP API all call `run_cycle`; one lock makes sure only one runs at a time.
Dry-run is the default and the only mode here: nothing outside the log changes.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import structlog

from adapters.base import Clock
from aggregator.crosscheck import smooth
from aggregator.errors import CycleBusyError, NoRatesError
from aggregator.rates import RateBook
from aggregator.settings import Settings
from aggregator.store import Store
from optimizer import ModelCache, OptimizationInputs, Plan, optimize

log = structlog.get_logger(__name__)

Trigger = Literal["schedule", "cli", "api", "start"]


@dataclass(frozen=True)
class CycleResult:
    run_id: str
    trigger: Trigger
    book: RateBook
    plan: Plan


class CycleLock:
    """One rebalance at a time, whoever triggers it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, wait_seconds: float) -> None:
        if not self._lock.acquire(timeout=wait_seconds):
            raise CycleBusyError(f"another rebalance is running; waited {wait_seconds:g}s")

    def release(self) -> None:
        self._lock.release()


def inputs_for(settings: Settings, book: RateBook, store: Store | None = None) -> OptimizationInputs:
    """The optimizer's inputs; with `smoothing_days` the yields are window means from the stored history."""
    yields = book.yields()
    days = settings.rates.smoothing_days
    if days > 0 and store is not None:
        yields = smooth(yields, store.history(book.fetched_at - timedelta(days=days)))
    return OptimizationInputs(
        universe=settings.universe(),
        limits=settings.limits,
        portfolio_eth=settings.portfolio_eth,
        holdings_eth=dict(settings.portfolio.holdings_eth),
        yields=yields,
    )


def run_cycle(
    settings: Settings,
    book: RateBook,
    *,
    cache: ModelCache,
    trigger: Trigger,
    now: Clock,
    store: Store | None = None,
    run_id: str | None = None,
) -> CycleResult:
    """Propose a rebalance from this cycle's rates and log it. Raises NoRatesError when no yield is usable."""
    run_id = run_id or uuid.uuid4().hex[:12]
    with structlog.contextvars.bound_contextvars(run_id=run_id, trigger=trigger):
        started = now()
        if not book.rates:
            log.warning(
                "rebalance_skipped",
                reason="no valid yield this cycle; holding the current allocation",
                failed_sources=sorted(book.failed_sources),
                rejected=len(book.rejected),
            )
            raise NoRatesError("no valid yield from any source this cycle")
        plan = optimize(inputs_for(settings, book, store), cache=cache)
        for move in plan.moves:
            log.info(
                "move_proposed",
                step=move.step,
                action=move.action,
                venue=move.venue,
                from_venue=move.from_venue,
                to_venue=move.to_venue,
                amount_eth=round(move.amount_eth, 6),
                cost_eth=round(move.cost_eth, 6),
                exit_days=move.days,
                dry_run=True,
            )
        for held in plan.held:
            log.info("venue_held", venue=held.venue, weight=round(held.weight, 6), reason=held.reason)
        log.info(
            "rebalance_completed",
            status=plan.status,
            reason=plan.reason,
            dry_run=True,
            moves=len(plan.moves),
            turnover=round(plan.turnover, 6),
            yield_before_pct=round(plan.before.net_yield * 100, 4),
            yield_after_pct=round(plan.after.net_yield * 100, 4),
            cvar_before_pct=round(plan.before.cvar * 100, 4),
            cvar_after_pct=round(plan.after.cvar * 100, 4),
            gain_bps=round(plan.gain_bps, 3),
            binding=[f"{b.limit}:{b.subject}" for b in plan.binding],
            solver=plan.solver.name,
            solve_ms=round(plan.solver.seconds * 1000, 2),
            failed_sources=sorted(book.failed_sources),
            rejected_quotes=len(book.rejected),
            seconds=round((now() - started).total_seconds(), 3),
        )
        return CycleResult(run_id=run_id, trigger=trigger, book=book, plan=plan)
