"""Decision inputs benchmark: how long a rebalance cycle spends reading its window and taking the robust estimate.

    .venv/bin/python -m benchmarks.estimate_bench [--days 14] [--every-minutes 15]

A real SQLite store holds `days` of collections of the demo universe (every `every-minutes`), each component's value
drawn afresh every collection (the worst case: no value repeats, so the store's per-value counts save nothing);
then `aggregator.service.cycle.inputs_for` (the window query, the median, the entry gate) is timed on it, next to the same
window where each value stays for an hour (as DefiLlama's and most protocols' APIs do).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from aggregator.rates.collect import ComponentRate, RateBook
from aggregator.service.cycle import inputs_for
from aggregator.settings import Settings, load_settings
from aggregator.store import Store

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 9, 14, 23, tzinfo=UTC)


def _fill(
    store: Store, settings: Settings, days: float, every: float, *, hold_minutes: float, seed: int
) -> int:
    rng = np.random.default_rng(seed)
    comps = [(v.id, c.name) for v in settings.venues for c in v.components]
    n = int(days * 24 * 60 / every)
    value = {c: 0.03 for c in comps}
    for i in range(n, 0, -1):
        at = NOW - timedelta(minutes=i * every)
        if (i * every) % hold_minutes < every:
            value = {c: float(rng.normal(0.03, 0.005)) for c in comps}
        rates = [ComponentRate(v, c, value[(v, c)], ("bench",), at, ()) for v, c in comps]
        store.record_rates(RateBook(fetched_at=at, rates=rates), "rates")
    return n


def _time(settings: Settings, store: Store, repeat: int) -> list[float]:
    comps = [(v.id, c.name) for v in settings.venues for c in v.components]
    book = RateBook(fetched_at=NOW, rates=[ComponentRate(v, c, 0.03, ("bench",), NOW, ()) for v, c in comps])
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        inputs_for(settings, book, store)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--every-minutes", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    settings = load_settings(ROOT / "config" / "demo.toml").model_copy()
    for label, hold in (("a new value every collection", args.every_minutes), ("each value held 1 h", 60.0)):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/bench.sqlite")
            n = _fill(store, settings, args.days, args.every_minutes, hold_minutes=hold, seed=5)
            times = _time(settings, store, args.repeat)
            print(
                f"{label}: {n} collections × {sum(len(v.components) for v in settings.venues)} components "
                f"in the {settings.rates.window_days:g}-day window; inputs_for median "
                f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms ({args.repeat} runs)"
            )


if __name__ == "__main__":
    main()
