"""Sensitivity benchmark: how long `rebalance --sensitivity` spends re-solving on the demo.

    .venv/bin/python -m benchmarks.sensitivity_bench

The demo's plan inputs (the snapshot's yields, the config's book and limits) are built once; then the base solve,
the 48 p/lgd variants (each a new universe: p and lgd shape the scenario set, so the model is rebuilt) and the 2
CVaR-budget variants (same universe: the compiled model is reused, a warm re-solve) are timed separately.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from adapters.snapshot import SnapshotSettings
from adapters.static import StaticSettings
from aggregator.risk.sensitivity import variants_of
from aggregator.settings import load_settings
from optimizer import OptimizationInputs
from optimizer.optimize import ModelCache, optimize

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    settings = load_settings(ROOT / "config" / "demo.toml")
    snapshot, static = settings.sources["demo"], settings.sources["assumptions"]
    assert isinstance(snapshot, SnapshotSettings) and isinstance(static, StaticSettings)
    values = {q["key"]: q["value"] for q in json.loads(Path(snapshot.path).read_text())["quotes"]}
    values |= {key: s.value for key, s in static.values.items()}
    yields = {
        v.id: {c.name: values[c.quotes[0].key] for c in v.components} for v in settings.venues if v.components
    }
    inputs = OptimizationInputs(
        universe=settings.universe(),
        limits=settings.limits,
        portfolio_eth=settings.portfolio_eth,
        holdings_eth=dict(settings.portfolio.holdings_eth),
        yields=yields,
    )
    cache = ModelCache()
    t = time.perf_counter()
    optimize(inputs, cache=cache)
    base = time.perf_counter() - t
    cold: list[float] = []
    warm: list[float] = []
    for label, _, changed in variants_of(inputs):
        t = time.perf_counter()
        optimize(changed, cache=cache)
        (warm if label.startswith("cvar_budget") else cold).append(time.perf_counter() - t)
    print(f"base solve (model built): {base * 1000:.0f} ms")
    print(
        f"{len(cold)} p/lgd variants (model rebuilt each): {sum(cold):.2f} s, {sum(cold) / len(cold) * 1000:.0f} ms each"
    )
    print(f"{len(warm)} budget variants (compiled model reused): {sum(warm) / len(warm) * 1000:.0f} ms each")
    print(f"total {base + sum(cold) + sum(warm):.2f} s")


if __name__ == "__main__":
    main()
