"""CLI timing: how long commands take to answer, and where a `rebalance` spends its time.

    .venv/bin/python -m benchmarks.cli_bench              # 5 runs of each command
    .venv/bin/python -m benchmarks.cli_bench --runs 9

Part 1 runs the console script as a real subprocess on a temporary copy of the demo (`--help`, `--version`,
`health` with nothing listening, `rates`, `rebalance`) and prints wall-clock medians. Part 2 times one rebalance's
phases in a fresh interpreter, step by step as `Service.rebalance` runs them: import (the service, the optimizer
and cvxpy), open (settings and the store, migrations included), fetch (every source, cross-checks), solve
(`run_cycle`: the optimizer and its explanations), write (`record_cycle`: one transaction). Medians of `--runs`
fresh interpreters. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.demo import AGGREGATOR, clean_env, copy_demo, free_port

PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
from aggregator.service import Service
from aggregator.service.cycle import run_cycle
from aggregator.rates.collect import collect_sync
from aggregator.settings import load_settings
import optimizer.optimize  # cvxpy and the solvers
t1 = time.perf_counter()
settings = load_settings(__import__("pathlib").Path(sys.argv[1]))
service = Service(settings)
t2 = time.perf_counter()
book = collect_sync(settings, service.now, service.health, service.memory)
t3 = time.perf_counter()
result = run_cycle(settings, book, cache=service.cache, trigger="cli", now=service.now, store=service.store,
                   holdings=service.holdings(settings), in_flight=service.in_flight(), run_id=sys.argv[2],
                   apply=False)
t4 = time.perf_counter()
service.store.record_cycle(book, "cli", sys.argv[2], result.plan, apply=False,
                           initial=dict(settings.portfolio.holdings_eth))
t5 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "fetch": t3 - t2, "solve": t4 - t3, "write": t5 - t4}))
"""


def _wall(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, capture_output=True, env=clean_env(env), check=False, timeout=300)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    home = Path(tempfile.mkdtemp(prefix="cli-bench-"))
    config = str(copy_demo(home))
    env = {"AGGREGATOR_API__PORT": str(free_port()), "AGGREGATOR_LOGGING__LEVEL": "warning"}
    commands = {
        "--help": ["--help"],
        "--version": ["--version"],
        "health (nothing listening)": ["health", "--config", config],
        "rates": ["rates", "--config", config],
        "rebalance": ["rebalance", "--config", config],
    }
    print(f"{'command':<28} {'median s':>9} {'min s':>7}   ({runs} runs, {sys.executable})")
    for name, args in commands.items():
        times = [_wall([str(AGGREGATOR), *args], env) for _ in range(runs)]
        print(f"{name:<28} {statistics.median(times):>9.3f} {min(times):>7.3f}")
    phases: dict[str, list[float]] = {}
    for i in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", PHASES, config, f"bench{i:08d}"],
            capture_output=True,
            text=True,
            env=clean_env(env),
            check=True,
            timeout=300,
        )
        for key, value in json.loads(done.stdout.splitlines()[-1]).items():
            phases.setdefault(key, []).append(value)
    print(f"\nrebalance phases (median of {runs} fresh interpreters)")
    for key, values in phases.items():
        print(f"  {key:<8} {statistics.median(values):>7.3f} s")
    print(f"  {'total':<8} {sum(statistics.median(v) for v in phases.values()):>7.3f} s")


if __name__ == "__main__":
    main()
