"""The daemon's path (rates in the store → inputs → plan → log): a venue on thin data is not bought however high
its yield; a venue without a fresh quote is sold when its window no longer justifies it, never bought."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from aggregator.interfaces.render import plan_report
from aggregator.rates.collect import RateBook, collect_sync
from aggregator.service.cycle import run_cycle
from aggregator.settings import Settings, load_settings
from aggregator.store import Store
from optimizer import ModelCache

T = datetime(2026, 9, 14, 23, tzinfo=UTC)
KELP = ("kelp-rseth", "base")


def _settings(demo_config: Callable[..., Path]) -> Settings:
    """The demo universe with its entry gate at 7 observations and a CVaR budget loose enough that a 20 % rsETH
    would be bought at its max share if it were open."""

    def edit(text: str) -> str:
        text = re.sub(r"(?m)^min_observations = 1\b.*$", "min_observations = 7", text)
        return re.sub(r"(?m)^cvar_budget = .*$", "cvar_budget = 0.5", text)

    return load_settings(demo_config(edit))


def _book(settings: Settings, at: datetime, kelp: float | None) -> RateBook:
    """The demo snapshot's rates collected at `at`, with rsETH at `kelp` (None: no rsETH quote this time)."""
    book = collect_sync(settings, lambda: at)
    rates = [r for r in book.rates if (r.venue, r.component) != KELP]
    if kelp is not None:
        old = next(r for r in book.rates if (r.venue, r.component) == KELP)
        rates.append(dataclasses.replace(old, value=kelp))
    return dataclasses.replace(book, rates=rates, missing=[])


def _cycle(settings: Settings, store: Store, book: RateBook, holdings: dict[str, float]):  # type: ignore[no-untyped-def]
    with structlog.testing.capture_logs() as logs:
        result = run_cycle(
            settings,
            book,
            cache=ModelCache(),
            trigger="cli",
            now=lambda: book.fetched_at,
            store=store,
            holdings=holdings,
        )
    return result.plan, logs


def _own(plan, logs, key: str) -> float:  # type: ignore[no-untyped-def]
    """The window's own estimate of `key` ("venue.component"): the plan sees it pulled toward the tokens' median
    ([rates] shrink), and the cycle logs both; checks that the plan saw the logged value."""
    shrunk = [e for e in logs if e["event"] == "estimates_shrunk"]
    venue, comp = key.split(".")
    seen = plan.problem.inputs.yields[venue][comp]
    if not shrunk or key not in shrunk[0]["estimates"]:
        return float(seen)
    entry = shrunk[0]["estimates"][key]
    assert entry["seen"] == seen
    return float(entry["own"])


def test_a_venue_with_two_observations_is_not_bought_even_with_the_best_yield(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """rsETH quoted at 20 % twice (one stored collection and this one): closed, logged with the count; the same
    20 % on 7 collections is bought (so it is the gate, not the limits, that kept it out)."""
    settings = _settings(demo_config)
    store = Store(f"sqlite:///{tmp_path}/gate.sqlite")
    start = {"eth": 10_000.0}
    for hours in range(10, 0, -1):  # ten collections without rsETH, one with it
        store.record_rates(_book(settings, T - timedelta(hours=hours), 0.20 if hours == 1 else None), "rates")
    plan, logs = _cycle(settings, store, _book(settings, T, 0.20), start)
    assert plan.target_weights["kelp-rseth"] == pytest.approx(0.0, abs=1e-9)
    assert not [m for m in plan.moves if m.to_venue == "kelp-rseth"]
    blocked = [e for e in logs if e["event"] == "venue_entry_blocked" and e["venue"] == "kelp-rseth"]
    assert blocked and "too few observations: 2 of the 7 needed" in blocked[0]["reason"]
    assert _own(plan, logs, "kelp-rseth.base") == pytest.approx(0.20)
    console = Console(record=True, width=200)
    plan_report(console, plan)
    assert (
        "no entry kelp-rseth (at 0.00 %, may be sold): kelp-rseth.base too few observations"
        in console.export_text()
    )

    for offset in (0.9, 0.8, 0.7, 0.6, 0.5):  # five more rsETH collections: 7 with this cycle's
        store.record_rates(_book(settings, T + timedelta(hours=offset), 0.20), "rates")
    later, logs = _cycle(settings, store, _book(settings, T + timedelta(hours=1), 0.20), start)
    assert later.target_weights["kelp-rseth"] == pytest.approx(0.15, abs=1e-6)  # its max share
    assert not [e for e in logs if e["event"] == "venue_entry_blocked" and e["venue"] == "kelp-rseth"]


def test_a_stale_venue_is_sold_when_its_yield_no_longer_justifies_it_and_never_bought(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """rsETH has a week of stored quotes at −2 % and none this cycle. Held, it is sold on its window's median
    (before, a venue without a fresh quote was frozen at its weight); with a window at 20 % and none held, it is
    not bought."""
    settings = _settings(demo_config)
    store = Store(f"sqlite:///{tmp_path}/stale.sqlite")
    for days in range(8, 0, -1):
        store.record_rates(_book(settings, T - timedelta(days=days), -0.02), "rates")
    held = {"eth": 8_500.0, "kelp-rseth": 1_500.0}
    plan, logs = _cycle(settings, store, _book(settings, T, None), held)
    assert plan.status == "rebalance"
    assert plan.target_weights["kelp-rseth"] == pytest.approx(0.0, abs=1e-9)
    assert [m.action for m in plan.moves if m.venue == "kelp-rseth"] == ["withdraw"]
    assert not [e for e in logs if e["event"] == "venue_held"]
    blocked = [e for e in logs if e["event"] == "venue_entry_blocked" and e["venue"] == "kelp-rseth"]
    assert blocked and blocked[0]["reason"].startswith("kelp-rseth.base stale")
    assert _own(plan, logs, "kelp-rseth.base") == pytest.approx(-0.02)

    rich = Store(f"sqlite:///{tmp_path}/rich.sqlite")
    for days in range(8, 0, -1):
        rich.record_rates(_book(settings, T - timedelta(days=days), 0.20), "rates")
    plan, logs = _cycle(settings, rich, _book(settings, T, None), {"eth": 10_000.0})
    assert _own(plan, logs, "kelp-rseth.base") == pytest.approx(0.20)
    assert plan.target_weights["kelp-rseth"] == pytest.approx(0.0, abs=1e-9)
