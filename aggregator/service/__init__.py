"""The service's long-lived parts in one place: store, source health, rate memory and compiled models. The daemon
keeps one for its lifetime; a CLI command makes one for a single call.

Only one rebalance runs at a time across every trigger and process sharing the database: each cycle holds the
`rebalance` lease in the store (expiring after `cycle_timeout_seconds`, or at once if its holder on this host has
died). A cycle that outlives its lease cannot write once another has taken it: its write is fenced by the lease's
epoch (`lease_lost`). Dry run is the default; only `record_cycle(..., apply=True)` changes the book.

Replicas (`[coordination] replica_id`, issue #18): the daemon gives the service its `Leadership`. Every rebalance
then needs leadership (a follower refuses with NotLeaderError naming the leader), takes the rebalance lease from
any other process, and its write is fenced by the leader lease's epoch as well (`leadership_fenced`). A scheduled
cycle carries its slot: its proposal id is derived from the slot, so the database's primary key admits at most
one proposal per slot, and a slot already proposed is skipped (SlotTakenError).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Literal

import structlog

from aggregator.coordination import Fence, Fences, Leases
from aggregator.coordination.leader import Leadership
from aggregator.core.clock import Clock
from aggregator.core.errors import (
    ConfigError,
    CycleBusyError,
    LeadershipLostError,
    LeaseLostError,
    NoRatesError,
    NotLeaderError,
    SlotTakenError,
    SourceError,
    StoreError,
)
from aggregator.core.modes import proposal_mode
from aggregator.events.alerts import Alerter, drift_conditions, source_conditions
from aggregator.events.budgets import breaches
from aggregator.events.metrics import Metrics
from aggregator.events.notify import Notifier, ProposalEvent
from aggregator.rates.breaker import SourceHealth
from aggregator.rates.collect import RateBook, collect_sync
from aggregator.rates.crosscheck import RateMemory
from aggregator.service.chain import COVERED, read_book
from aggregator.service.cycle import CycleResult, Trigger, run_cycle
from aggregator.service.reconcile import reconcile
from aggregator.service.redate import redated
from aggregator.settings import Settings
from aggregator.settings.notify import NotifySettings
from aggregator.store import Store
from aggregator.store.ledger import ancestors
from execution.timeline import Timeline, plan_timeline
from optimizer import InFlight, ModelCache, Plan

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
        self.alerter = Alerter(settings.alerts) if settings.alerts.urls else None
        self.now = now
        db = settings.database
        self.store = store or Store(db.url, db.busy_timeout_seconds, now, owner=db.owner, adopt=db.adopt)
        self.leases = Leases(self.store)
        self.memory = RateMemory(previous=self.store.latest_values())
        self.health = SourceHealth()
        self.cache = ModelCache()
        self.last_book: RateBook | None = (
            None  # this process's latest collection (lineage the store does not keep)
        )
        self._collecting = threading.Lock()  # breakers and rate memory are shared by every job
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self.leadership: Leadership | None = None  # set by a daemon that is one of several replicas
        self._release_failed = threading.Event()  # a lease release failed: `retry_release` has work
        self._release_lock = threading.Lock()

    def not_leader(self) -> str:
        """Why this replica refuses a rebalance: it follows, and who leads (or that nobody does yet)."""
        assert self.leadership is not None
        me = self.leadership.replica
        try:
            holder = self.leadership.holder()
        except StoreError as exc:
            return f"this replica ({me}) is not the leader, and the leader lease cannot be read: {exc}"
        if holder is None:
            return (
                f"this replica ({me}) is not the leader and no replica leads right now; one is elected within "
                f"coordination.leader_lease_seconds={self.leadership.ttl_seconds:g}: retry then"
            )
        return (
            f"this replica ({me}) is not the leader; the leader is replica {holder.replica!r} ({holder.owner}, "
            f"epoch {holder.epoch}): send the rebalance to the leader's API"
        )

    def close(self, timeout: float | None = None) -> None:
        """Flush the webhook queue before the process ends: queued deliveries are still tried for up to `timeout`
        seconds (`notify.deadline_seconds` by default), then logged as `notify_failed`."""
        for notifier in [*self._retired, *([self.notifier] if self.notifier else [])]:
            notifier.close(timeout)
        if self.alerter:
            self.alerter.close(timeout)

    def use_notify(self, settings: NotifySettings) -> None:
        """A reloaded `[notify]`: later proposals go to the new webhook (none without a URL). The old notifier
        flushes what it has queued on a thread of its own, so the reload does not wait for a slow receiver."""
        old = self.notifier
        self.notifier = Notifier(settings) if settings.webhook_url else None
        if old is not None:
            self._retired.append(old)
            threading.Thread(target=old.close, name="notify-retire", daemon=True).start()

    def _alert_sources(self, book: RateBook) -> None:
        if self.alerter:
            self.alerter.update("sources", source_conditions(book, self.health))

    def _alert_cycle(
        self, run_id: str, trigger: str, mode: str, plan: Plan | None, failed: str | None
    ) -> None:
        """A message for the proposal, the budgets the current book breaks, and whether the cycle failed."""
        if self.alerter is None:
            return
        if plan is not None:
            names = {v.id: v.name or v.id for v in self.settings.venues}
            self.alerter.proposal(run_id, trigger, mode, plan, names)
            self.alerter.update("limits", breaches(plan))
            if plan.diagnosis or (plan.hold is not None and plan.hold.is_problem):
                failed = f"proposal {run_id} holds because of a problem: {plan.reason}"
        self.alerter.update("cycle", {"cycle:failed": failed} if failed else {})

    def collect(self, trigger: str) -> RateBook:
        """Fetch every source once, cross-check, and store the collection (one transaction)."""
        settings = self.settings
        leader = None if self.leadership is None else self.leadership.fence
        if self.leadership is not None:
            if leader is None:
                raise NotLeaderError(self.not_leader())
            log.info(
                "rates_started", trigger=trigger, replica=self.leadership.replica, leader_epoch=leader.epoch
            )
        with self._collecting:
            book = collect_sync(settings, self.now, self.health, self.memory)
            try:
                self.store.record_rates(book, trigger, fence=leader)
            except LeadershipLostError as exc:  # a stale leader (paused, partitioned) wrote nothing
                log.error(
                    "leadership_fenced",
                    trigger=trigger,
                    stage="rates",
                    replica=self.leadership.replica if self.leadership else None,
                    epoch=leader.epoch if leader else None,
                    error=str(exc),
                )
                raise
        self.last_book = book
        self._alert_sources(book)
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

    def chain_position(
        self, settings: Settings, expected: dict[str, float], expected_flights: tuple[InFlight, ...]
    ) -> tuple[dict[str, float], tuple[InFlight, ...]] | None:
        """The book read on chain at one block when [portfolio] address and rpc_url are set (None otherwise), with
        `book_drift` logged where it differs from the book the service expected. Venues the chain reader does not
        cover keep their expected amount. The expected book's deposits waiting for their exits (and exits claimed
        whose proceeds such a deposit spends) are settled on chain: they are not drift, and the optimizer is given
        them in flight to their venue, out of the chain's settled amount where they wait (`reconcile`); a request is
        given the destination the store has for it. What the chain does not hold of them is drift
        (`waiting_unfunded_eth`). A failed read is logged (`chain_book_unavailable`) and the expected book is used:
        a plan is never made from a half-read book."""
        portfolio = settings.portfolio
        if portfolio.address is None or portfolio.rpc_url is None:
            return None
        try:
            book = read_book(portfolio.rpc_url, portfolio.address)
        except SourceError as exc:
            log.error("chain_book_unavailable", error=str(exc), using="the expected book (store or config)")
            return None
        read, unknown = book_venues(book.holdings_eth(), settings)
        if unknown:
            log.warning("book_venue_unknown", venues=unknown, source=f"chain at block {book.block}")
        queue_days = _queue_days(settings, "lido-steth")
        now = self.now().timestamp()
        chain_flights = tuple(
            InFlight(
                from_venue=p.from_venue,
                to_venue=p.to_venue,
                amount_eth=p.eth,
                days_left=0.0
                if p.finalized
                else p.days_left
                if p.days_left is not None
                else max(0.0, queue_days - (now - (p.requested_at or now)) / 86_400),
            )
            for p in book.pending
            if p.eth > 0
        )
        # The store's deposits waiting for the plan's exits, and its exits already claimed but spent by such a
        # deposit, are settled capital on chain; the optimizer still sees them in flight where the store heads them
        # (`aggregator.service.reconcile`), so it does not issue them again.
        ids = {v.id for v in settings.venues}
        match = reconcile(
            {v.id: v.parent for v in settings.venues},
            expected,
            expected_flights,
            read,
            chain_flights,
            covered=frozenset(v for v in COVERED if v in ids),
        )
        expected, holdings = match.expected, match.chain
        drift = {
            v: {"expected": round(expected.get(v, 0.0), 6), "chain": round(holdings.get(v, 0.0), 6)}
            for v in sorted(set(expected) | set(holdings))
            if abs(expected.get(v, 0.0) - holdings.get(v, 0.0)) > DRIFT_ETH
        }
        expected_flight = sum(f.amount_eth for f in match.expected_flights)
        chain_flight = sum(f.amount_eth for f in chain_flights)
        unfunded = {v: round(eth, 6) for v, eth in match.unfunded.items() if eth > DRIFT_ETH}
        if drift or unfunded or abs(expected_flight - chain_flight) > DRIFT_ETH:
            log.warning(
                "book_drift",
                block=book.block,
                venues=drift,
                in_flight_expected_eth=round(expected_flight, 6),
                in_flight_chain_eth=round(chain_flight, 6),
                **({"waiting_unfunded_eth": unfunded} if unfunded else {}),
                using="chain",
            )
        if self.alerter:  # told once while the drift lasts, "resolved" once the chain agrees again
            self.alerter.update("book", drift_conditions(book.block, drift, expected_flight, chain_flight))
        return match.holdings, match.flights

    def book_report(self) -> dict[str, object]:
        """The current book for `aggregator book` and GET /api/v1/book: read on chain when [portfolio] address and
        rpc_url are set, else the applied plans' book in the store, else the config's holdings; with its source.
        A failed chain read raises SourceError (nothing half-read is shown)."""
        portfolio = self.settings.portfolio
        if portfolio.address is not None and portfolio.rpc_url is not None:
            return read_book(portfolio.rpc_url, portfolio.address).as_dict()
        stored = self.store.book()
        if stored is not None:
            position = self.store.position()
            pending = position.pending if position is not None else ()
            return {
                "source": "applied plan (store)",
                "holdings_eth": stored,
                "in_flight": [
                    {
                        "from_venue": p.from_venue,
                        "to_venue": p.to_venue,
                        "eth": p.amount_eth,
                        "due": p.due.isoformat(),
                        "kind": flight_kind(self.settings, p.from_venue, p.to_venue),
                    }
                    for p in pending
                ],
            }
        return {"source": "config", "holdings_eth": dict(portfolio.holdings_eth), "in_flight": []}

    def proposal_timeline(self, proposal_id: str, plan: Plan, created_at: datetime) -> Timeline:
        """A stored proposal's timeline from the day it was made, its waiting deposits on the day the store's book
        makes them now: a later applied plan's exit may have re-dated them (`aggregator.service.redate`); the
        timeline then says by whom. The CLI's `show`, the API's proposal and its Safe batches, and the dashboard
        read a stored proposal's timeline here."""
        start = created_at.date()
        return plan_timeline(plan, start, redated(self.store.position(), proposal_id, plan, start))

    @property
    def release_pending(self) -> bool:
        """True while a lease release of this process failed and has not been retried with success."""
        return self._release_failed.is_set()

    def retry_release(self) -> None:
        """Remove a lease this process left behind when releasing it failed (disk full); quiet until it works.
        Touches the database only after such a failure (`release_pending`): a healthy process never does."""
        with self._release_lock:  # cleared before the attempt: a release failing meanwhile sets it again
            if not self._release_failed.is_set():
                return
            self._release_failed.clear()
        try:
            if self.leases.release_stale(LEASE):
                log.info("lease_released", lease=LEASE, reason="a release that failed earlier")
        except StoreError:
            self._release_failed.set()

    def refuse_if_led(self) -> None:
        """A manual rebalance from outside the replicas (the CLI) on a config with `[coordination]`: refused with
        NotLeaderError naming the leader while one leads, so that it never races the leader's schedule."""
        coord = self.settings.coordination
        if coord.replica_id is None:
            return
        holder = Leadership(self.store, f"{self._owner}:cli", coord.leader_lease_seconds).holder()
        if holder is not None:
            raise NotLeaderError(
                f"replica {holder.replica!r} ({holder.owner}, epoch {holder.epoch}) leads the replicas on this "
                "database, and only the leader rebalances: send POST /api/v1/rebalance to the leader's API"
            )

    def rebalance(
        self,
        trigger: Trigger,
        *,
        apply: bool = False,
        wait_seconds: float = 0.0,
        slot: datetime | None = None,
    ) -> CycleResult:
        """Collect, propose and record one cycle under the rebalance lease. Raises CycleBusyError when another
        rebalance holds the lease past `wait_seconds`, NoRatesError when no yield is usable. Among replicas:
        NotLeaderError on a follower, SlotTakenError when `slot` (a scheduled run's time) already has its
        proposal."""
        leader: Fence | None = None
        if self.leadership is not None:
            leader = self.leadership.fence
            if leader is None:
                raise NotLeaderError(self.not_leader())
        owner = f"{self._owner}:{uuid.uuid4().hex[:8]}"
        settings = self.settings  # one config for the whole cycle, even if a reload swaps it meanwhile
        ttl = settings.schedule.cycle_timeout_seconds
        deadline = time.monotonic() + wait_seconds
        try:
            while (fence := self.leases.acquire(LEASE, owner, ttl, leader=leader)) is None:
                if time.monotonic() >= deadline:
                    raise CycleBusyError(
                        f"another rebalance is running (schedule, CLI or API); waited {wait_seconds:g}s"
                    )
                time.sleep(0.2)
        except LeadershipLostError as exc:  # a stale leader takes no lease (and so fences no live cycle)
            log.error(
                "leadership_fenced",
                trigger=trigger,
                stage="lease",
                replica=self.leadership.replica if self.leadership else None,
                epoch=leader.epoch if leader else None,
                error=str(exc),
            )
            raise
        run_id = slot_run_id(slot) if slot is not None else uuid.uuid4().hex[:12]
        fenced = fence if leader is None else Fences((leader, fence))
        try:
            if slot is not None and self.store.proposal_ids(run_id, 1):
                raise SlotTakenError(
                    f"the scheduled slot {slot.isoformat()} already has its proposal {run_id}: at most one "
                    "proposal per slot"
                )
        except (SlotTakenError, StoreError):
            self.leases.release(LEASE, owner)
            raise
        log.info(
            "cycle_started",
            trigger=trigger,
            run_id=run_id,
            lease=owner,
            epoch=fence.epoch,
            **({"leader_epoch": leader.epoch, "slot": slot.isoformat() if slot else None} if leader else {}),
        )
        try:
            with self._collecting:
                book = collect_sync(settings, self.now, self.health, self.memory)
            self.last_book = book
            self._alert_sources(book)
            if self.metrics:
                self.metrics.observe_book(book)
            try:
                flights = self.in_flight(settings)
                holdings = self.holdings(settings)
                chain = self.chain_position(settings, holdings, flights)
                if chain is not None:
                    holdings, flights = chain
                result = run_cycle(
                    settings,
                    book,
                    cache=self.cache,
                    trigger=trigger,
                    now=self.now,
                    store=self.store,
                    holdings=holdings,
                    in_flight=flights,
                    run_id=run_id,
                    apply=apply,
                )
            except NoRatesError as exc:
                self.store.record_cycle(book, trigger, run_id, None, apply=False, fence=fenced)
                self._alert_cycle(
                    run_id, trigger, "dry_run", None, f"cycle {run_id} ({trigger}) failed: {exc}"
                )
                raise
            self.store.record_cycle(
                book,
                trigger,
                run_id,
                result.plan,
                apply=apply,
                initial=dict(settings.portfolio.holdings_eth),
                fence=fenced,
            )
            if self.metrics:
                self.metrics.observe_plan(result.plan, apply, time.time())
            mode = "applied" if apply and result.plan.status == "rebalance" else "dry_run"
            self._alert_cycle(run_id, trigger, mode, result.plan, None)
            if self.notifier:
                self.notifier.send(ProposalEvent.of(run_id, trigger, result.plan, apply))
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
        except LeadershipLostError as exc:
            log.error(
                "leadership_fenced",
                trigger=trigger,
                stage="write",
                run_id=run_id,
                replica=self.leadership.replica if self.leadership else None,
                epoch=leader.epoch if leader else None,
                error=str(exc),
            )
            raise
        except LeaseLostError as exc:
            log.error("lease_lost", trigger=trigger, lease=owner, epoch=fence.epoch, error=str(exc))
            raise
        except (StoreError, ConfigError) as exc:
            self._alert_cycle("", trigger, "dry_run", None, f"a {trigger} cycle failed: {exc}")
            raise
        except NoRatesError:
            raise  # alerted above, where the collection was recorded
        except Exception as exc:
            self._alert_cycle(
                "", trigger, "dry_run", None, f"a {trigger} cycle failed: {type(exc).__name__}: {exc}"
            )
            raise
        finally:
            log.info("cycle_finished", trigger=trigger, lease=owner, run_id=run_id)
            try:
                self.leases.release(LEASE, owner)
            except StoreError as exc:  # never mask the cycle's own error; the lease expires on its own
                self._release_failed.set()  # `retry_release` removes it once the database takes writes again
                log.error("lease_release_failed", lease=owner, error=str(exc), expires_after_seconds=ttl)


