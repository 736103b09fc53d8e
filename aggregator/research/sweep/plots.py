"""The sweep's frontier plots: realised net yield against mean CVaR (exposed capital) and against costs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from aggregator.research.backtest.report import PNG_METADATA
from aggregator.research.sweep.cell import CellResult
from aggregator.research.sweep.grid import Grid

PLOTS = (
    ("frontier-cvar", "cvar_mean", "mean CVaR on exposed capital (%)", 100.0),
    ("frontier-costs", "costs_bps", "costs (bp/yr of the book)", 1.0),
)


def pareto(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The points no other point beats on both axes (lower x, higher y), by x."""
    best: list[tuple[float, float, str]] = []
    for x, y, label in sorted(points, key=lambda p: (p[0], -p[1])):
        if not best or y > best[-1][1]:
            best.append((x, y, label))
    return best


def frontier(grid: Grid, results: tuple[CellResult, ...], out: Path) -> dict[str, Path]:
    ok = [r for r in results if r.ok and r.metrics]
    colour_axis = grid.axes[0][0] if grid.axes else None
    files: dict[str, Path] = {}
    for name, metric, label, scale in PLOTS:
        fig, ax = plt.subplots(figsize=(8, 5))
        points = [(r.metrics[metric] * scale, r.metrics["net_yield"] * 100.0, r.id) for r in ok]
        if colour_axis is not None and ok:
            values = sorted({r.params[colour_axis] for r in ok}, key=lambda v: (v is None, v or 0.0))
            for v in values:
                xs = [r.metrics[metric] * scale for r in ok if r.params[colour_axis] == v]
                ys = [r.metrics["net_yield"] * 100.0 for r in ok if r.params[colour_axis] == v]
                ax.scatter(xs, ys, s=24, label=f"{colour_axis} = {'none' if v is None else f'{v:g}'}")
        front = pareto(points)
        if front:
            ax.plot([p[0] for p in front], [p[1] for p in front], color="black", lw=1, label="frontier")
            for x, y, cell in front:
                ax.annotate(cell, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel("realised net yield (%/yr)")
        ax.set_title(
            f"sweep: {len(ok)} cells"
            + (f", {len(results) - len(ok)} failed" if len(ok) < len(results) else "")
        )
        ax.grid(alpha=0.3)
        if ok:
            ax.legend(fontsize=8)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110, metadata=PNG_METADATA)
        plt.close(fig)
        files[name] = path
    return files
