"""The service's long-lived parts in one place: store, source health, rate memory, compiled models and the cycle
lock. The daemon keeps one for its lifetime; a CLI command makes one for a single call."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from adapters.base import Clock
from adapters.breaker import SourceHealth
from aggregator.crosscheck import RateMemory
from aggregator.cycle import CycleLock, CycleResult, Trigger, run_cycle
from aggregator.rates import RateBook, collect_sync
from aggregator.settings import Settings
from aggregator.store import Store
from optimizer import ModelCache


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    def __init__(self, settings: Settings, now: Clock = utc_now, store: Store | None = None) -> None:
        self.settings = settings
        self.now = now
        self.store = store or Store(settings.database.url)
        self.memory = RateMemory(previous=self.store.latest_values())
        self.health = SourceHealth()
        self.cache = ModelCache()
        self.lock = CycleLock()
        self._collecting = threading.Lock()  # breakers and rate memory are shared by every job

    def collect(self, trigger: str) -> RateBook:
        """Fetch every source once, cross-check, and store the collection (one transaction)."""
        with self._collecting:
            book = collect_sync(self.settings, self.now, self.health, self.memory)
            self.store.record_rates(book, trigger)
            return book

    def rebalance(self, trigger: Trigger) -> CycleResult:
        """Collect and propose (dry run). Raises NoRatesError when no yield is usable."""
        book = self.collect(trigger)
        return run_cycle(
            self.settings, book, cache=self.cache, trigger=trigger, now=self.now, store=self.store
        )
