"""History: the configured series turned into one day-by-component table of values known at the end of each day.

Rules, in order:
- a series' raw observations are read (CSV or a cached DefiLlama chart), rates become yields over `window_days`
  exactly as the `onchain` adapter computes them, and values outside [min_yield, max_yield] or outside the range
  the daemon accepts for the component (`[rates] plausible_*`) are rejected;
- several series for one component combine like several quotes: the median of those with a value that day;
- a value is carried forward at most `max_gap_days` days; after that the component has no value (NaN) until the
  next observation. Nothing is interpolated or invented. `observed` says which values are new that day (not
  carried): decisions estimate over observed values only, and a carried value never justifies an entry;
- a component none of whose quotes is a series but all of whose quotes are `static` assumptions keeps the static
  value for the whole period (it is an assumption, not history, and the report says so).

Row t of `values` only uses observations dated ≤ t. The replay decides on day t from `seen(t − 1, …)`: the
daemon's robust estimate (`aggregator.rates.estimate`) over the observed values of the window ending at row t − 1.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import structlog

from adapters.base import SourceSettings
from adapters.defillama import parse_chart
from adapters.errors import SourceError
from adapters.http import get_json
from adapters.onchain import annualise
from aggregator.core.errors import ConfigError
from aggregator.rates.estimate import DecisionYields, counts, decision_yields
from aggregator.research.backtest.earned import earned_table
from aggregator.research.backtest.inputs import BacktestInputs
from aggregator.research.backtest.longrun import with_modelled
from aggregator.settings.backtest import BacktestSettings, SeriesSettings
from aggregator.settings.rates import InputRule
from optimizer.inputs import Universe
from optimizer.structure import FloatArray

log = structlog.get_logger(__name__)


class HistoryError(ConfigError):
    """A series cannot be read: the file, the column, the rows or the cache; the message says which."""


@dataclass(frozen=True)
class SeriesReport:
    """What one series contributed, for the report."""

    component: str
    origin: str
    observations: int
    rejected: int
    first: date | None
    last: date | None
    note: str = ""


@dataclass(frozen=True)
class History:
    """`values[t, k]`: component k's yield (fraction per year) known at the end of day `days[t]`, or NaN."""

    days: tuple[date, ...]
    components: tuple[str, ...]
    values: FloatArray
    series: tuple[SeriesReport, ...]
    assumptions: dict[str, float] = field(default_factory=dict)
    observed: npt.NDArray[np.bool_] | None = None  # [t, k]: a new value that day (None: every value is new)
    lead_values: FloatArray | None = None  # the rows before days[0] that the first decisions' window reaches
    lead_observed: npt.NDArray[np.bool_] | None = None
    # earned[t, k]: component k's realised return over day t (a fraction of that one day, not annualised), or NaN
    # when nothing says what it earned; None: earn the values themselves as APR (a synthetic history)
    earned: FloatArray | None = None
    # modelled[t, k]: the value (or what is earned) is ETH.STORE × a fitted ratio, not an observation (`longrun`)
    modelled: npt.NDArray[np.bool_] | None = None
    # each component's first observed day in its series (before the period too; None: never observed), so that a
    # decision knows a series that began inside its window (the warm-up rule); None: no such knowledge
    first_observed: tuple[date | None, ...] | None = None

    def index(self, day: date) -> int:
        return (day - self.days[0]).days

    def row(self, t: int) -> dict[str, dict[str, float]]:
        """Row t as the optimizer's `yields` mapping (venue → component → value), missing values left out."""
        out: dict[str, dict[str, float]] = {}
        for k, comp in enumerate(self.components):
            v = self.values[t, k]
            if not math.isnan(v):
                venue, name = comp.split(".", 1)
                out.setdefault(venue, {})[name] = float(v)
        return out

    def seen(self, t: int, universe: Universe, rule: InputRule) -> DecisionYields:
        """What a decision after row t sees, as the daemon would: each component's robust estimate over the values
        observed in rows (t − window_days, t]. A value at t that is only carried, or none at t with observations
        earlier in the window (stale), values a venue but closes it to entries; nothing in the window: no yield,
        the venue held if the component was never observed, exit-only if it was observed before the window
        (`expired`: the replay watches every day, so a series that stopped has gone stale, not warming up). A
        series whose first value lies inside the window is `new` (the warm-up rule of `aggregator.rates.estimate`).
        """
        width = max(1, math.ceil(rule.window_days))
        new: set[tuple[str, str]] = set()
        if self.first_observed is not None:
            window_start = self.days[t] - timedelta(days=width - 1)
            new = {
                tuple(comp.split(".", 1))  # type: ignore[misc]
                for comp, first in zip(self.components, self.first_observed, strict=True)
                if first is not None and window_start <= first <= self.days[t]
            }
        values = self.values
        observed = ~np.isnan(values) if self.observed is None else self.observed
        if self.lead_values is not None and self.lead_observed is not None and len(self.lead_values):
            t += len(self.lead_values)  # the same window, reaching into the rows before the period
            values = np.vstack([self.lead_values, values])
            observed = np.vstack([self.lead_observed, observed])
        lo = max(0, t - width + 1)
        latest: dict[str, dict[str, float]] = {}
        window: dict[tuple[str, str], dict[float, float]] = {}
        carried: set[tuple[str, str]] = set()
        expired: set[tuple[str, str]] = set()
        for k, comp in enumerate(self.components):
            venue, name = comp.split(".", 1)
            key = (venue, name)
            earlier = values[lo:t, k][observed[lo:t, k]]
            if earlier.size:
                window[key] = counts(float(v) for v in earlier)
            value = float(values[t, k])
            if observed[t, k]:
                latest.setdefault(venue, {})[name] = value
            elif not math.isnan(value):
                carried.add(key)
                if not earlier.size:  # carried from before the window: the carried value is all there is
                    latest.setdefault(venue, {})[name] = value
            elif not earlier.size and observed[:lo, k].any():
                expired.add(
                    key
                )  # observed before the window, nothing since: its venue may be sold, not bought
        return decision_yields(
            universe,
            latest,
            window,
            rule,
            carried=frozenset(carried),
            expired=frozenset(expired),
            new=frozenset(new),
        )

    def availability(self) -> dict[str, float]:
        """Share of days each component had a value."""
        return {c: float(np.mean(~np.isnan(self.values[:, k]))) for k, c in enumerate(self.components)}


