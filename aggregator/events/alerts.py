"""Alerts for people through Apprise (Slack, Discord, Telegram, e-mail, ntfy, json:// … by URL in `[alerts]`): a
readable message per proposal, and a message when a condition starts (a source down past its circuit breaker, no
usable rate from any source, a cycle failed, a budget breached by the current book) and one "resolved" when it
clears. Each condition is told once while it lasts, however many cycles see it (de-duplicated by key).

Sending runs on a worker thread, so a slow or dead receiver never holds a cycle; each message has
`deadline_seconds`, and `close()` flushes what is queued for up to that long. The raw JSON webhook
(`aggregator.events.notify`) stays for machines."""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from aggregator.rates.breaker import SourceHealth
from aggregator.rates.collect import RateBook
from aggregator.settings.alerts import AlertSettings
from optimizer import Plan

log = structlog.get_logger(__name__)
Send = Callable[[str, str, str], bool]  # (title, body, type: info|success|warning|failure) -> delivered

__all__ = ["Alerter", "Message", "proposal_message", "source_conditions"]


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    kind: str = "info"  # Apprise's notify types: info, success, warning, failure


def _pct(value: float) -> str:
    return f"{value * 100:.2f} %"


def proposal_message(run_id: str, trigger: str, mode: str, plan: Plan, names: Mapping[str, str]) -> Message:
    """Headline, moves, why: what a person needs to decide whether to act."""

    def name(venue: str) -> str:
        return names.get(venue, venue)

    if plan.status == "rebalance":
        headline = (
            f"Rebalance proposed ({mode.replace('_', ' ')}): net yield {_pct(plan.before.net_yield)} → "
            f"{_pct(plan.after.net_yield)}, CVaR {_pct(plan.before.cvar)} → {_pct(plan.after.cvar)}"
        )
    else:
        headline = f"Hold ({mode.replace('_', ' ')}): net yield {_pct(plan.before.net_yield)}"
    lines = [headline, f"Why: {plan.reason}"]
    if plan.moves:
        lines.append("Moves:")
        lines += [
            f"  {m.step}. {m.action} {m.amount_eth:.4f} ETH ({_pct(m.share)}) {name(m.from_venue)} → "
            f"{name(m.to_venue)}, cost {m.cost_eth:.4f} ETH, {m.days:g} d"
            for m in plan.moves
        ]
        lines.append(
            f"Costs {plan.costs.total_eth:.4f} ETH; risk-adjusted gain {plan.gain_bps:.1f} bp/yr; "
            f"turnover {_pct(plan.turnover)}"
        )
    lines += [f"Binding: {b.explanation}" for b in plan.binding[:3]]
    lines.append(f"Proposal {run_id} (trigger {trigger}): `aggregator show {run_id}`")
    return Message(f"restaking-aggregator: {headline.split(':')[0]}", "\n".join(lines))


def source_conditions(book: RateBook, health: SourceHealth) -> dict[str, str]:
    """The source conditions a collection shows: each source down past its breaker; no usable rate at all."""
    out = {
        f"source:{name}": (
            f"source {name} is down: {breaker.consecutive} failed cycles in a row, its circuit breaker is open"
            + (f" ({book.failed_sources[name]})" if name in book.failed_sources else "")
        )
        for name, breaker in sorted(health.breakers.items())
        if breaker.opened_at is not None
    }
    if not book.rates:
        out["rates:none"] = (
            "no usable rate from any source: every source failed, or every quote was stale or rejected "
            f"(failed: {', '.join(sorted(book.failed_sources)) or 'none'})"
        )
    return out


class Alerter:
    """De-duplicates conditions and queues messages for a worker that sends them through Apprise."""

    def __init__(self, settings: AlertSettings, send: Send | None = None) -> None:
        self.settings = settings
        self._send = send or _apprise_sender(settings)
        self._active: dict[str, dict[str, str]] = {}  # family -> key -> message
        self._lock = threading.Lock()
        self._queue: queue.Queue[Message | None] = queue.Queue(maxsize=200)
        self._thread = threading.Thread(target=self._work, name="alerts", daemon=True)
        self._thread.start()

    def proposal(self, run_id: str, trigger: str, mode: str, plan: Plan, names: Mapping[str, str]) -> None:
        wanted = self.settings.proposals
        if wanted == "all" or (wanted == "rebalance" and plan.status == "rebalance"):
            self._put(proposal_message(run_id, trigger, mode, plan, names))

    def update(self, family: str, active: Mapping[str, str]) -> None:
        """The conditions of `family` that hold now (key -> message): new ones alert, gone ones resolve, ongoing
        ones stay quiet."""
        with self._lock:
            before = self._active.get(family, {})
            self._active[family] = dict(active)
        for key, text in active.items():
            if key not in before:
                log.warning("alert_raised", key=key, message=text)
                self._put(Message(f"restaking-aggregator alert: {key}", text, "failure"))
        for key, text in before.items():
            if key not in active:
                log.info("alert_resolved", key=key)
                self._put(Message(f"restaking-aggregator resolved: {key}", f"resolved: {text}", "success"))

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued for up to `timeout` seconds (default `deadline_seconds`); True if all went."""
        wait = self.settings.deadline_seconds if timeout is None else timeout
        try:
            self._queue.put(None, timeout=wait)
        except queue.Full:
            return False
        self._thread.join(wait)
        return not self._thread.is_alive()

    def _put(self, message: Message) -> None:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            log.warning("alert_dropped", reason="queue full", title=message.title)

    def _work(self) -> None:
        while (message := self._queue.get()) is not None:
            started = time.monotonic()
            try:
                ok = self._send(message.title, message.body, message.kind)
            except Exception as exc:  # a bad URL or a receiver's failure must not end the worker
                ok, why = False, f"{type(exc).__name__}: {exc}"
            else:
                why = "" if ok else "Apprise reported a failure for at least one URL"
            seconds = round(time.monotonic() - started, 3)
            if ok:
                log.info("alert_sent", title=message.title, seconds=seconds)
            else:
                log.warning("alert_failed", title=message.title, seconds=seconds, reason=why)


def _apprise_sender(settings: AlertSettings) -> Send:
    """An Apprise object over the configured URLs (imported here: only a process with alerts loads it)."""
    # Apprise loads its plugins on the first add(); one of them imports the deprecated standard `imghdr`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise  # noqa: PLC0415 - heavy, and only needed where alerts are configured

        ap = apprise.Apprise()
        for url in settings.urls:
            if not ap.add(url.get_secret_value()):
                log.error("alert_url_invalid", url_scheme=url.get_secret_value().split("://", 1)[0])

    def send(title: str, body: str, kind: str) -> bool:
        return bool(ap.notify(body=body, title=title, notify_type=kind))

    return send
