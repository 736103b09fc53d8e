"""Alerts for people through Apprise (Slack, Discord, Telegram, e-mail, ntfy, json:// … by URL in `[alerts]`): a
readable message per proposal, and a message when a condition starts (a source down past its circuit breaker, no
usable rate from any source, a cycle failed, a budget breached by the current book, the chain book drifting from
the expected one) and one "resolved" when it clears. Each condition is told once while it lasts, however many
cycles see it (de-duplicated by key). On top, a rate limit: at most `max_messages` in any `window_seconds`; what
is over is held and told in one summary message when the window lets another through (or at `close()`).

Sending runs on a worker thread, so a slow or dead receiver never holds a cycle; each message has
`deadline_seconds`, and `close()` flushes what is queued for up to that long. The raw JSON webhook
(`aggregator.events.notify`) stays for machines."""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from aggregator.rates.breaker import SourceHealth
from aggregator.rates.collect import RateBook
from aggregator.settings.alerts import AlertSettings
from optimizer import Plan

log = structlog.get_logger(__name__)
Send = Callable[[str, str, str], bool]  # (title, body, type: info|success|warning|failure) -> delivered

__all__ = ["Alerter", "Message", "Throttle", "drift_conditions", "proposal_message", "source_conditions"]


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


def drift_conditions(
    block: int, venues: Mapping[str, Mapping[str, float]], flight_expected: float, flight_chain: float
) -> dict[str, str]:
    """`book:drift` when the chain book (read at `block`) differs from the book the service expected: each venue
    that differs (`{venue: {"expected": eth, "chain": eth}}`, as `book_drift` logs it) and capital in flight."""
    if not venues and abs(flight_expected - flight_chain) <= DRIFT_EPSILON_ETH:
        return {}
    parts = [f"{v} expected {d['expected']:.4f} ETH, chain {d['chain']:.4f} ETH" for v, d in venues.items()]
    if abs(flight_expected - flight_chain) > DRIFT_EPSILON_ETH:
        parts.append(f"in flight expected {flight_expected:.4f} ETH, chain {flight_chain:.4f} ETH")
    return {
        "book:drift": f"the book on chain at block {block} differs from the expected book: "
        + "; ".join(parts)
        + ". The plan starts from the chain; find the move the service did not record."
    }


DRIFT_EPSILON_ETH = 0.01
"""The same rounding tolerance as `aggregator.service.DRIFT_ETH`: smaller in-flight differences are not drift."""


class Throttle:
    """At most `limit` messages in any `window` seconds. Messages over the limit are held; `summary()` turns what
    is held into one message as soon as the window has room for it (or at once with `force`)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._sent: deque[float] = deque()
        self.held: list[Message] = []

    def _room(self) -> bool:
        now = self.clock()
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        return len(self._sent) < self.limit

    def admit(self, message: Message) -> bool:
        """True when `message` may go now (counted); else it is held for the summary."""
        if self._room():
            self._sent.append(self.clock())
            return True
        self.held.append(message)
        return False

    def summary(self, force: bool = False) -> Message | None:
        """One message naming what was held, when there is room for it (counted), else None."""
        if not self.held or not (force or self._room()):
            return None
        held, self.held = self.held, []
        self._sent.append(self.clock())
        titles = [f"- {m.title}" for m in held[:20]] + (
            [f"- … and {len(held) - 20} more"] if len(held) > 20 else []
        )
        return Message(
            f"restaking-aggregator: {len(held)} alert message(s) held back by the rate limit",
            f"{len(held)} message(s) were over the limit of {self.limit} per {self.window:g} s and were not sent "
            "one by one:\n" + "\n".join(titles),
            "warning",
        )

    def wait(self) -> float | None:
        """Seconds until the window has room for the summary of what is held (None: nothing held)."""
        if not self.held:
            return None
        if self._room():
            return 0.0
        return max(self._sent[0] + self.window - self.clock(), 0.0)


class Alerter:
    """De-duplicates conditions and queues messages for a worker that sends them through Apprise."""

    def __init__(self, settings: AlertSettings, send: Send | None = None) -> None:
        self.settings = settings
        self._send = send or _apprise_sender(settings)
        self._active: dict[str, dict[str, str]] = {}  # family -> key -> message
        self._lock = threading.Lock()
        self._queue: queue.Queue[Message | None] = queue.Queue(maxsize=200)
        self.throttle = Throttle(settings.max_messages, settings.window_seconds)
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
        throttle = self.throttle
        while True:
            try:
                message = self._queue.get(timeout=throttle.wait())
            except queue.Empty:  # the window has room again: tell what was held
                message = _TICK
            if message is None:
                if (summary := throttle.summary(force=True)) is not None:
                    self._deliver(summary)
                return
            if (summary := throttle.summary()) is not None:
                self._deliver(summary)
            if message is _TICK:
                continue
            if throttle.admit(message):
                self._deliver(message)
            else:
                log.warning("alert_held", title=message.title, reason="rate limit", held=len(throttle.held))

    def _deliver(self, message: Message) -> None:
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


_TICK = Message("", "")  # the worker's wake-up when the rate limit's window has room for a summary


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
