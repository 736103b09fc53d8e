"""The rebalance cycle as a plain function: rates in, plan out, every proposed move logged.

Pure of side effects beyond the log: `aggregator.service` holds the lock around it and records what it returns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from pydantic import ValidationError

from aggregator.core.clock import Clock
from aggregator.core.errors import ConfigError, NoRatesError
from aggregator.rates.collect import RateBook
from aggregator.rates.estimate import decision_yields
from aggregator.settings import Settings
from aggregator.store import Store
from optimizer import InFlight, ModelCache, OptimizationInputs, Plan, Universe
from optimizer.optimize import optimize
from optimizer.structure import Structure

log = structlog.get_logger(__name__)

Trigger = Literal["schedule", "cli", "api", "start"]


@dataclass(frozen=True)
class CycleResult:
    run_id: str
    trigger: Trigger
    book: RateBook
    plan: Plan


def inputs_for(
    settings: Settings,
    book: RateBook,
    store: Store | None = None,
    holdings: dict[str, float] | None = None,
    in_flight: tuple[InFlight, ...] = (),
) -> OptimizationInputs:
    """The optimizer's inputs. Each yield is the robust estimate (`[rates] estimator`) over the stored values of
    the last `window_days` and this cycle's value, counted once. A venue whose yield along its path is stale (no
    fresh quote this cycle: valued at its window's estimate) or rests on fewer than `min_observations` values is
    closed to entries; one with no value at all in the window is held when it was never stored (a new store
    warming up) and exit-only when it was stored before the window while the store kept collecting
    (`expired_components`): counted at 0 for that yield, sold if that is better, never bought. While a venue whose
    component was first stored inside the window waits for its entry gate, open venues that look worse wait too
    (the warm-up rule of `aggregator.rates.estimate`). `holdings` is the settled book in ETH
    (default: the config's); `in_flight` the capital in exit queues (exposed where it left until it lands). With
    `[limits] hold_days` and a store, the applied proposals' moves of the last hold_days before the book's time are
    the holding period (`holding_period`)."""
    held = dict(settings.portfolio.holdings_eth) if holdings is None else holdings
    rule = settings.rates.rule()
    window = {}
    universe = settings.universe()
    latest = book.yields()
    expired: set[tuple[str, str]] = set()
    new: set[tuple[str, str]] = set()
    if rule.window_days > 0 and store is not None:
        since = book.fetched_at - timedelta(days=rule.window_days)
        window = store.window_counts(since, before=book.fetched_at)
        missing = {
            (v.id, c.name)
            for v in universe.venues
            for c in v.components
            if c.name not in latest.get(v.id, {}) and (v.id, c.name) not in window
        }
        expired = expired_components(store, missing, since, book.fetched_at, rule.window_days)
        if rule.min_observations > 1:
            # a component first stored inside the window is warming up (aggregator.rates.estimate: the warm-up rule)
            present = {(v, c) for v, comps in latest.items() for c in comps} | set(window)
            new = present - store.observed_before(since, present)
    seen = decision_yields(universe, latest, window, rule, expired=frozenset(expired), new=frozenset(new))
    if seen.shrunk:
        # what the plan's recorded yields were pulled from: each token's own estimate and the tokens' median
        log.info(
            "estimates_shrunk",
            weight=rule.shrink,
            estimates={
                f"{venue}.{comp}": {"own": own, "median": target, "seen": seen.yields[venue][comp]}
                for (venue, comp), (own, target) in sorted(seen.shrunk.items())
            },
        )
    entries: dict[str, str] = {}
    exits: dict[str, str] = {}
    if settings.limits.hold_days > 0 and store is not None:
        known = {v.id for v in universe.venues}
        entries, exits = holding_period(
            store,
            settings.limits.hold_days,
            book.fetched_at,
            known,
            lookback_days=longest_queue_chain(universe),
        )
    return OptimizationInputs(
        universe=universe,
        limits=settings.limits,
        portfolio_eth=sum(held.values()) + sum(f.amount_eth for f in in_flight),
        holdings_eth=held,
        yields=seen.yields,
        entry_blocked=seen.entry_blocked,
        exit_only=seen.exit_only,
        entry_discount=seen.entry_discount,
        in_flight=in_flight,
        recent_entries=entries,
        recent_exits=exits,
    )


def longest_queue_chain(universe: Universe) -> float:
    """Days of the longest chain of exit queues in the universe (EigenLayer, then Lido: 14 + 5; the ladder's
    `Structure.days_to_eth`): the longest a plan's deposits can wait for its exits."""
    return float(Structure(universe).days_to_eth.max(initial=0.0))


def holding_period(
    store: Store, hold_days: float, now: datetime, known: set[str], *, lookback_days: float = 0.0
) -> tuple[dict[str, str], dict[str, str]]:
    """The holding period at `now` from the applied proposals of the last `hold_days` (dry runs are not trades):
    venue -> when capital last entered it (a deposit), and venue -> when capital last left it (a withdrawal), each
    time as "YYYY-MM-DD HH:MM UTC" (the optimizer's heuristics and entry-blocked reasons quote it). A venue the
    config no longer has is left out (`holding_period_venue_unknown`); what is held is logged (`holding_period`)."""
    latest: dict[tuple[str, str], datetime] = {}
    # a deposit counts from when it is made, after the plan's exits land: look back far enough to see it
    since, lookback = now - timedelta(days=hold_days), timedelta(days=lookback_days)
    for when, action, venue in store.recent_moves(since, lookback=lookback):
        key = (action, venue)
        if key not in latest or when > latest[key]:
            latest[key] = when
    unknown = sorted({venue for _, venue in latest if venue not in known})
    if unknown:
        log.warning(
            "holding_period_venue_unknown",
            venues=unknown,
            effect="left out of the holding period: the config no longer has these venues",
        )

    def listed(action: str) -> dict[str, str]:
        return {
            venue: f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            for (act, venue), when in sorted(latest.items())
            if act == action and venue in known
        }

    entries, exits = listed("deposit"), listed("withdraw")
    if entries or exits:
        log.info(
            "holding_period",
            hold_days=hold_days,
            entries=entries,
            exits=exits,
            effect="a venue entered is not sold below today's weight, one exited is not bought back, "
            "unless the limits cannot be met otherwise",
        )
    return entries, exits


def expired_components(
    store: Store, missing: set[tuple[str, str]], since: datetime, now: datetime, window_days: float
) -> set[tuple[str, str]]:
    """Of the components with no value this cycle nor in the window, those that went stale: the store has stored
    them before the window, and has itself been collecting since the window's first half (so their absence was
    watched, not slept through). A new store, or one back from a stop longer than half a window, is warming up:
    nothing is expired and venues without a value are held, not sold."""
    if not missing:
        return set()
    first = store.first_collection_at(since, before=now)
    if first is None or first > since + timedelta(days=window_days / 2.0):
        return set()
    return store.observed_before(since, missing)


def run_cycle(
    settings: Settings,
    book: RateBook,
    *,
    cache: ModelCache,
    trigger: Trigger,
    now: Clock,
    store: Store | None = None,
    holdings: dict[str, float] | None = None,
    in_flight: tuple[InFlight, ...] = (),
    run_id: str | None = None,
    apply: bool = False,
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
        try:
            inputs = inputs_for(settings, book, store, holdings, in_flight)
        except (
            ValidationError
        ) as exc:  # pydantic's errors stay in the service: the config and the book disagree
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'inputs'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(
                f"the optimizer's inputs built from the config and the stored book do not validate: {problems}"
            ) from exc
        log.debug("optimizer_started", venues=len(inputs.universe.venues), nodes=len(inputs.universe.nodes))
        plan = optimize(inputs, cache=cache)
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
                route=move.route,
                dry_run=not apply,
            )
        for held in plan.held:
            log.info("venue_held", venue=held.venue, weight=round(held.weight, 6), reason=held.reason)
        for blocked in plan.entry_blocked:
            log.info(
                "venue_entry_blocked",
                venue=blocked.venue,
                weight=round(blocked.weight, 6),
                reason=blocked.reason,
            )
        log.info(
            "rebalance_completed",
            status=plan.status,
            reason=plan.reason,
            dry_run=not apply,
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
