"""The service's long-lived parts in one place: store, source health, rate memory and compiled models. The daemon
keeps one for its lifetime; a CLI command makes one for a single call.

Only one rebalance runs at a time across every trigger and process sharing the database: each cycle holds the
`rebalance` lease in the store (expiring after `cycle_timeout_seconds`, or at once if its holder on this host has
died). A cycle that outlives its lease cannot write once another has taken it: its write is fenced by the lease's
epoch (`lease_lost`). Dry run is the default; only `record_cycle(..., apply=True)` changes the book.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import structlog

from aggregator.core.clock import Clock
from aggregator.core.errors import ConfigError, CycleBusyError, LeaseLostError, NoRatesError, StoreError
from aggregator.core.modes import proposal_mode
from aggregator.events.metrics import Metrics
from aggregator.events.notify import Notifier
from aggregator.rates.breaker import SourceHealth
from aggregator.rates.collect import RateBook, collect_sync
from aggregator.rates.crosscheck import RateMemory
from aggregator.service.cycle import CycleResult, Trigger, run_cycle
from aggregator.settings import Settings
from aggregator.settings.notify import NotifySettings
from aggregator.store import Store
from optimizer import InFlight, ModelCache

log = structlog.get_logger(__name__)
LEASE = "rebalance"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    def __init__(
        self,
        settings: Settings,
        now: Clock = utc_now,
        store: Store | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        url = settings.notify.webhook_url
        self.notifier = Notifier(settings.notify) if url else None
        self._retired: list[Notifier] = []  # replaced by a reload, still flushing
        self.now = now
        self.store = store or Store(settings.database.url, settings.database.busy_timeout_seconds, now)
        self.memory = RateMemory(previous=self.store.latest_values())
        self.health = SourceHealth()
        self.cache = ModelCache()
        self._collecting = threading.Lock()  # breakers and rate memory are shared by every job
        self._owner = f"{socket.gethostname()}:{os.getpid()}"

    def close(self, timeout: float | None = None) -> None:
        """Flush the webhook queue before the process ends: queued deliveries are still tried for up to `timeout`
        seconds (`notify.deadline_seconds` by default), then logged as `notify_failed`."""
        for notifier in [*self._retired, *([self.notifier] if self.notifier else [])]:
            notifier.close(timeout)

    def use_notify(self, settings: NotifySettings) -> None:
        """A reloaded `[notify]`: later proposals go to the new webhook (none without a URL). The old notifier
        flushes what it has queued on a thread of its own, so the reload does not wait for a slow receiver."""
        old = self.notifier
        self.notifier = Notifier(settings) if settings.webhook_url else None
        if old is not None:
            self._retired.append(old)
            threading.Thread(target=old.close, name="notify-retire", daemon=True).start()

    def collect(self, trigger: str) -> RateBook:
        """Fetch every source once, cross-check, and store the collection (one transaction)."""
        settings = self.settings
        with self._collecting:
            book = collect_sync(settings, self.now, self.health, self.memory)
            self.store.record_rates(book, trigger)
        if self.metrics:
            self.metrics.observe_book(book)
        return book

    def holdings(self, settings: Settings | None = None) -> dict[str, float]:
        """Settled positions in the store once a plan has been applied (capital in flight is `in_flight()`), else
        the config's holdings. A stored book naming venues the config no longer has is restricted to the known ones
        (`book_venue_unknown`)."""
        settings = settings or self.settings
        stored = self.store.book()
        if stored is None:  # {} is a book whose capital is all in flight
            return dict(settings.portfolio.holdings_eth)
        known, unknown = book_venues(stored, settings)
        if unknown:
            log.warning(
                "book_venue_unknown",
                venues=unknown,
                dropped_eth=round(sum(unknown.values()), 9),
                kept_eth=round(sum(known.values()), 9),
                fix="add these venues back to the config, or apply a plan (rebalance --apply) to rewrite the book",
            )
        if unknown and sum(known.values()) <= 0:
            raise ConfigError(
                f"the stored book holds only venues the config does not have ({sorted(unknown)}); add them back "
                "to [[venues]], or move the database aside to start from [portfolio] holdings_eth"
            )
        return known

    def in_flight(self, settings: Settings | None = None) -> tuple[InFlight, ...]:
        """Capital in exit queues (an applied plan's queued exits not yet due), after landing what is due. An exit
        naming a venue the config no longer has is left out of the plan's inputs and reported
        (`in_flight_venue_unknown`), as the settled book's unknown venues are."""
        settings = settings or self.settings
        for landed in self.store.land_due(self.now()):
            log.info(
                "capital_landed",
                from_venue=landed.from_venue,
                to_venue=landed.to_venue,
                amount_eth=round(landed.amount_eth, 6),
                proposal=landed.proposal_id,
            )
        position = self.store.position()
        now = self.now()
        flights = () if position is None else tuple(p.in_flight(now) for p in position.pending)
        ids = {v.id for v in settings.venues}
        unknown = [f for f in flights if f.from_venue not in ids or f.to_venue not in ids]
        if unknown:
            log.warning(
                "in_flight_venue_unknown",
                exits=[
                    {"from": f.from_venue, "to": f.to_venue, "eth": round(f.amount_eth, 9)} for f in unknown
                ],
                fix="add these venues back to the config until the exits land; the plan leaves them out meanwhile",
            )
        return tuple(f for f in flights if f not in unknown)

    def retry_release(self) -> None:
        """Remove a lease this process left behind when releasing it failed (disk full); quiet until it works."""
        try:
            if self.store.release_stale(LEASE):
                log.info("lease_released", lease=LEASE, reason="a release that failed earlier")
        except StoreError:
            pass

    def rebalance(self, trigger: Trigger, *, apply: bool = False, wait_seconds: float = 0.0) -> CycleResult:
        """Collect, propose and record one cycle under the rebalance lease. Raises CycleBusyError when another
        rebalance holds the lease past `wait_seconds`, NoRatesError when no yield is usable."""
        owner = f"{self._owner}:{uuid.uuid4().hex[:8]}"
        settings = self.settings  # one config for the whole cycle, even if a reload swaps it meanwhile
        ttl = settings.schedule.cycle_timeout_seconds
        deadline = time.monotonic() + wait_seconds
        while (fence := self.store.acquire(LEASE, owner, ttl)) is None:
            if time.monotonic() >= deadline:
                raise CycleBusyError(
                    f"another rebalance is running (schedule, CLI or API); waited {wait_seconds:g}s"
                )
            time.sleep(0.2)
        log.info("cycle_started", trigger=trigger, lease=owner, epoch=fence.epoch)
        try:
            with self._collecting:
                book = collect_sync(settings, self.now, self.health, self.memory)
            if self.metrics:
                self.metrics.observe_book(book)
            run_id = uuid.uuid4().hex[:12]
            try:
                flights = self.in_flight(settings)
                result = run_cycle(
                    settings,
                    book,
                    cache=self.cache,
                    trigger=trigger,
                    now=self.now,
                    store=self.store,
                    holdings=self.holdings(settings),
                    in_flight=flights,
                    run_id=run_id,
                    apply=apply,
                )
            except NoRatesError:
                self.store.record_cycle(book, trigger, run_id, None, apply=False, fence=fence)
                raise
            self.store.record_cycle(
                book,
                trigger,
                run_id,
                result.plan,
                apply=apply,
                initial=dict(settings.portfolio.holdings_eth),
                fence=fence,
            )
            if self.metrics:
                self.metrics.observe_plan(result.plan, apply, time.time())
            if self.notifier:
                plan = result.plan
                self.notifier.send(
                    {
                        "proposal": run_id,
                        "trigger": trigger,
                        "mode": proposal_mode(plan.status, apply),
                        "status": plan.status,
                        "reason": plan.reason,
                        "moves": [m.model_dump() for m in plan.moves],
                        "yield_before": plan.before.net_yield,
                        "yield_after": plan.after.net_yield,
                        "cvar_before": plan.before.cvar,
                        "cvar_after": plan.after.cvar,
                        "gain_bps": plan.gain_bps,
                    }
                )
            if proposal_mode(result.plan.status, apply) == "applied":
                position = self.store.position()
                log.info(
                    "book_updated",
                    run_id=run_id,
                    holdings_eth=result.plan.target_eth,
                    settled_eth=position.settled if position else {},
                    in_flight=[
                        {
                            "from": p.from_venue,
                            "to": p.to_venue,
                            "eth": round(p.amount_eth, 6),
                            "due": p.due.isoformat(),
                        }
                        for p in (position.pending if position else ())
                    ],
                )
            return result
        except LeaseLostError as exc:
            log.error("lease_lost", trigger=trigger, lease=owner, epoch=fence.epoch, error=str(exc))
            raise
        finally:
            log.info("cycle_finished", trigger=trigger, lease=owner)
            try:
                self.store.release(LEASE, owner)
            except StoreError as exc:  # never mask the cycle's own error; the lease expires on its own
                log.error("lease_release_failed", lease=owner, error=str(exc), expires_after_seconds=ttl)


def book_venues(stored: dict[str, float], settings: Settings) -> tuple[dict[str, float], dict[str, float]]:
    """A stored book split into the venues the config knows and those it does not."""
    ids = {v.id for v in settings.venues}
    known = {v: eth for v, eth in stored.items() if v in ids}
    return known, {v: eth for v, eth in stored.items() if v not in ids}
