"""Prometheus metrics of one service (own registry, so several can live in one process, as tests do)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aggregator.core.modes import proposal_mode
from aggregator.rates.collect import RateBook
from optimizer import Plan


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.last_success_at: float | None = None
        self.last_success = Gauge(
            "aggregator_last_successful_cycle_timestamp_seconds",
            "Unix time of the last rebalance cycle that produced a plan",
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            "aggregator_source_fetch_seconds",
            "Time to fetch one source, retries included",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.source_failures = Counter(
            "aggregator_source_failures_total",
            "Cycles in which a source failed or was skipped",
            ["source"],
            registry=self.registry,
        )
        self.quotes_rejected = Counter(
            "aggregator_quotes_rejected_total",
            "Quotes rejected or quarantined",
            ["source"],
            registry=self.registry,
        )
        self.proposals = Counter(
            "aggregator_proposals_total",
            "Proposals by status and mode",
            ["status", "mode"],
            registry=self.registry,
        )
        self.book_yield = Gauge(
            "aggregator_book_expected_yield",
            "Net yield of the book, fraction per year",
            registry=self.registry,
        )
        self.book_cvar = Gauge("aggregator_book_cvar", "CVaR of the book, fraction", registry=self.registry)
        self.venue_weight = Gauge(
            "aggregator_venue_weight",
            "Share of the book held at the venue (the target once a plan is applied), fraction",
            ["venue"],
            registry=self.registry,
        )
        self.venue_target_weight = Gauge(
            "aggregator_venue_target_weight",
            "Share of the book the latest plan puts at the venue, fraction",
            ["venue"],
            registry=self.registry,
        )
        self.venue_yield = Gauge(
            "aggregator_venue_net_yield",
            "Net yield of the venue the latest plan was solved with, fraction per year",
            ["venue"],
            registry=self.registry,
        )
        self.venue_exposure = Gauge(
            "aggregator_venue_exposure_eth",
            "ETH held at the venue (the target once a plan is applied)",
            ["venue"],
            registry=self.registry,
        )

        # Replicas (#18): labelled, so a single process (no [coordination]) exports no sample of them.
        self.leading = Gauge(
            "aggregator_leader",
            "1 while this replica leads the replicas on its database, else 0",
            ["replica"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "aggregator_leader_info",
            "The replica this one sees leading (value: its lease epoch); no sample while none leads",
            ["leader"],
            registry=self.registry,
        )

    def observe_leadership(self, replica: str, leading: bool, leader: str | None, epoch: int | None) -> None:
        """This replica's role and the leader it sees (replica ids)."""
        self.leading.labels(replica).set(1 if leading else 0)
        self.leader.clear()
        if leader is not None:
            self.leader.labels(leader).set(epoch or 0)

    def observe_book(self, book: RateBook) -> None:
        for source, seconds in book.source_seconds.items():
            self.fetch_seconds.labels(source).observe(seconds)
        for source in book.failed_sources:
            self.source_failures.labels(source).inc()
        for rejection in book.rejected:
            self.quotes_rejected.labels(rejection.source).inc()

    def observe_plan(self, plan: Plan, apply: bool, at: float) -> None:
        """One proposal; `apply` is what the cycle was asked, the `mode` label what it did (`proposal_mode`)."""
        mode = proposal_mode(plan.status, apply)
        self.proposals.labels(plan.status, mode).inc()
        held = plan.after if mode == "applied" else plan.before
        self.book_yield.set(held.net_yield)
        self.book_cvar.set(held.cvar)
        self._observe_venues(plan, applied=mode == "applied")
        self.last_success.set(at)
        self.last_success_at = at

    def _observe_venues(self, plan: Plan, *, applied: bool) -> None:
        """Per-venue gauges, replaced as a whole: a venue gone from the config leaves no stale series behind."""
        weights = plan.target_weights if applied else plan.current_weights
        yields = dict(zip(plan.problem.venue_order, plan.problem.net_yield, strict=False))
        for gauge in (self.venue_weight, self.venue_target_weight, self.venue_yield, self.venue_exposure):
            gauge.clear()
        for venue, weight in weights.items():
            self.venue_weight.labels(venue).set(weight)
            self.venue_exposure.labels(venue).set(weight * plan.portfolio_eth)
        for venue, weight in plan.target_weights.items():
            self.venue_target_weight.labels(venue).set(weight)
        for venue, value in yields.items():
            self.venue_yield.labels(venue).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