# ------------------------------------------------------------------------------------------------- reading


def _parse_date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError as exc:
        raise HistoryError(f"{where}: date {text!r} is not YYYY-MM-DD") from exc


def read_csv(spec: SeriesSettings, column: str | None = None) -> list[tuple[date, float]]:
    """(date, value) rows of a CSV series after `where` (its `column`, or another one), oldest first; a repeated
    date is an error."""
    assert spec.path is not None and spec.column is not None
    column = column or spec.column
    path = Path(spec.path)
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            missing = [c for c in ("date", column, *spec.where) if c not in cols]
            if missing:
                raise HistoryError(f"{path}: no column {missing}; the file has {cols}")
            rows: dict[date, float] = {}
            for n, row in enumerate(reader, start=2):
                if any(row[k] != v for k, v in spec.where.items()):
                    continue
                where = f"{path}:{n}"
                day = _parse_date(row["date"], where)
                try:
                    value = float(row[column])
                except ValueError as exc:
                    raise HistoryError(f"{where}: {column} = {row[column]!r} is not a number") from exc
                if day in rows:
                    raise HistoryError(
                        f"{where}: a second row for {day}; narrow the series with `where` (columns {cols})"
                    )
                rows[day] = value
    except FileNotFoundError as exc:
        raise HistoryError(f"backtest series {spec.component}: file not found: {path}") from exc
    return sorted(rows.items())


def chart_path(cache_dir: Path, pool: str) -> Path:
    return cache_dir / "defillama" / f"{pool}.json"


def read_chart(spec: SeriesSettings, cache_dir: Path) -> list[tuple[date, float]]:
    """(date, percent) rows of a cached DefiLlama chart, one per UTC day (the last of a day wins)."""
    assert spec.pool is not None
    path = chart_path(cache_dir, spec.pool)
    if not path.exists():
        raise HistoryError(
            f"backtest series {spec.component}: no cached DefiLlama chart for pool {spec.pool} at {path}; "
            "run `aggregator backtest --download` once with internet access"
        )
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: not JSON ({exc}); delete it and download again") from exc
    try:
        points = parse_chart("defillama", payload, str(path))
    except SourceError as exc:
        raise HistoryError(f"{path}: {exc}") from exc
    rows: dict[date, float] = {}
    for p in points:
        value = p.apy if spec.field == "apy" else p.apy_base
        if value is not None:
            rows[p.timestamp.date()] = value * 100.0
    return sorted(rows.items())


