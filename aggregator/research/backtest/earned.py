"""What a strategy EARNS in the replay: each component's realised return, day by day.

Decisions see the history's values (filtered to `min_yield..max_yield`, carried, smoothed); what is earned is what
happened, with no filter:
- an exchange-rate series earns its realised growth: day t earns (R_t / R_prev)^(1/k) − 1 for each of the k days
  between two observations (a few missing days share the growth they span); a fall is a loss;
- a series of trailing-window APRs (`window_column`) earns each value over the days it measured, (d − N, d], never
  forward: the latest window first, then earlier windows fill the days not yet covered. Daily windows of N days
  tile the period with every N-th one, so the growth earned is the growth measured;
- a series of daily values earns its value on its own date, as APR (v/365 a day) or APY ((1 + v)^(1/365) − 1 a
  day, compounded once), carried at most `max_gap_days` like the values decisions see;
- a `static` series earns its value between `from` and `until`, nothing outside; a config `static` quote without a
  backtest series earns its value as APR every day.
Several series for one component: the median of those that say something that day. A day nothing covers is NaN:
the replay earns nothing on it and counts the day as unpriced.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from datetime import date, timedelta

import numpy as np

from aggregator.settings.backtest import BacktestSettings, SeriesSettings
from optimizer.structure import FloatArray

DAYS_PER_YEAR = 365.0

# (date, value as read: percent, fraction or rate) rows of a series, and each row's window in days (or None)
Reader = Callable[[SeriesSettings], tuple[list[tuple[date, float]], dict[date, float] | None]]


def daily_rate(annual: float, compounding: str) -> float:
    """One day's return of a yield given per year as APR or APY; NaN when it cannot be (an APY ≤ −100 %)."""
    if compounding == "apr":
        return annual / DAYS_PER_YEAR
    if annual <= -1.0:
        return math.nan
    return float((1.0 + annual) ** (1.0 / DAYS_PER_YEAR) - 1.0)


def _window_growth(annual: float, window: float, compounding: str) -> float:
    """Growth factor over `window` days of a yield measured over that window."""
    if compounding == "apr":
        return 1.0 + annual * window / DAYS_PER_YEAR
    return (1.0 + annual) ** (window / DAYS_PER_YEAR) if annual > -1.0 else math.nan


def series_returns(
    spec: SeriesSettings,
    rows: Sequence[tuple[date, float]],
    windows: dict[date, float] | None,
    days: Sequence[date],
    max_gap_days: int,
) -> FloatArray:
    """One series' realised return per day of `days` (a fraction of one day), NaN where it says nothing."""
    n = len(days)
    index = {d: t for t, d in enumerate(days)}
    out = np.full(n, np.nan)
    if spec.format == "static":
        assert spec.value is not None
        rate = daily_rate(spec.value, spec.compounds)
        return np.array([rate if spec.in_time(d) else 0.0 for d in days])
    if spec.unit == "rate":
        for (d0, r0), (d1, r1) in itertools.pairwise(rows):
            if r0 <= 0 or r1 <= 0:
                continue
            k = (d1 - d0).days
            g = (r1 / r0) ** (1.0 / k) - 1.0
            for i in range(1, k + 1):
                t = index.get(d0 + timedelta(days=i))
                if t is not None:
                    out[t] = g
        return out
    scale = 0.01 if spec.unit == "percent" else 1.0
    if windows is not None:
        for d, v in sorted(rows, reverse=True):  # the latest window first
            width = windows.get(d)
            if width is None or width < 1:
                continue
            growth = _window_growth(v * scale, width, spec.compounds)
            if not growth > 0:
                continue
            g = growth ** (1.0 / width) - 1.0
            for i in range(int(width)):
                t = index.get(d - timedelta(days=i))
                if t is not None and math.isnan(out[t]):
                    out[t] = g
        return out
    ordered = sorted(rows)
    last: tuple[date, float] | None = None
    j = 0
    for t, d in enumerate(days):
        while j < len(ordered) and ordered[j][0] <= d:
            last = ordered[j]
            j += 1
        if last is not None and (d - last[0]).days <= max_gap_days:
            out[t] = daily_rate(last[1] * scale, spec.compounds)
    return out


def earned_table(
    bt: BacktestSettings,
    days: Sequence[date],
    components: Sequence[str],
    assumptions: dict[str, float],
    read: Reader,
) -> FloatArray:
    """[day, component] realised daily return under the rules in the module docstring."""
    col = {c: k for k, c in enumerate(components)}
    out = np.full((len(days), len(components)), np.nan)
    per: dict[str, list[FloatArray]] = {}
    for spec in bt.series:
        rows, windows = read(spec)
        per.setdefault(spec.component, []).append(series_returns(spec, rows, windows, days, bt.max_gap_days))
    for comp, arrays in per.items():
        stacked = np.vstack(arrays)
        has = np.any(~np.isnan(stacked), axis=0)
        if has.any():
            out[has, col[comp]] = np.nanmedian(stacked[:, has], axis=0)
    for comp, value in assumptions.items():
        out[:, col[comp]] = daily_rate(value, "apr")
    return out
