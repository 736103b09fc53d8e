"""`aggregator sweep`: choose the engine, show progress as cells land, print the table."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aggregator.core.errors import ConfigError
from aggregator.research.sweep.engines import Dask, Engine, Local
from aggregator.research.sweep.run import Sweep, table_rows

if TYPE_CHECKING:
    from rich.console import Console

MAX_WORKERS = 256


def engine_for(workers: int | None, cluster: str | None) -> Engine:
    if cluster is not None:
        if workers is not None:
            raise ConfigError("--workers is for local worker processes; a --cluster has its own workers")
        if (
            not cluster.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://"))
            and ":" not in cluster
        ):
            raise ConfigError(
                f"--cluster {cluster!r}: give the Dask scheduler's address, e.g. tcp://host:8786"
            )
        return Dask(cluster)
    n = workers if workers is not None else max(1, min(os.cpu_count() or 1, 8))
    if not 1 <= n <= MAX_WORKERS:
        raise ConfigError(f"--workers {n}: valid: 1 to {MAX_WORKERS} local worker processes")
    return Local(n)


def _pct(value: Any) -> str:
    return "" if value is None else f"{value * 100:.2f}%"


def render(console: Console, result: Sweep) -> None:
    from rich.table import Table

    names = [n for n, _ in result.grid.axes]
    table = Table(title=f"sweep: {len(result.results)} cells on {result.engine}")
    for head in (
        "cell",
        *names,
        "net yield/yr",
        "CVaR mean/max",
        "costs bp/yr",
        "turnover",
        "legs (rev.)",
        "in limits",
    ):
        table.add_column(head, justify="left" if head == "cell" else "right")
    for row in table_rows(result.grid, result.results):
        params = [str(row[n]) if not isinstance(row[n], float) else f"{row[n]:g}" for n in names]
        if row["error"]:
            table.add_row(row["cell"], *params, f"failed: {row['error'][:60]}", "", "", "", "", "")
            continue
        table.add_row(
            row["cell"],
            *params,
            _pct(row["net_yield"]),
            f"{row['cvar_mean'] * 100:.2f}/{row['cvar_max'] * 100:.2f}%",
            f"{row['costs_bps']:.1f}",
            _pct(row["turnover"]).replace(".00", ""),
            f"{int(row['trades'])} ({int(row['reversed_within_14d'])})",
            f"{row['within_limits'] * 100:.1f}%",
        )
    console.print(table)