def slot_run_id(slot: datetime) -> str:
    """The proposal id of a scheduled slot: the same on every replica, so the proposals table's primary key admits
    one proposal per slot."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"aggregator-slot:{slot.astimezone(UTC).isoformat()}").hex[:12]


DRIFT_ETH = 0.01
"""A difference between the chain and the expected book smaller than this (ETH) is rounding, not drift."""


def flight_kind(settings: Settings, from_venue: str, to_venue: str) -> Literal["deposit", "exit"]:
    """What an applied plan's capital in flight is: "exit" (in its exit queue, landing at `to_venue` when due) or
    "deposit" (a deposit down the tree, waiting where it is until the plan's exits have landed; made at `due`)."""
    return "deposit" if _below(settings, to_venue, from_venue) else "exit"


def _below(settings: Settings, venue: str, ancestor: str) -> bool:
    """Whether `venue` sits under `ancestor` in the position tree (a deposit goes down, an exit up)."""
    return ancestor in ancestors({v.id: v.parent for v in settings.venues}, venue)


def _queue_days(settings: Settings, venue: str) -> float:
    """A venue's protocol-queue days from the config (0 when it has no queue route or no such venue)."""
    for v in settings.venues:
        if v.id == venue:
            queues = [r.days for r in v.exit_routes if str(r.kind) == "queue"]
            return max(queues, default=v.exit_days)
    return 0.0


def book_venues(stored: dict[str, float], settings: Settings) -> tuple[dict[str, float], dict[str, float]]:
    """A stored book split into the venues the config knows and those it does not."""
    ids = {v.id for v in settings.venues}
    known = {v: eth for v, eth in stored.items() if v in ids}
    return known, {v: eth for v, eth in stored.items() if v not in ids}
