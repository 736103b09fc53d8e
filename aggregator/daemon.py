"""`aggregator run`: APScheduler pulls rates and proposes on the configured schedule until SIGTERM/SIGINT.

The jobs only call the plain cycle functions; coalesce, one instance per job, misfire grace and UTC as the
scheduler's defaults. A failing cycle is logged and the daemon keeps going.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from adapters.base import Clock
from adapters.breaker import SourceHealth
from aggregator.crosscheck import RateMemory
from aggregator.cycle import CycleLock, Trigger, run_cycle
from aggregator.errors import CycleBusyError, NoRatesError
from aggregator.rates import RateBook, collect_sync
from aggregator.settings import Settings
from optimizer import ModelCache

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """The scheduled service. `run()` blocks until `stop()` (called from the signal handlers)."""

    def __init__(self, settings: Settings, now: Clock = utc_now) -> None:
        self.settings = settings
        self.now = now
        self.cache = ModelCache()
        self.health = SourceHealth()
        self.memory = RateMemory()
        self._collecting = (
            threading.Lock()
        )  # breakers and rate memory are shared by the rates and rebalance jobs
        self.lock = CycleLock()
        self.stopping = threading.Event()
        sched = settings.schedule
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": sched.misfire_grace_seconds,
            },
        )

    def _collect(self) -> RateBook:
        with self._collecting:
            return collect_sync(self.settings, self.now, self.health, self.memory)

    def rates_job(self) -> None:
        try:
            book = self._collect()
        except Exception:  # the daemon outlives any one bad cycle; the traceback is logged
            log.exception("rates_failed")
            return
        log.info(
            "rates_collected",
            components=len(book.rates),
            rejected=len(book.rejected),
            failed_sources=sorted(book.failed_sources),
            missing=[f"{v}.{c}" for v, c in book.missing],
        )

    def rebalance_job(self, trigger: Trigger = "schedule") -> None:
        if self.stopping.is_set():
            return
        try:
            self.lock.acquire(wait_seconds=0)
        except CycleBusyError as exc:
            log.warning("rebalance_refused", trigger=trigger, reason=str(exc))
            return
        try:
            book = self._collect()
            run_cycle(self.settings, book, cache=self.cache, trigger=trigger, now=self.now)
        except NoRatesError:
            pass  # logged by the cycle as rebalance_skipped
        except Exception:  # the daemon outlives any one bad cycle; the traceback is logged
            log.exception("rebalance_failed", trigger=trigger)
        finally:
            self.lock.release()

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self.stopping.is_set():
            log.info("daemon_stopping", signal=signal.Signals(signum).name if signum else None)
        self.stopping.set()

    def run(self) -> int:
        sched = self.settings.schedule
        self.scheduler.add_job(self.rates_job, IntervalTrigger(minutes=sched.rates_every_minutes), id="rates")
        self.scheduler.add_job(
            self.rebalance_job, CronTrigger.from_crontab(sched.rebalance_cron, timezone=UTC), id="rebalance"
        )
        if sched.rebalance_on_start:
            self.scheduler.add_job(self.rebalance_job, args=["start"], id="rebalance-on-start")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        self.scheduler.start()
        log.info(
            "daemon_started",
            venues=len(self.settings.venues),
            sources=sorted(self.settings.sources),
            rates_every_minutes=sched.rates_every_minutes,
            rebalance_cron=sched.rebalance_cron,
            dry_run=True,
        )
        while not self.stopping.wait(timeout=1.0):
            pass
        self.scheduler.shutdown(wait=True)
        log.info("daemon_stopped")
        return 0
