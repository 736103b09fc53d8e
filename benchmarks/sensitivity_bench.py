"""Sensitivity benchmark: how long `rebalance --sensitivity` spends re-solving on the demo, before and after the
priors became parameters of the compiled model.

    .venv/bin/python -m benchmarks.sensitivity_bench

The demo's plan inputs (the snapshot's yields, the config's book and limits) are built once; then the base solve,
the 48 p/lgd variants and the 2 CVaR-budget variants are timed twice: with `ModelCache` (before: p and lgd shape the
scenario set, so every p/lgd variant compiles a new model) and with `RetargetingCache` (after: one compiled model,
each variant re-enumerates the scenarios and loads them as parameter values, a warm re-solve). Both runs must give
the same target weights (to 1e-7), which the benchmark checks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from adapters.snapshot import SnapshotSettings
from adapters.static import StaticSettings
from aggregator.risk.sensitivity import variants_of
from aggregator.settings import load_settings
from optimizer import OptimizationInputs, Plan
from optimizer.optimize import ModelCache, optimize
from optimizer.retarget import RetargetingCache

ROOT = Path(__file__).resolve().parents[1]


def demo_inputs() -> OptimizationInputs:
    settings = load_settings(ROOT / "config" / "demo.toml")
    snapshot, static = settings.sources["demo"], settings.sources["assumptions"]
    assert isinstance(snapshot, SnapshotSettings) and isinstance(static, StaticSettings)
    values = {q["key"]: q["value"] for q in json.loads(Path(snapshot.path).read_text())["quotes"]}
    values |= {key: s.value for key, s in static.values.items()}
    yields = {
        v.id: {c.name: values[c.quotes[0].key] for c in v.components} for v in settings.venues if v.components
    }
    return OptimizationInputs(
        universe=settings.universe(),
        limits=settings.limits,
        portfolio_eth=settings.portfolio_eth,
        holdings_eth=dict(settings.portfolio.holdings_eth),
        yields=yields,
    )


def run(name: str, inputs: OptimizationInputs, cache: ModelCache) -> list[Plan]:
    t = time.perf_counter()
    plans = [optimize(inputs, cache=cache)]
    base = time.perf_counter() - t
    priors: list[float] = []
    budget: list[float] = []
    for label, _, changed in variants_of(inputs):
        t = time.perf_counter()
        plans.append(optimize(changed, cache=cache))
        (budget if label.startswith("cvar_budget") else priors).append(time.perf_counter() - t)
    print(f"{name}:")
    print(f"  base solve (model built): {base * 1000:.0f} ms")
    print(
        f"  {len(priors)} p/lgd variants: {sum(priors):.2f} s, {sum(priors) / len(priors) * 1000:.0f} ms each"
    )
    print(f"  {len(budget)} budget variants: {sum(budget) / len(budget) * 1000:.0f} ms each")
    print(f"  total {base + sum(priors) + sum(budget):.2f} s")
    return plans


def main() -> None:
    inputs = demo_inputs()
    before = run("before: ModelCache (a new model per p/lgd variant)", inputs, ModelCache())
    warm = RetargetingCache()
    after = run("after: RetargetingCache (p and lgd as parameters, one compiled model)", inputs, warm)
    print(f"  models compiled: {warm.built}, prior changes taken warm: {warm.retargeted}")
    worst = max(
        abs(a.target_weights[v] - b.target_weights[v])
        for a, b in zip(before, after, strict=True)
        for v in a.target_weights
    )
    print(f"largest target-weight difference between the two runs: {worst:.1e}")
    assert worst < 1e-7, worst


if __name__ == "__main__":
    main()
