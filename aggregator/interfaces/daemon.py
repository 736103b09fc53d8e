"""`aggregator run`: APScheduler pulls rates and proposes on the configured schedule until SIGTERM/SIGINT.

The jobs only call the service (`aggregator.service`); coalesce, one instance per job, misfire grace and UTC are
the scheduler's defaults. A failing cycle is logged and the daemon keeps going.

Stopping: no new cycle starts; a running one has `shutdown_timeout_seconds` to finish. Past that it is abandoned
and the process exits: a cycle writes only in its final transaction, so an abandoned one leaves nothing behind.

Reloading (SIGHUP): the config file is read again. A file that does not load is logged (`config_reload_failed`,
with the error) and the running config stays; so does one that changes what only a restart can change (the
database, the API listener). Otherwise the next cycle uses it (`config_reloaded`); a running cycle finishes on the
config it started with, and the jobs are rescheduled to the new schedule. A changed `[logging]` (level, format)
and `[notify]` (the webhook) are applied at once and listed in the line's `applied`.

Store damage: a job quick-checks the SQLite file and its write-ahead log every `database.integrity_check_minutes`;
damage is logged once (`store_damaged`) and every later write refused. A lease the store failed to release (disk
full) is retried every RETRY_RELEASE_SECONDS, so no other process waits for its expiry.

The main thread never waits on the database: it only handles signals, reloads and the clock. What needs the
database outside the jobs (the release retried, which only happens after a release failed in this process; the
stored book checked after a reload) runs on one background thread, one task at a time (a task due while the
previous one still waits is skipped, never stacked). So a database that stops answering (a network partition:
queries hang, no error comes) delays neither SIGTERM nor SIGHUP. Stopping is bounded by
`shutdown_timeout_seconds` from `daemon_stopping` (plus STOP_GRACE_SECONDS for the leadership's release): whatever
still waits on the database then (a cycle, the leadership's release, a background task, API requests) is logged
as abandoned and the process exits.

Replicas (`[coordination] replica_id`, issue #18): the daemon takes part in leadership (`coordination.leader`):
a thread renews or campaigns every third of `leader_lease_seconds`, logging `leader_elected` and
`leadership_lost`. Only the leader collects rates and rebalances; every replica serves the API and dashboard reads;
a manual rebalance on a follower is refused (409) naming the leader. Interval schedules are aligned to a fixed
origin so that every replica has the same slots; a scheduled cycle carries its slot (one proposal per slot), and
a replica that takes leadership over runs the latest slot at once when it has no proposal yet (and is within
`misfire_grace_seconds`). `/health` and the metrics say who leads.

Clock jumps: the main loop compares the wall clock with the monotonic one; a jump of 30 s or more either way is
logged (`clock_jumped`) and the jobs are rescheduled from the new time.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import structlog
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.coordination.leader import Holder, Leadership
from aggregator.core.clock import Clock
from aggregator.core.errors import (
    ConfigError,
    CycleBusyError,
    LeaseLostError,
    NoRatesError,
    NotLeaderError,
    SlotTakenError,
    StoreError,
)
from aggregator.events.logs import configure_logging
from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.interfaces.api.connections import ConnectionLimits
from aggregator.interfaces.api.guard import check_exposure
from aggregator.service import Service, book_venues, utc_now
from aggregator.service.cycle import Trigger
from aggregator.settings import Settings, load_settings, resolve_host

log = structlog.get_logger(__name__)
CLOCK_JUMP_SECONDS = 30.0  # wall clock against monotonic, per 0.2 s tick of the main loop
RETRY_RELEASE_SECONDS = 5.0  # how often a lease release that failed is retried (on the background thread)
# At exit, the leadership's release may take this long even past shutdown_timeout_seconds; in-flight API requests
# may finish for API_STOP_SECONDS (never past the shutdown deadline).
STOP_GRACE_SECONDS = 2.0
API_STOP_SECONDS = 10.0
SLOT_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # replicas' interval schedules count their slots from here


class Background:
    """One task at a time on a daemon thread of its own, off the main loop: `submit` refuses (False) while the
    previous task still runs, so tasks waiting on a database that does not answer never stack up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._what = ""

    def submit(self, what: str, task: Callable[[], None]) -> bool:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._what = what
            self._thread = threading.Thread(
                target=self._run, args=(what, task), name="daemon-db", daemon=True
            )
            self._thread.start()
        return True

    def running(self) -> str | None:
        """What the task still running is doing, or None."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            return self._what if alive else None

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the running task; True when none runs any more."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, timeout))
        return thread is None or not thread.is_alive()

    @staticmethod
    def _run(what: str, task: Callable[[], None]) -> None:
        try:
            task()
        except Exception:  # the daemon outlives any one failed task; the traceback is logged
            log.exception("background_task_failed", task=what)


class Daemon:
    """The scheduled service. `run()` blocks until `stop()` (called from the signal handlers)."""

    def __init__(
        self,
        settings: Settings,
        now: Clock = utc_now,
        config_path: Path | None = None,
        log_stream: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.log_stream = log_stream or sys.stdout  # where a reloaded [logging] writes
        self.now = now
        self.config_path = config_path
        self.reload_requested = threading.Event()
        api = settings.api
        if api.enabled:
            check_exposure(
                api.host, api.token
            )  # before anything starts: no token, no listening beyond loopback
        self.metrics = Metrics()
        self.service = Service(settings, now, metrics=self.metrics)
        coord = settings.coordination
        self.leadership = (
            Leadership(
                self.service.store,
                f"{socket.gethostname()}:{os.getpid()}:{coord.replica_id}",
                coord.leader_lease_seconds,
            )
            if coord.replica_id is not None
            else None
        )
        self.service.leadership = self.leadership
        self.leader_seen: Holder | None = None  # the leader as read at the last tick
        self._lead_stop = threading.Event()
        self.api = (
            ApiServer(
                create_app(
                    self.service,
                    self.metrics,
                    api.token,
                    max_body_bytes=api.max_body_bytes,
                    body_timeout_seconds=api.body_timeout_seconds,
                    health_max_age_seconds=settings.health_max_age_seconds,
                    leadership=self.who_leads if self.leadership else None,
                ),
                api.host,
                api.port,
                api.threads,
                ConnectionLimits(api.max_connections, api.header_timeout_seconds, api.keep_alive_seconds),
            )
            if api.enabled
            else None
        )
        self.stopping = threading.Event()
        self.stop_signal: str | None = None
        self.background = Background()  # what needs the database outside the jobs: never on the main thread
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": settings.schedule.misfire_grace_seconds,
            },
        )

    def following(self) -> bool:
        """True on a replica that does not lead now (its schedule runs nothing)."""
        return self.leadership is not None and not self.leadership.leading

    def who_leads(self) -> dict[str, Any]:
        """`/health`'s leadership fields: this replica's id and role, and the leader it last saw."""
        assert self.leadership is not None
        seen = self.leader_seen
        return {
            "replica": self.settings.coordination.replica_id,
            "role": "leader" if self.leadership.leading else "follower",
            "leader": seen.replica if seen is not None else None,
        }

    def lead(self, ticked: threading.Event | None = None) -> None:
        """The leadership thread: tick at once (then set `ticked`), and every third of the lease until the daemon
        has drained its cycles. A replica that takes leadership over catches up the latest slot (`catch_up`)."""
        assert self.leadership is not None
        try:
            self._tick()
        finally:
            if ticked is not None:
                ticked.set()
        period = self.leadership.ttl_seconds / 3.0
        while not self._lead_stop.wait(timeout=period):
            was = self.leadership.leading
            self._tick()
            if self.leadership.leading and not was and not self.stopping.is_set():
                self.catch_up()

    def watch_lease(self) -> None:
        """Drop leadership once its lease may have expired, even while the leadership thread's renewal hangs on a
        database that does not answer (a network partition): this thread never touches the database."""
        assert self.leadership is not None
        period = min(0.2, self.leadership.ttl_seconds / 10.0)
        while not self._lead_stop.wait(timeout=period):
            self.leadership.expire()

    def _tick(self) -> None:
        assert self.leadership is not None
        self.leadership.tick()
        try:
            self.leader_seen = self.leadership.holder()
        except StoreError:
            self.leader_seen = None
        seen = self.leader_seen
        self.metrics.observe_leadership(
            self.settings.coordination.replica_id or "",
            self.leadership.leading,
            seen.replica if seen else None,
            seen.epoch if seen else None,
        )

    def catch_up(self) -> None:
        """Run the latest scheduled slot now when it is within `misfire_grace_seconds` (the cycle skips a slot
        that already has its proposal, e.g. written by the previous leader before it died)."""
        slot = self.slot()
        grace = self.settings.schedule.misfire_grace_seconds
        if slot is None or (self.now() - slot).total_seconds() > grace:
            return
        log.info("slot_catch_up", slot=slot.isoformat(), replica=self.settings.coordination.replica_id)
        self.scheduler.add_job(
            self.rebalance_job, args=["schedule", slot], id="rebalance-takeover", replace_existing=True
        )

    def slot(self, at: datetime | None = None) -> datetime | None:
        """The scheduled slot a run at `at` (default: now) belongs to: the latest fire time of the rebalance
        schedule at or before it (intervals counted from SLOT_ORIGIN, as `_schedule` aligns them)."""
        at = at or self.now()
        sched = self.settings.schedule
        if sched.rebalance_every_minutes is not None:
            step = timedelta(minutes=sched.rebalance_every_minutes)
            return SLOT_ORIGIN + step * ((at - SLOT_ORIGIN) // step)
        trigger = CronTrigger.from_crontab(sched.rebalance_cron, timezone=UTC)
        fire = trigger.get_next_fire_time(None, at - timedelta(seconds=sched.longest_gap_seconds() + 1))
        found = None
        for _ in range(100_000):  # bounded: fire times between one gap ago and now
            if fire is None or fire > at:
                break
            found = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
        return found

    def rates_job(self) -> None:
        if self.following():
            return  # only the leader collects on the schedule
        try:
            book = self.service.collect("rates")
        except (LeaseLostError, NotLeaderError):
            return  # a stale leader's collection is fenced (`leadership_fenced`), or leadership moved meanwhile
        except StoreError as exc:
            log.error("rates_failed", error=str(exc))
            return
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

    def rebalance_job(self, trigger: Trigger = "schedule", slot: datetime | None = None) -> None:
        if self.stopping.is_set() or self.following():
            return  # a follower schedules nothing; the leader runs this slot
        if self.leadership is not None and trigger == "schedule" and slot is None:
            slot = self.slot()
        try:
            self.service.rebalance(trigger, slot=slot)
        except LeaseLostError:
            pass  # logged by the service as lease_lost or leadership_fenced; nothing was written
        except NotLeaderError as exc:  # leadership lost between the check above and the cycle
            log.info("rebalance_not_leader", trigger=trigger, reason=str(exc))
        except SlotTakenError as exc:
            log.info("cycle_skipped", trigger=trigger, reason=str(exc))
        except CycleBusyError as exc:
            log.warning("rebalance_refused", trigger=trigger, reason=str(exc))
        except NoRatesError:
            pass  # logged by the cycle as rebalance_skipped
        except (StoreError, ConfigError) as exc:  # the message names the problem and the fix: no traceback
            log.error("rebalance_failed", trigger=trigger, error=str(exc))
        except Exception:  # the daemon outlives any one bad cycle; the traceback is logged
            log.exception("rebalance_failed", trigger=trigger)

    def integrity_job(self) -> None:
        """Quick-check the store (logged once as `store_damaged` when it fails; writes are refused from then on)."""
        try:
            self.service.store.check_integrity()
        except StoreError as exc:
            log.error("integrity_check_failed", error=str(exc))

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Signal handler: only sets flags. The main loop logs `daemon_stopping`: logging here could deadlock on
        the log's write lock when the signal lands while the main thread is writing a line."""
        if not self.stopping.is_set():
            self.stop_signal = signal.Signals(signum).name if signum else None
        self.stopping.set()

    def request_reload(self, _signum: int | None = None, _frame: FrameType | None = None) -> None:
        self.reload_requested.set()  # the main loop reloads: no file I/O or logging inside a signal handler

    def reload(self) -> bool:
        """Read the config file again and use it from the next cycle; on any problem keep the running one."""
        self.reload_requested.clear()
        if self.config_path is None:
            log.warning("config_reload_failed", error="no config file to reload (started without --config)")
            return False
        try:
            new = load_settings(self.config_path)
        except ConfigError as exc:
            log.error(
                "config_reload_failed", path=str(self.config_path), error=str(exc), kept="running config"
            )
            return False
        except Exception as exc:
            log.error(
                "config_reload_failed",
                path=str(self.config_path),
                error=f"{type(exc).__name__}: {exc}",
                kept="running config",
            )
            return False
        fixed = [
            name
            for name in ("database", "api")
            if getattr(new, name).model_dump() != getattr(self.settings, name).model_dump()
        ]
        if fixed:
            log.error(
                "config_reload_failed",
                path=str(self.config_path),
                error=f"[{'], ['.join(fixed)}] changed: only a restart applies them",
                kept="running config",
            )
            return False
        old = self.settings
        self.settings = new
        self.service.settings = new
        if new.schedule != old.schedule:
            self._schedule(start=False)
        applied = [name for name in ("logging", "notify") if getattr(new, name) != getattr(old, name)]
        if "notify" in applied:
            self.service.use_notify(new.notify)
        log.info(
            "config_reloaded",
            path=str(self.config_path),
            venues=len(new.venues),
            sources=sorted(new.sources),
            applied=applied,  # sections applied besides what every cycle reads anew
        )
        if "logging" in applied:  # after the line above, which is written as the old [logging] said
            configure_logging(new.logging.level, new.logging.format, self.log_stream)
        if not self.background.submit(
            "checking the stored book against the reloaded config", lambda: self._check_book(new)
        ):
            log.warning(
                "book_check_skipped",
                path=str(self.config_path),
                reason=f"the daemon's previous database task ({self.background.running()}) is still waiting on the "
                "database",
            )
        return True

    def _check_book(self, settings: Settings) -> None:
        """Report a stored book naming venues this config does not have (the next cycle drops them)."""
        try:
            stored = self.service.store.book() or {}
        except StoreError:
            return
        _, unknown = book_venues(stored, settings)
        if unknown:
            log.warning(
                "book_venue_unknown",
                venues=unknown,
                path=str(self.config_path),
                action="the next cycle starts from the book without these venues",
                fix="add these venues back to the config, or apply a plan (rebalance --apply) to rewrite the book",
            )

    def _schedule(self, *, start: bool) -> None:
        sched = self.settings.schedule
        self.scheduler.add_job(
            self.rates_job,
            IntervalTrigger(minutes=sched.rates_every_minutes),
            id="rates",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.rebalance_job,
            CronTrigger.from_crontab(sched.rebalance_cron, timezone=UTC)
            if sched.rebalance_every_minutes is None
            else IntervalTrigger(
                minutes=sched.rebalance_every_minutes,
                start_date=SLOT_ORIGIN if self.leadership else None,  # replicas share their slots
            ),
            id="rebalance",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.integrity_job,
            IntervalTrigger(minutes=self.settings.database.integrity_check_minutes),
            id="integrity",
            replace_existing=True,
        )
        if start and sched.rebalance_on_start:
            self.scheduler.add_job(self.rebalance_job, args=["start"], id="rebalance-on-start")

    def run(self) -> int:
        sched = self.settings.schedule
        self._schedule(start=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        if self.leadership is not None:
            ticked = threading.Event()
            threading.Thread(target=self.lead, args=(ticked,), name="leadership", daemon=True).start()
            threading.Thread(target=self.watch_lease, name="leadership-watchdog", daemon=True).start()
            # The first tick before the first job, so the first replica up leads from the start; on the leadership
            # thread, so a database that does not answer delays neither the signals nor the start past one lease.
            start_by = time.monotonic() + self.leadership.ttl_seconds
            while not ticked.wait(0.2) and not self.stopping.is_set() and time.monotonic() < start_by:
                if self.reload_requested.is_set():
                    self.reload()
        if self.api:
            self._start_api()
        self.scheduler.add_listener(self._not_run, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        log.info(
            "daemon_started",
            venues=len(self.settings.venues),
            sources=sorted(self.settings.sources),
            rates_every_minutes=sched.rates_every_minutes,
            rebalance_cron=sched.rebalance_cron if sched.rebalance_every_minutes is None else None,
            rebalance_every_minutes=sched.rebalance_every_minutes,
            dry_run=True,
            **(
                {"replica": self.settings.coordination.replica_id, "leading": self.leadership.leading}
                if self.leadership
                else {}
            ),
        )
        clock = (self.now(), time.monotonic())
        retry_at = time.monotonic() + RETRY_RELEASE_SECONDS
        while not self.stopping.wait(timeout=0.2):
            if self.reload_requested.is_set():
                self.reload()
            clock = self._watch_clock(*clock)
            if time.monotonic() >= retry_at:
                # only after a release failed in this process: a healthy daemon never touches the database here
                if self.service.release_pending:
                    self.background.submit("retrying a lease release that failed", self.service.retry_release)
                retry_at = time.monotonic() + RETRY_RELEASE_SECONDS
        log.info("daemon_stopping", signal=self.stop_signal)
        timeout = self.settings.schedule.shutdown_timeout_seconds
        stop_by = time.monotonic() + timeout
        self.scheduler.pause()
        # False once anything was abandoned: its thread may still wait on the database, so the process exits hard
        complete = True
        if self.api:  # no new requests; uvicorn lets in-flight ones finish, within the deadline
            waited = min(API_STOP_SECONDS, _left(stop_by))
            complete = self.api.stop(timeout=waited)
            if not complete:
                log.warning(
                    "api_requests_abandoned", reason=f"still running {waited:.1f}s after the stop signal"
                )
        if not self._drain(max(_left(stop_by), 0.2)):  # a moment at least, for an idle scheduler to shut down
            complete = False
            log.warning(
                "cycle_abandoned",
                reason=f"still running after shutdown_timeout_seconds={timeout:g}; its writes were never committed",
            )
        complete = self._resign(max(_left(stop_by), STOP_GRACE_SECONDS)) and complete
        task = self.background.running()
        if task is not None and not self.background.wait(_left(stop_by)):
            complete = False
            log.warning(
                "database_task_abandoned",
                task=task,
                reason=f"the database did not answer within shutdown_timeout_seconds={timeout:g}",
            )
        self.service.close()  # queued webhooks: bounded by notify.deadline_seconds
        log.info("daemon_stopped")
        if not complete:
            sys.stdout.flush()
            os._exit(
                0
            )  # worker threads cannot be interrupted; the uncommitted transaction dies with the process
        return 0

    def _resign(self, timeout: float) -> bool:
        """Stop ticking and hand leadership over at once (a follower need not wait for the lease's expiry). The
        release runs on a thread of its own, given `timeout` seconds: past that (a database that does not
        answer) it is abandoned, logged, and the lease expires on its own; False then."""
        self._lead_stop.set()
        leadership = self.leadership
        if leadership is None:
            return True

        def resign() -> None:
            try:
                leadership.resign()
            except StoreError as exc:
                log.warning(
                    "leadership_resign_failed", error=str(exc), expires_after_seconds=leadership.ttl_seconds
                )

        thread = threading.Thread(target=resign, name="leadership-resign", daemon=True)
        thread.start()
        thread.join(timeout)
        if not thread.is_alive():
            return True
        log.warning(
            "leadership_resign_abandoned",
            replica=self.settings.coordination.replica_id,
            reason=f"the database did not answer within {timeout:g}s",
            expires_after_seconds=leadership.ttl_seconds,
        )
        return False

    def _start_api(self) -> None:
        """Listen, or stop with a ConfigError (exit 3) naming the setting: a host that does not resolve, a port in
        use or not ours to bind."""
        assert self.api is not None
        api = self.settings.api
        resolve_host("api.host", api.host)
        try:
            self.api.start()
        except RuntimeError as exc:
            raise ConfigError(
                f"api.host = {api.host!r}, api.port = {api.port}: the HTTP API cannot listen there (the port is in "
                "use by another process, or not allowed for this user); stop the other process, choose another "
                "api.port, or set api.enabled = false"
            ) from exc

    def _watch_clock(self, wall: datetime, mono: float) -> tuple[datetime, float]:
        """Reschedule when the wall clock jumps (an NTP step, a VM resumed, the date set by hand): the scheduler
        computes its next runs on the wall clock, so a clock set back an hour would otherwise stay silent an hour."""
        now, now_mono = self.now(), time.monotonic()
        jump = (now - wall).total_seconds() - (now_mono - mono)
        if abs(jump) >= CLOCK_JUMP_SECONDS:
            log.warning("clock_jumped", seconds=round(jump, 1), action="jobs rescheduled from the new time")
            self._schedule(start=False)
        return now, now_mono

    def _not_run(self, event: JobEvent) -> None:
        """A scheduled run that did not happen is logged with its reason: no cycle is lost silently."""
        if isinstance(event, JobSubmissionEvent):  # EVENT_JOB_MAX_INSTANCES
            times, reason = event.scheduled_run_times, "the previous run of this job is still going"
        else:
            times = [event.scheduled_run_time]
            reason = (
                f"started more than misfire_grace_seconds={self.settings.schedule.misfire_grace_seconds} "
                "late (process suspended, clock jumped or the machine overloaded)"
            )
        for t in times:
            log.warning("cycle_missed", job=event.job_id, scheduled_at=t.isoformat(), reason=reason)

    def _drain(self, timeout: float) -> bool:
        """Shut the scheduler down, waiting up to `timeout` for running jobs; False if they are still running."""
        closer = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        closer.start()
        closer.join(timeout)
        return not closer.is_alive()


def _left(deadline: float) -> float:
    """Seconds until the monotonic `deadline` (0 once it passed)."""
    return max(0.0, deadline - time.monotonic())
