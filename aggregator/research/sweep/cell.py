"""One sweep cell, as a worker process runs it: the backtest at the cell's inputs, reduced to what the sweep keeps.

A worker process keeps one `ModelCache` for its life: the compiled model depends only on the universe (the risk
priors) and the limits' shape, and the cell's budget, λ, horizon, turnover cap and no-trade band are parameters of
it, so a worker compiles once per prior scale and re-solves for every later cell. cvxpy is not thread-safe: the
cells of one process run one at a time (a lock), whatever the number of threads its engine gives it.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from aggregator.events.logs import configure_logging
from aggregator.research.backtest.inputs import BacktestInputs
from aggregator.research.backtest.report import summary
from aggregator.research.backtest.run import backtest
from aggregator.research.sweep.grid import Cell, Grid, Value, cell_inputs
from optimizer import ModelCache

OPTIMIZER_PREFIX = "optimizer "
METRICS = (
    "net_yield",
    "cvar_mean",
    "cvar_max",
    "costs_bps",
    "costs_eth",
    "turnover",
    "trades",
    "reversed_within_14d",
    "within_limits",
    "worst_drawdown",
)

_CACHE = ModelCache()
_LOCK = threading.Lock()
_LOGS_SET = False


@dataclass(frozen=True)
class CellTask:
    """What a worker needs for one cell (pickled to a local process or a Dask worker)."""

    inputs: BacktestInputs  # the config's, built at the edge; the cell's values are applied in the worker
    grid: Grid
    cell: Cell
    quiet_logs: bool = True  # a worker process logs warnings and up only, on stderr (its stdout is not ours)


@dataclass(frozen=True)
class CellResult:
    index: int
    id: str
    params: dict[str, Value]
    metrics: dict[str, float] = field(
        default_factory=dict
    )  # the cell's optimizer row (units as the backtest's)
    summary: dict[str, Any] = field(default_factory=dict)  # the backtest's summary.json of this cell
    error: str | None = None  # the exception, with its traceback's last frames, when the cell failed
    seconds: float = 0.0
    cpu_seconds: float = (
        0.0  # the worker process's CPU time for the cell (its wall time less waiting for a core)
    )
    worker: str = ""  # host:pid
    compiled: int = 0  # models this cell compiled (0: it reused its worker's)

    @property
    def ok(self) -> bool:
        return self.error is None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _quiet_logs() -> None:
    global _LOGS_SET  # noqa: PLW0603 (once per worker process)
    if _LOGS_SET:
        return
    configure_logging("warning", "json", sys.stderr)
    _LOGS_SET = True


def failed(cell: Cell, error: str, *, seconds: float = 0.0, worker: str = "") -> CellResult:
    return CellResult(
        index=cell.index, id=cell.id, params=cell.values, error=error, seconds=seconds, worker=worker
    )


def run_cell(task: CellTask) -> CellResult:
    """Run one cell; an exception is returned as the cell's error, never raised, so the others go on."""
    with _LOCK:
        if task.quiet_logs:
            _quiet_logs()
        t0, c0 = time.perf_counter(), time.process_time()
        before = len(_CACHE.models)
        try:
            inputs = cell_inputs(task.inputs, task.grid, task.cell)
            result = backtest(inputs, cache=_CACHE)
            data = summary(result)
        except Exception as exc:  # a cell's failure is reported with the cell; the sweep goes on
            lines = traceback.format_exception(exc)
            return failed(
                task.cell,
                f"{type(exc).__name__}: {exc}\n{''.join(lines[-4:])}".strip(),
                seconds=time.perf_counter() - t0,
                worker=worker_id(),
            )
        rows = [s for s in data["strategies"] if s["name"].startswith(OPTIMIZER_PREFIX)]
        metrics = {k: float(rows[0][k]) for k in METRICS} if rows else {}
        return CellResult(
            index=task.cell.index,
            id=task.cell.id,
            params=task.cell.values,
            metrics=metrics,
            summary=data,
            seconds=time.perf_counter() - t0,
            cpu_seconds=time.process_time() - c0,
            worker=worker_id(),
            compiled=len(_CACHE.models) - before,
        )
