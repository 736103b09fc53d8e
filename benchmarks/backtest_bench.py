"""Backtest benchmark: three years of daily rebalance decisions over the default (demo) universe, on one core.

    .venv/bin/python benchmarks/backtest_bench.py
    .venv/bin/python benchmarks/backtest_bench.py --years 1

The bundled real history covers only parts of 2024 for most venues, so the yields here are synthetic: a seeded
mean-reverting walk around each component's value in the demo snapshot (static assumptions stay constant). The
universe, limits, costs and input rule ([rates] window, estimator) are config/demo.toml's. Timed: the optimizer alone (one risk aversion), then
every strategy of `aggregator backtest` (two risk aversions and four baselines), each on one compiled model; and,
for comparison, one plan on the compiled model against one plan that builds and compiles it first (what a
backtest without the cache would pay every day).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from aggregator.interfaces.research_inputs import inputs_from_settings  # noqa: E402
from aggregator.rates.collect import collect_sync  # noqa: E402
from aggregator.research.backtest.history import History  # noqa: E402
from aggregator.research.backtest.replay import run  # noqa: E402
from aggregator.research.backtest.run import input_rule, strategies_for  # noqa: E402
from aggregator.research.backtest.strategies import Optimizer  # noqa: E402
from aggregator.settings import Settings, load_settings  # noqa: E402
from optimizer import ModelCache, OptimizationInputs  # noqa: E402
from optimizer.optimize import (  # noqa: E402
    optimize,
    shape_of,
)

ROOT = Path(__file__).resolve().parents[1]


def synthetic_history(settings: Settings, days: int, seed: int) -> History:
    book = collect_sync(settings, lambda: datetime(2026, 9, 14, 23, tzinfo=UTC))
    levels = {f"{v}.{c}": val for v, comps in book.yields().items() for c, val in comps.items()}
    components = tuple(f"{v.id}.{c.name}" for v in settings.venues for c in v.components)
    rng = np.random.default_rng(seed)
    values = np.full((days + 1, len(components)), np.nan)
    for k, comp in enumerate(components):
        level = levels.get(comp, 0.0)
        x = level
        for t in range(days + 1):
            x = level + 0.9 * (x - level) + rng.normal(0.0, 0.1 * max(level, 0.002))
            values[t, k] = max(x, 0.0)
    first = date(2022, 1, 1)
    return History(
        days=tuple(first + timedelta(days=i) for i in range(days + 1)),
        components=components,
        values=values,
        series=(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    settings = load_settings(ROOT / "config" / "demo.toml")
    days = round(365 * args.years)
    history = synthetic_history(settings, days, args.seed)
    start = {settings.universe().root.id: settings.portfolio_eth}
    rule = (
        input_rule(inputs_from_settings(settings), settings.backtest)
        if settings.backtest
        else settings.rates.rule()
    )

    cache = ModelCache()
    t0 = time.perf_counter()
    model = cache.get(settings.universe(), shape_of(settings.limits))
    compile_s = time.perf_counter() - t0

    lam = settings.limits.risk_aversion
    solo = Optimizer(
        name=f"optimizer λ={lam:g}", universe=settings.universe(), limits=settings.limits, cache=cache
    )
    t0 = time.perf_counter()
    one = run(model, settings.limits, history, [solo], start, rule=rule)
    solo_s = time.perf_counter() - t0

    assert settings.backtest is not None
    every = strategies_for(inputs_from_settings(settings), settings.backtest, cache, (lam, 4 * lam))
    t0 = time.perf_counter()
    run(model, settings.limits, history, every, start, rule=rule)
    all_s = time.perf_counter() - t0

    sample = 10
    inputs = OptimizationInputs(
        universe=settings.universe(),
        limits=settings.limits,
        portfolio_eth=settings.portfolio_eth,
        holdings_eth=start,
        yields=history.row(0),
    )
    t0 = time.perf_counter()
    for _ in range(sample):
        optimize(inputs, cache=ModelCache())  # build, compile and solve: a decision without the cache
    rebuild_s = (time.perf_counter() - t0) / sample
    t0 = time.perf_counter()
    for _ in range(sample):
        optimize(inputs, cache=cache)
    cached_s = (time.perf_counter() - t0) / sample

    decisions = one.paths[0].decisions
    print(
        f"default universe: {model.structure.n_venues} venues, {model.structure.n_nodes} nodes, "
        f"{len(model.scenarios)} scenarios; {days} days, one decision a day, seed {args.seed}, one core"
    )
    print("| measure | seconds |")
    print("|---|---|")
    print(f"| build the model once (compiled at its first solve) | {compile_s:.3f} |")
    print(f"| optimizer alone: {decisions} daily decisions | {solo_s:.2f} |")
    print(f"| per decision (replay bookkeeping included) | {solo_s / decisions:.4f} |")
    print(f"| every strategy ({len(every)}: 2 optimizers, 4 baselines) | {all_s:.2f} |")
    print(f"| one plan on the compiled model (mean of {sample}) | {cached_s:.4f} |")
    print(f"| one plan building and compiling the model anew (mean of {sample}) | {rebuild_s:.4f} |")
    print(
        f"\noptimizer plans: {solo.rebalances} rebalance, {solo.holds} hold; without the cache every decision "
        f"would cost {rebuild_s / cached_s:.0f}× more ({decisions} × {rebuild_s:.3f} s ≈ {rebuild_s * decisions:.0f} s)"
    )


if __name__ == "__main__":
    main()
