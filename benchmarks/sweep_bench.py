"""Sweep throughput: cells per minute on 1 and 2 local worker processes, and on a Dask LocalCluster of 2 process
workers, over the bundled history (config/demo.toml's whole [backtest] period); and a 100-cell grid.

    .venv/bin/python -m benchmarks.sweep_bench                 # an 8-cell sample per engine; the 100 cells estimated
    .venv/bin/python -m benchmarks.sweep_bench --cells 4       # a smaller sample (a loaded machine)
    .venv/bin/python -m benchmarks.sweep_bench --full          # also run the 100-cell grid on 2 local workers

Each figure is wall time from submitting the first cell to the last result, worker start-up included (a spawned
worker imports cvxpy and compiles its model once: that start-up is what a small sweep pays and a large one
amortises); the steady rate (after each engine's first result) is printed next to it. The 100-cell figure is
measured with --full, or estimated from the 2-worker sample's steady rate plus its start-up, and says which.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from aggregator.events.logs import configure_logging  # noqa: E402
from aggregator.interfaces.research_inputs import inputs_from_settings  # noqa: E402
from aggregator.research.backtest.inputs import BacktestInputs  # noqa: E402
from aggregator.research.sweep.engines import Dask, Engine, Local  # noqa: E402
from aggregator.research.sweep.grid import Grid  # noqa: E402
from aggregator.research.sweep.run import run_sweep  # noqa: E402
from aggregator.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (0.05, 0.055, 0.06, 0.065, 0.07, 0.075, 0.08, 0.09)
FULL = Grid(
    axes=(
        ("cvar_budget", (0.05, 0.055, 0.06, 0.07, 0.08)),
        ("risk_aversion", (0.0, 0.025, 0.05, 0.1, 0.2)),
        ("trade_cost_multiple", (1.0, 2.0)),
        ("prior_scale", (1.0, 2.0)),
    )
)


@dataclass(frozen=True)
class Measured:
    label: str
    cells: int
    failed: int
    seconds: float
    first: float  # seconds to the first result: start-up plus one cell
    cpu: float  # mean CPU seconds of a cell in its worker

    @property
    def per_minute(self) -> float:
        return self.cells / self.seconds * 60.0

    @property
    def steady_per_minute(self) -> float:
        rest = self.seconds - self.first
        return (self.cells - 1) / rest * 60.0 if self.cells > 1 and rest > 0 else float("nan")


def measure(label: str, inputs: BacktestInputs, grid: Grid, engine: Engine) -> Measured:
    t0 = time.perf_counter()
    first: list[float] = []
    result = run_sweep(inputs, grid, engine, on_result=lambda _: first.append(time.perf_counter() - t0))
    seconds = time.perf_counter() - t0
    cpu = sum(r.cpu_seconds for r in result.results) / max(1, len(result.results))
    m = Measured(label, len(result.results), len(result.failed), seconds, first[0] if first else seconds, cpu)
    wall = sum(r.seconds for r in result.results) / max(1, len(result.results))
    print(
        f"{label:<34} {m.cells:>4} cells  {seconds:7.1f} s  {m.per_minute:6.1f} cells/min  "
        f"(steady {m.steady_per_minute:6.1f}/min; first result after {m.first:.1f} s; a cell {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU)  failed {m.failed}",
        flush=True,
    )
    return m


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "demo.toml")
    parser.add_argument(
        "--cells", type=int, default=8, help="cells in the sample grid (CVaR budgets), 2 to 8"
    )
    parser.add_argument("--full", action="store_true", help="run the 100-cell grid on 2 local workers")
    parser.add_argument("--no-cluster", action="store_true", help="skip the Dask LocalCluster")
    args = parser.parse_args()
    configure_logging("warning", "json")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its start-up chatter
    settings = load_settings(args.config)
    assert settings.backtest is not None
    bt = settings.backtest
    inputs = inputs_from_settings(settings)
    n = max(2, min(args.cells, len(BUDGETS)))
    sample = Grid(axes=(("cvar_budget", BUDGETS[:n]),))
    print(
        f"bundled history {bt.start} → {bt.end} ({(bt.end - bt.start).days + 1} days), {n}-cell sample "
        f"(cvar_budget {', '.join(f'{b:g}' for b in BUDGETS[:n])}); {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    one = measure("1 local worker", inputs, sample, Local(1))
    two = measure("2 local workers", inputs, sample, Local(2))
    print(
        f"scaling 1 → 2 local workers: {two.per_minute / one.per_minute:.2f}× overall, "
        f"{two.steady_per_minute / one.steady_per_minute:.2f}× steady",
        flush=True,
    )
    if not args.no_cluster:
        from distributed import Client, LocalCluster  # noqa: PLC0415 (only with the cluster case)

        t0 = time.perf_counter()
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc,
            Client(lc) as client,
        ):
            print(
                f"LocalCluster of 2 process workers started in {time.perf_counter() - t0:.1f} s", flush=True
            )
            cl = measure("Dask LocalCluster, 2 workers", inputs, sample, Dask(client))
            print(f"LocalCluster against 2 local workers: {cl.per_minute / two.per_minute:.2f}×", flush=True)
    if args.full:
        full = measure("100-cell grid, 2 local workers", inputs, FULL, Local(2))
        print(f"100-cell grid MEASURED: {full.seconds / 60:.1f} min on 2 local workers", flush=True)
    else:
        estimate = two.first + (FULL.size - 1) / two.steady_per_minute * 60.0
        print(
            f"100-cell grid ESTIMATED from the 2-worker sample (start-up {two.first:.1f} s + 99 cells at "
            f"{two.steady_per_minute:.1f}/min): {estimate / 60:.1f} min on 2 local workers (--full runs it)",
            flush=True,
        )
    idle = FULL.size * two.cpu / 2 / 60.0
    print(
        f"100-cell grid on 2 otherwise idle cores, ESTIMATED from CPU time ({two.cpu:.1f} s a cell, 2 at a time, "
        f"start-up not counted): {idle:.1f} min",
        flush=True,
    )


if __name__ == "__main__":
    main()