def download_charts(bt: BacktestSettings) -> list[Path]:
    """Fetch every DefiLlama series' `/chart/{pool}` into the cache, as received. Returns the files written."""
    settings = SourceSettings(timeout_seconds=60.0)  # a chart is a few hundred kB
    written: list[Path] = []
    pools = sorted({s.pool for s in bt.series if s.format == "defillama" and s.pool is not None})
    if not pools:
        return written

    async def fetch_all() -> None:
        async with httpx.AsyncClient() as client:
            for pool in pools:
                url = f"{bt.defillama_url.rstrip('/')}/chart/{pool}"
                payload = await get_json(client, "defillama", url, settings)
                parse_chart("defillama", payload, url)  # never cache what we could not read
                path = chart_path(Path(bt.cache_dir), pool)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(payload))
                tmp.replace(path)
                written.append(path)
                log.info("history_downloaded", pool=pool, path=str(path), points=len(payload["data"]))

    asyncio.run(fetch_all())
    return written


def raw_rows(spec: SeriesSettings, cache_dir: Path) -> list[tuple[date, float]]:
    """The series' rows as read (percent, fraction or rate), inside its `from`/`until`; none for a static one."""
    if spec.format == "static":
        return []
    raw = read_chart(spec, cache_dir) if spec.format == "defillama" else read_csv(spec)
    return [(d, v) for d, v in raw if spec.in_time(d)]


def _earned_rows(
    spec: SeriesSettings, cache_dir: Path
) -> tuple[list[tuple[date, float]], dict[date, float] | None]:
    """A series' rows for what is earned (`raw_rows`, nothing filtered) and each row's window, if it has one."""
    rows = raw_rows(spec, cache_dir)
    if spec.window_column is None or spec.format != "csv":
        return rows, None
    return rows, dict(read_csv(spec, spec.window_column))


def trailing_means(rows: list[tuple[date, float]], days: int) -> list[tuple[date, float]]:
    """Each day's mean of the values dated in the last `days` calendar days, where at least half of them have one
    (finite values only): the realised yield of a window of daily returns."""
    by_day = {d: v for d, v in rows if math.isfinite(v)}
    out: list[tuple[date, float]] = []
    for day, _ in rows:
        window = [by_day[d] for k in range(days) if (d := day - timedelta(days=k)) in by_day]
        if 2 * len(window) >= days:
            out.append((day, sum(window) / len(window)))
    return out


