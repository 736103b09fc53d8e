"""Optimizer benchmark: scenario sets and the build and re-solve times of the three ways to write CVaR (cutting
planes, the default; every scenario row factored; the textbook dense loss matrix), on synthetic universes.

    .venv/bin/python -m benchmarks.optimizer_bench            # default-sized and large universe
    .venv/bin/python -m benchmarks.optimizer_bench --only default

"Default" is a universe the size of config/demo.toml's scale-up (about 25 venues, 20 risk nodes), with the default
enumeration (every triple, deeper until the mass left out is below 1e-6 of the CVaR tail). "Large" is 1,000
venues and 200 nodes: with every pair (20,301 scenarios: all three forms) and with every triple (1,333,501
scenarios, what the default enumeration gives under its 2 M scenario cap: the cut form; the other two forms would
hold one row per scenario). Default-universe re-solves change the yields and the book each time; large-universe
re-solves keep the book and move every yield by up to ±10 %, as a dry-run daemon's cycles do. Times are wall-clock
medians on this machine; "peak RSS" is the process's high-water mark after the run.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any

import numpy as np

from optimizer import Limits, OptimizationInputs
from optimizer.optimize import ModelCache, optimize, prepare, shape_for
from optimizer.problem import AllocationModel, RiskForm
from optimizer.synthetic import synthetic_universe


def _inputs(n_venues: int, n_nodes: int, rng: np.random.Generator, seed: int = 7) -> OptimizationInputs:
    universe, yields = synthetic_universe(n_venues, n_nodes, seed=seed)
    jitter = {
        v: {c: val * float(rng.uniform(0.9, 1.1)) for c, val in comps.items()} for v, comps in yields.items()
    }
    ids = [v.id for v in universe.venues]
    # 60 % idle ETH and 10 % in each of four random venues: always feasible (idle ETH carries no risk).
    pick = rng.choice(np.arange(1, len(ids)), size=min(4, len(ids) - 1), replace=False)
    holdings = {ids[0]: 600.0} | {ids[i]: 100.0 for i in pick}
    total = sum(holdings.values())
    return OptimizationInputs(
        universe=universe,
        limits=Limits(cvar_budget=0.25, risk_aversion=0.05, max_turnover=0.6),
        portfolio_eth=total,
        holdings_eth=holdings,
        yields=jitter,
    )


def bench_default(repeats: int) -> None:
    rng = np.random.default_rng(1)
    first = _inputs(25, 20, rng)
    t0 = time.perf_counter()
    cache = ModelCache()
    plan = optimize(first, cache=cache)
    first_s = time.perf_counter() - t0
    model = next(iter(cache.models.values()))
    plan_times, solve_times = [], []
    for _ in range(repeats):
        inp = _inputs(25, 20, rng)
        t0 = time.perf_counter()
        p = optimize(inp, cache=cache)
        assert p.problem.objective is not None, p.reason
        plan_times.append(time.perf_counter() - t0)
        solve_times.append(p.solver.seconds / max(p.solver.solves, 1))
    res = model.losses.residual
    print(
        f"default universe: {model.structure.n_venues} venues, {model.structure.n_nodes} nodes, "
        f"{len(model.scenarios):,} scenarios (every combination of up to {res.depth} failures), residual mass "
        f"{res.mass:.2e} ({res.mass / (1 - model.shape.cvar_beta):.1e} of the tail); status of first plan: "
        f"{plan.status}, {len(plan.binding)} binding limit(s) explained by re-solves"
    )
    print("| measure | seconds |")
    print("|---|---|")
    print(f"| first build + solve (whole plan) | {first_s:.3f} |")
    print(f"| re-solve, solver call (median of {repeats}) | {statistics.median(solve_times):.4f} |")
    print(
        f"| re-solve, whole plan incl. checks (median of {repeats}) | {statistics.median(plan_times):.4f} |"
    )
    print()


def _cycles(n_venues: int, n_nodes: int, count: int) -> list[OptimizationInputs]:
    """One book, yields moving ±10 % from cycle to cycle: what a dry-run daemon re-solves."""
    rng = np.random.default_rng(2)
    first = _inputs(n_venues, n_nodes, rng)
    out = [first]
    for _ in range(count - 1):
        jitter = {
            v: {c: val * float(rng.uniform(0.9, 1.1)) for c, val in comps.items()}
            for v, comps in first.yields.items()
        }
        out.append(first.model_copy(update={"yields": jitter}))
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _large_run(form: RiskForm, repeats: int, depth: int) -> dict[str, object]:
    inputs = _cycles(1000, 200, repeats + 1)
    t0 = time.perf_counter()
    model = AllocationModel(inputs[0].universe, shape_for(inputs[0], form, depth=depth))
    build_s = time.perf_counter() - t0
    values, _, _ = prepare(model, inputs[0])
    t0 = time.perf_counter()
    res = model.solve(values, ("HIGHS",))
    first_s = time.perf_counter() - t0
    assert res.ok, f"{form}: {res.status}"
    objectives = [res.objective or float("nan")]
    times = []
    rounds = []
    for inp in inputs[1:]:
        values, _, _ = prepare(model, inp)
        t0 = time.perf_counter()
        res = model.solve(values, ("HIGHS",))
        times.append(time.perf_counter() - t0)
        assert res.ok, f"{form}: {res.status}"
        objectives.append(res.objective or float("nan"))
        if model.cut_loop is not None:
            rounds.append(model.cut_loop.stats.rounds)
    if model.cut_loop is not None:
        nnz = model.cut_loop.nonzeros
    else:
        nnz = int(model.problem.get_problem_data("HIGHS")[0]["A"].nnz)
    return {
        "scenarios": len(model.scenarios),
        "residual": model.losses.residual.mass,
        "build": build_s,
        "first": first_s,
        "resolve": statistics.median(times),
        "slowest": max(times),
        "objectives": objectives,
        "nnz": nnz,
        "rounds": statistics.mean(rounds) if rounds else 0.0,
        "rss": _rss_mb(),
    }


def bench_large(repeats: int, forms: tuple[str, ...]) -> None:
    print("large universe: 1,000 venues, 200 nodes (HiGHS)")
    runs: dict[str, dict[str, Any]] = {}
    if "pairs" in forms:
        runs["pairs: cuts (default form)"] = _large_run("cuts", repeats, 2)
        runs["pairs: factored"] = _large_run("factored", repeats, 2)
        runs["pairs: textbook dense"] = _large_run("dense", repeats, 2)
    if "triples" in forms:
        runs["triples: cuts (default form)"] = _large_run("cuts", repeats, 3)
    print(
        "| enumeration: form | scenarios | residual mass | build (s) | first solve (s) | re-solve median (s) "
        "| slowest re-solve (s) | cut rounds per re-solve | constraint non-zeros | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        print(
            f"| {name} | {r['scenarios']:,} | {r['residual']:.2e} | {r['build']:.2f} | {r['first']:.2f} "
            f"| {r['resolve']:.3f} | {r['slowest']:.3f} | {r['rounds']:.1f} | {r['nnz']:,} | {r['rss']:,.0f} |"
        )
    if "pairs" in forms:
        cut, fac, den = (runs[f"pairs: {k}"] for k in ("cuts (default form)", "factored", "textbook dense"))
        gap = max(
            abs(a - b) for r in (cut, fac) for a, b in zip(r["objectives"], den["objectives"], strict=True)
        )
        print(
            f"\nwith every pair: re-solve speed-up vs textbook dense: cuts "
            f"{den['resolve'] / cut['resolve']:.1f}x, factored {den['resolve'] / fac['resolve']:.1f}x; largest "
            f"optimal-value difference over {len(den['objectives'])} solves: {gap:.2e}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["default", "large"])
    parser.add_argument(
        "--large",
        nargs="+",
        choices=["pairs", "triples"],
        default=["pairs", "triples"],
        help="large enumerations",
    )
    parser.add_argument("--repeats", type=int, default=0, help="re-solves per measurement (default 50 / 20)")
    args = parser.parse_args()
    if args.only in (None, "default"):
        bench_default(args.repeats or 50)
    if args.only in (None, "large"):
        bench_large(args.repeats or 20, tuple(args.large))


if __name__ == "__main__":
    main()
