"""Run a sweep: every cell on an engine, each result written as it arrives, then the table and the frontier.

Files in the output folder (the same grid and config give the same bytes, whatever the engine and the finishing
order; timings are logged and printed, never written):

- `cells/<id>.json`: one cell's parameters and its backtest summary (the backtest's `summary.json`), written as
  soon as the cell finishes; a failed cell's file has its error instead;
- `sweep.csv` and `sweep.json`: the table, one row per cell in grid order (parameters, the optimizer's realised
  net yield, CVaR on exposed capital, costs, turnover, legs, days in limits, drawdown; or the error);
- `frontier-cvar.png`, `frontier-costs.png`: realised net yield against mean CVaR and against costs, every cell
  a point, the cells no other cell beats on both axes joined as the frontier.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from aggregator.core import strictjson
from aggregator.research.backtest.inputs import BacktestInputs
from aggregator.research.sweep.cell import METRICS, CellResult, CellTask
from aggregator.research.sweep.engines import Engine
from aggregator.research.sweep.grid import AXES, Grid
from aggregator.research.sweep.plots import frontier

log = structlog.get_logger(__name__)

TABLE_DIGITS = 9
"""A worker that re-solves its compiled model for a later cell warm-starts the solver, so a cell's figures can differ
from a fresh compile's in the last bits (about 1e-15 relative on the test grid); the table keeps 9 significant digits."""


@dataclass(frozen=True)
class Sweep:
    grid: Grid
    results: tuple[CellResult, ...]  # in grid order
    seconds: float
    engine: str
    files: dict[str, Path]

    @property
    def failed(self) -> tuple[CellResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def cells_per_minute(self) -> float:
        return len(self.results) / self.seconds * 60.0 if self.seconds > 0 else float("inf")


def tasks_for(inputs: BacktestInputs, grid: Grid) -> list[CellTask]:
    return [CellTask(inputs=inputs, grid=grid, cell=c) for c in grid.cells()]


def run_sweep(
    inputs: BacktestInputs,
    grid: Grid,
    engine: Engine,
    out: Path | None = None,
    on_result: Callable[[CellResult], None] | None = None,
) -> Sweep:
    """Every cell of `grid` on `engine`; with `out`, the files above. `on_result` sees each result as it lands."""
    tasks = tasks_for(inputs, grid)
    log.info("sweep_started", cells=len(tasks), axes=[n for n, _ in grid.axes], engine=engine.label)
    t0 = time.perf_counter()
    got: dict[int, CellResult] = {}
    for r in engine.run(tasks):
        got[r.index] = r
        if out is not None:  # the folder appears with the first result: a sweep that cannot start leaves none
            (out / "cells").mkdir(parents=True, exist_ok=True)
            _write(out / "cells" / f"{r.id}.json", strictjson.dumps(cell_record(r), indent=2, sort_keys=True))
        if r.ok:
            log.info(
                "sweep_cell_finished",
                cell=r.id,
                params=r.params,
                net_yield=round(r.metrics.get("net_yield", float("nan")), 6),
                seconds=round(r.seconds, 3),
                worker=r.worker,
                done=len(got),
                cells=len(tasks),
            )
        else:
            log.error(
                "sweep_cell_failed",
                cell=r.id,
                params=r.params,
                error=r.error,
                done=len(got),
                cells=len(tasks),
            )
        if on_result is not None:
            on_result(r)
    seconds = time.perf_counter() - t0
    results = tuple(got[i] for i in sorted(got))
    files: dict[str, Path] = {}
    if out is not None:
        files = write_outputs(grid, results, out)
    sweep = Sweep(grid=grid, results=results, seconds=seconds, engine=engine.label, files=files)
    log.info(
        "sweep_completed",
        cells=len(results),
        failed=len(sweep.failed),
        seconds=round(seconds, 3),
        cells_per_minute=round(sweep.cells_per_minute, 2),
        engine=engine.label,
    )
    return sweep


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
    tmp.replace(path)


def cell_record(r: CellResult) -> dict[str, Any]:
    base: dict[str, Any] = {"cell": r.id, "params": r.params}
    if not r.ok:
        return base | {"error": r.error}
    return base | {"metrics": r.metrics, "summary": r.summary}


def _sig(value: float | None) -> float | None:
    """A figure to TABLE_DIGITS significant digits: the table is the same bytes whichever worker ran a cell."""
    return None if value is None else float(f"{value:.{TABLE_DIGITS}g}")


def table_rows(grid: Grid, results: tuple[CellResult, ...]) -> list[dict[str, Any]]:
    names = [n for n, _ in grid.axes]
    rows = []
    for r in results:
        row: dict[str, Any] = {"cell": r.id}
        row |= {n: ("none" if r.params[n] is None else r.params[n]) for n in names}
        row |= {m: _sig(r.metrics.get(m)) for m in METRICS}
        row["error"] = (r.error or "").splitlines()[0] if r.error else ""
        rows.append(row)
    return rows


def write_outputs(grid: Grid, results: tuple[CellResult, ...], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(grid, results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["cell"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    files = {"table": out / "sweep.csv", "json": out / "sweep.json"}
    _write(files["table"], buf.getvalue())
    data = {
        "axes": {n: [("none" if v is None else v) for v in vs] for n, vs in grid.axes},
        "axis_meaning": {n: AXES[n].where for n, _ in grid.axes},
        "period": {
            "start": None if grid.start is None else str(grid.start),
            "end": None if grid.end is None else str(grid.end),
        },
        "cells": rows,
        "failed": [r.id for r in results if not r.ok],
    }
    _write(files["json"], strictjson.dumps(data, indent=2, sort_keys=True))
    files |= frontier(grid, results, out)
    return files


def load_table(out: Path) -> list[dict[str, Any]]:
    """The rows of a written `sweep.json` (for tests and tools)."""
    rows: list[dict[str, Any]] = json.loads((out / "sweep.json").read_text())["cells"]
    return rows
