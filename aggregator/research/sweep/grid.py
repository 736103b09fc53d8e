"""The sweep's grid file: which settings vary, over which values, and each cell's backtest inputs.

A grid file is TOML with a `[grid]` table, one key per axis and a list of values (a single value is a list of one),
and an optional `[period]` (`start`, `end`: a part of the config's `[backtest]` period). An axis not named keeps the
config's value. The cells are every combination, in the order of `AXES` and of each list.

    [period]
    start = 2024-03-01
    end = 2024-06-30

    [grid]
    cvar_budget = [0.05, 0.06]       # [limits] cvar_budget
    risk_aversion = [0.05, 0.2]      # [limits] risk_aversion λ (the config's tail_weight is dropped)
    window_days = [7, 14]            # [rates] window_days: the smoothing window decisions see
    trade_cost_multiple = [1, 2]     # [limits] trade_cost_multiple: the no-trade band
    horizon_days = [180, 365]        # [limits] horizon_days
    max_turnover = ["none", 0.5]     # [limits] max_turnover ("none": no cap)
    prior_scale = [0.5, 1, 2]        # every risk node's failure probability p times this

Everything is checked when the file is read, before any cell runs: an unknown key or a bad value is a ConfigError
naming the key, the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aggregator.core.errors import ConfigError
from aggregator.core.tomlfile import read_toml
from aggregator.research.backtest.inputs import BacktestInputs
from optimizer import RiskNode, Universe

MAX_CELLS = 10_000
MAX_GRID_BYTES = 256 * 1024

Value = float | None  # None: "none" (no turnover cap)


@dataclass(frozen=True)
class Axis:
    name: str
    where: str  # what it sets, for messages and the docs
    valid: str  # what a valid value is, for messages
    check: Callable[[object], Value]  # the value as used, or ValueError


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a finite number")
    return float(value)


def _in(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[object], Value]:
    def check(value: object) -> Value:
        x = _number(value)
        if x < lo or x > hi or (lo_open and x == lo):
            raise ValueError("out of range")
        return x

    return check


def _turnover(value: object) -> Value:
    if isinstance(value, str) and value.lower() == "none":
        return None
    return _in(0.0, 1.0)(value)


AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis(
            "cvar_budget",
            "[limits] cvar_budget",
            "a fraction above 0 and at most 1, e.g. 0.06",
            _in(0, 1, lo_open=True),
        ),
        Axis("risk_aversion", "[limits] risk_aversion λ", "a number from 0 to 1000, e.g. 0.05", _in(0, 1000)),
        Axis(
            "window_days",
            "[rates] window_days (smoothing window)",
            "days from 0 to 365, e.g. 14",
            _in(0, 365),
        ),
        Axis(
            "trade_cost_multiple",
            "[limits] trade_cost_multiple (no-trade band)",
            "a number from 1 to 100, e.g. 2",
            _in(1, 100),
        ),
        Axis(
            "horizon_days",
            "[limits] horizon_days",
            "days above 0 and at most 36500, e.g. 365",
            _in(0, 36_500, lo_open=True),
        ),
        Axis(
            "max_turnover", "[limits] max_turnover", 'a fraction from 0 to 1, or "none" for no cap', _turnover
        ),
        Axis(
            "prior_scale",
            "every risk node's p times this",
            "a number above 0 and at most 100 that keeps every node's p at most 1, e.g. 0.5 or 2",
            _in(0, 100, lo_open=True),
        ),
    )
}
SECTIONS = ("grid", "period")


@dataclass(frozen=True)
class Cell:
    """One combination: its position in the grid and the value of every axis the grid names."""

    index: int
    params: tuple[tuple[str, Value], ...]

    @property
    def id(self) -> str:
        return f"c{self.index:04d}"

    @property
    def values(self) -> dict[str, Value]:
        return dict(self.params)


@dataclass(frozen=True)
class Grid:
    axes: tuple[tuple[str, tuple[Value, ...]], ...]
    start: date | None = None
    end: date | None = None

    @property
    def size(self) -> int:
        return math.prod(len(v) for _, v in self.axes)

    def cells(self) -> list[Cell]:
        names = [n for n, _ in self.axes]
        combos = itertools.product(*(v for _, v in self.axes))
        return [Cell(index=i, params=tuple(zip(names, combo, strict=True))) for i, combo in enumerate(combos)]


def load_grid(path: Path, inputs: BacktestInputs) -> Grid:
    """Read and check a grid file against the config it sweeps (ConfigError naming what is wrong)."""
    raw = read_toml(
        path,
        what="grid file",
        hint="pass --grid PATH; config/sweep-demo.toml is an example",
        max_bytes=MAX_GRID_BYTES,
        typical="a grid is a few lines",
    )
    return parse_grid(raw, inputs, where=str(path))


def parse_grid(raw: Mapping[str, Any], inputs: BacktestInputs, *, where: str = "grid") -> Grid:
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; valid: {list(SECTIONS)}")
    table = raw.get("grid")
    if not isinstance(table, dict) or not table:
        raise ConfigError(
            f"{where}: [grid] is missing or empty; name at least one axis with a list of values, "
            f"e.g. cvar_budget = [0.05, 0.06]; valid axes: {list(AXES)}"
        )
    bad = sorted(set(table) - set(AXES))
    if bad:
        raise ConfigError(f"{where}: unknown grid key(s) {bad}; valid: {list(AXES)}")
    axes: list[tuple[str, tuple[Value, ...]]] = []
    for name, axis in AXES.items():  # the order of AXES, whatever the file's
        if name not in table:
            continue
        given = table[name]
        items = given if isinstance(given, list) else [given]
        if not items:
            raise ConfigError(f"{where}: grid.{name} is an empty list; give at least one value: {axis.valid}")
        values: list[Value] = []
        for item in items:
            try:
                values.append(axis.check(item))
            except ValueError as exc:
                raise ConfigError(
                    f"{where}: grid.{name} = {item!r}: {exc}; valid: {axis.valid} ({axis.where})"
                ) from exc
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}: grid.{name} lists a value twice: {items}; give each value once")
        axes.append((name, tuple(values)))
    grid = Grid(axes=tuple(axes), **_period(raw.get("period"), inputs, where))
    if grid.size > MAX_CELLS:
        raise ConfigError(f"{where}: {grid.size} cells; a sweep runs at most {MAX_CELLS} (split the grid)")
    scales = dict(grid.axes).get("prior_scale", ())
    if scales and inputs.universe.nodes:
        worst = max(inputs.universe.nodes, key=lambda n: n.p)
        top = max(s for s in scales if s is not None)
        if worst.p * top > 1.0:
            raise ConfigError(
                f"{where}: grid.prior_scale = {top:g} makes risk node {worst.id!r} fail with p = "
                f"{worst.p * top:g} > 1; valid: at most {1.0 / worst.p:g} for this config"
            )
    for cell in grid.cells()[:1]:  # the combination of the config and the grid validates as the config does
        cell_inputs(inputs, grid, cell)
    return grid


def _period(table: object, inputs: BacktestInputs, where: str) -> dict[str, date]:
    if table is None:
        return {}
    bt = inputs.backtest
    if bt is None:
        raise ConfigError(
            f"{where}: [period] needs the config's [backtest] section (the history to sweep over)"
        )
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [period] must be a table with start and/or end dates")
    bad = sorted(set(table) - {"start", "end"})
    if bad:
        raise ConfigError(f"{where}: unknown [period] key(s) {bad}; valid: ['end', 'start']")
    out: dict[str, date] = {}
    for key in ("start", "end"):
        if key not in table:
            continue
        value = table[key]
        if not isinstance(value, date) or not bt.start <= value <= bt.end:
            raise ConfigError(
                f"{where}: period.{key} = {value!r}; valid: a date (YYYY-MM-DD, unquoted) within the config's "
                f"backtest period {bt.start}..{bt.end}"
            )
        out[key] = value
    if out.get("start", bt.start) >= out.get("end", bt.end):
        raise ConfigError(
            f"{where}: period.start {out.get('start', bt.start)} is not before period.end {out.get('end', bt.end)}"
        )
    return out


def cell_inputs(inputs: BacktestInputs, grid: Grid, cell: Cell) -> BacktestInputs:
    """The config's backtest inputs with the cell's values: validated as the config's own sections are (ConfigError naming the
    cell). The backtest compares one optimizer, the cell's, next to the always-run baselines (equal weight, chase
    yield); the config's fixed books, extra λs and optimizer variants are left out of a sweep."""
    v = cell.values
    limits_changes: dict[str, Any] = {
        k: v[k] for k in ("cvar_budget", "trade_cost_multiple", "horizon_days", "max_turnover") if k in v
    }
    base = inputs.limits.model_dump(exclude_unset=True)
    if "risk_aversion" in v:
        base.pop("tail_weight", None)
        limits_changes["risk_aversion"] = v["risk_aversion"]
    try:
        limits = type(inputs.limits).model_validate({**base, **limits_changes})
        rule = inputs.rule
        window = v.get("window_days")
        if window is not None:  # the axis checks [rates] window_days' range (0..365)
            rule = dataclasses.replace(rule, window_days=float(window))
        universe = inputs.universe
        scale = v.get("prior_scale")
        if scale is not None:
            nodes = tuple(
                RiskNode(id=n.id, p=n.p * scale, lgd=n.lgd, parents=n.parents, cap=n.cap)
                for n in universe.nodes
            )
            universe = Universe(venues=universe.venues, nodes=nodes, stress=universe.stress)
    except ValidationError as exc:
        raise ConfigError(f"grid cell {cell.id} {v}: {exc}") from exc
    bt = inputs.backtest
    if bt is None:
        raise ConfigError(
            "the config has no [backtest] section: a sweep replays its history "
            "(config/demo.toml has a complete example)"
        )
    period = {k: d for k, d in (("start", grid.start), ("end", grid.end)) if d is not None}
    bt = bt.model_copy(update={**period, "fixed": {}, "risk_aversions": (), "optimizers": ()})
    return dataclasses.replace(inputs, limits=limits, rule=rule, universe=universe, backtest=bt)