def observations(
    spec: SeriesSettings, cache_dir: Path, plausible: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[list[tuple[date, float]], int]:
    """The series as (date, yield fraction) after conversion and validation, and how many values were rejected:
    outside the series' [min_yield, max_yield] or the daemon's `plausible` range for the component."""
    raw = raw_rows(spec, cache_dir)
    if spec.unit == "rate":
        by_day = dict(raw)
        converted: list[tuple[date, float]] = []
        for day, r1 in raw:
            r0 = by_day.get(day - timedelta(days=spec.window_days))
            if r0 is None or r0 <= 0 or r1 <= 0:
                continue
            apr, apy = annualise(r0, r1, spec.window_days * 86400.0)
            converted.append((day, apr if spec.compounds == "apr" else apy))
    else:
        scale = 0.01 if spec.unit == "percent" else 1.0
        converted = [(d, v * scale) for d, v in raw]
        if spec.mean_days is not None:
            converted = trailing_means(converted, spec.mean_days)
    low, high = max(spec.min_yield, plausible[0]), min(spec.max_yield, plausible[1])
    kept = [(d, v) for d, v in converted if math.isfinite(v) and low <= v <= high]
    rejected = len(converted) - len(kept)
    if rejected:
        log.info(
            "history_values_rejected",
            component=spec.component,
            rejected=rejected,
            valid_range=[low, high],
        )
    return kept, rejected


# ------------------------------------------------------------------------------------------------- the table


def _resolve_static(inputs: BacktestInputs, bt: BacktestSettings) -> BacktestSettings:
    """`static` series without a `value` take the config's static quote for their component."""
    config_static = inputs.static
    series = []
    for spec in bt.series:
        if spec.format == "static" and spec.value is None:
            if spec.component not in config_static:
                raise HistoryError(
                    f"backtest series {spec.component}: format 'static' without `value`, and the config has no "
                    f"`static` quote for it; give `value` (a fraction per year) or use one of "
                    f"{sorted(config_static)}"
                )
            series.append(spec.model_copy(update={"value": config_static[spec.component]}))
        else:
            series.append(spec)
    return bt.model_copy(update={"series": tuple(series)})


def build_history(inputs: BacktestInputs, bt: BacktestSettings) -> History:
    """The day-by-component table for [bt.start − 1 day, bt.end] under the rules in the module docstring, and
    before it the rows the first decisions' window reaches back to (`lead`)."""
    bt = _resolve_static(inputs, bt)
    models = [
        s for s in bt.series if s.format == "modelled"
    ]  # filled in last, where nothing observed has a value
    bt = bt.model_copy(update={"series": tuple(s for s in bt.series if s.format != "modelled")})
    first = bt.start - timedelta(days=1)  # known before the first decision
    period = (bt.end - first).days + 1
    lead = max(0, math.ceil(inputs.window_days) - 1)
    days = tuple(first + timedelta(days=i) for i in range(-lead, period))
    components = inputs.components
    col = {c: k for k, c in enumerate(components)}
    n_days = len(days)
    per_series: dict[str, list[FloatArray]] = {}
    per_series_new: dict[str, list[npt.NDArray[np.bool_]]] = {}
    first_seen: dict[str, date] = {}
    reports: list[SeriesReport] = []
    for spec in bt.series:
        if spec.format == "static":
            assert spec.value is not None
            per_series.setdefault(spec.component, []).append(
                np.array([spec.value if spec.in_time(d) else 0.0 for d in days])
            )
            # an assumption holds every day (0 outside its dates): it is never a carried observation
            per_series_new.setdefault(spec.component, []).append(np.ones(n_days, dtype=bool))
            first_seen[spec.component] = date.min  # an assumption: known all along, never new
            bounds = f"from {spec.from_ or 'the start'} until {spec.until or 'the end'}, 0 outside"
            reports.append(
                SeriesReport(
                    component=spec.component,
                    origin=f"static assumption {spec.value:g}/yr {bounds}",
                    observations=sum(spec.in_time(d) for d in days),
                    rejected=0,
                    first=spec.from_,
                    last=spec.until,
                    note=spec.note,
                )
            )
            continue
        obs, rejected = observations(spec, Path(bt.cache_dir), inputs.plausible_for(spec.component))
        if obs:
            began = min(d for d, _ in obs)
            first_seen[spec.component] = min(first_seen.get(spec.component, began), began)
        carried = np.full(n_days, np.nan)
        new = np.zeros(n_days, dtype=bool)
        last_day: date | None = None
        last_value = math.nan
        it = iter(obs)
        nxt = next(it, None)
        for t, day in enumerate(days):
            while nxt is not None and nxt[0] <= day:
                last_day, last_value = nxt
                nxt = next(it, None)
            if last_day is not None and (day - last_day).days <= bt.max_gap_days:
                carried[t] = last_value
                new[t] = last_day == day
        per_series.setdefault(spec.component, []).append(carried)
        per_series_new.setdefault(spec.component, []).append(new)
        origin = Path(spec.path).name if spec.path is not None else f"DefiLlama /chart/{spec.pool}"
        in_range = [d for d, _ in obs if first - timedelta(days=bt.max_gap_days) <= d <= bt.end]
        reports.append(
            SeriesReport(
                component=spec.component,
                origin=origin + (f" where {spec.where}" if spec.where else ""),
                observations=len(in_range),
                rejected=rejected,
                first=min(in_range, default=None),
                last=max(in_range, default=None),
                note=spec.note,
            )
        )
    values = np.full((n_days, len(components)), np.nan)
    observed = np.zeros((n_days, len(components)), dtype=bool)
    for comp, news in per_series_new.items():
        observed[:, col[comp]] = np.any(np.vstack(news), axis=0)
    for comp, arrays in per_series.items():
        with np.errstate(all="ignore"):
            stacked = np.vstack(arrays)
            counts = np.sum(~np.isnan(stacked), axis=0)
            med = np.full(n_days, np.nan)
            has = counts > 0
            if has.any():
                med[has] = np.nanmedian(stacked[:, has], axis=0)
        values[:, col[comp]] = med
    assumptions = {c: v for c, v in inputs.static.items() if c not in per_series}
    for comp, value in assumptions.items():
        values[:, col[comp]] = value
        observed[:, col[comp]] = True  # an assumption holds every day; it is not a carried observation
    earned = earned_table(
        bt, days[lead:], components, assumptions, lambda spec: _earned_rows(spec, Path(bt.cache_dir))
    )
    history = History(
        days=days[lead:],
        components=components,
        values=values[lead:],
        series=tuple(reports),
        assumptions=assumptions,
        observed=observed[lead:],
        lead_values=values[:lead],
        lead_observed=observed[:lead],
        earned=earned,
        # an assumption or a modelled series is known all along: never new
        first_observed=tuple(
            date.min if c in assumptions or c in {m.component for m in models} else first_seen.get(c)
            for c in components
        ),
    )
    try:
        return with_modelled(history, models, SeriesReport)
    except ValueError as exc:
        raise HistoryError(str(exc)) from exc
