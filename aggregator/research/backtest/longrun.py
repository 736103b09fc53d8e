"""The long history: modelled values where no observation exists, each value marked observed or modelled, and the
ETH.STORE benchmark line.

A `modelled` series (`[[backtest.series]] format = "modelled"`) is ETH.STORE's daily APR × the LST's fitted share
of it (`aggregator.research.backtest.modelled`). It fills a component's value, and what the component earns, only on
days where no observed series of it says anything (after the usual carrying of at most `max_gap_days`): observed
data always wins. `History.modelled[t, k]` marks each filled value, so the report can say, day by day, which values
are observed and which modelled, and which strategies earned modelled yields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from aggregator.research.backtest.modelled import read_dated
from aggregator.settings.backtest import SeriesSettings
from optimizer.structure import FloatArray, Structure

if TYPE_CHECKING:
    from aggregator.research.backtest.history import History, SeriesReport
    from aggregator.research.backtest.replay import Replay
    from optimizer import Universe

Mark = str  # "observed" | "modelled" | "assumption" | "none"


def modelled_values(spec: SeriesSettings, days: Sequence[date]) -> FloatArray:
    """The modelled APR on each day inside the spec's dates, NaN where ETH.STORE has no value or outside them."""
    assert spec.path is not None and spec.column is not None and spec.ratio is not None
    apr = read_dated(Path(spec.path), spec.column)
    return np.array([apr.get(d, math.nan) * spec.ratio if spec.in_time(d) else math.nan for d in days])


def with_modelled(history: History, specs: Sequence[SeriesSettings], report: type[SeriesReport]) -> History:
    """The history with each modelled spec filling its component where nothing observed has a value (values, the
    decision window's lead rows, and what is earned), and `modelled` marking those cells."""
    if not specs:
        return history
    col = {c: k for k, c in enumerate(history.components)}
    values = history.values.copy()
    observed = np.ones_like(values, dtype=bool) if history.observed is None else history.observed.copy()
    earned = None if history.earned is None else history.earned.copy()
    mask = np.zeros(values.shape, dtype=bool)
    lead_values = history.lead_values
    lead_observed = history.lead_observed
    reports = list(history.series)
    for spec in specs:
        if spec.component not in col:
            raise ValueError(
                f"backtest series {spec.component}: no such venue component; valid: {sorted(col)}"
            )
        k = col[spec.component]
        model = modelled_values(spec, history.days)
        fill = np.isnan(values[:, k]) & ~np.isnan(model)
        values[fill, k] = model[fill]
        observed[fill, k] = True  # a model value is new every day: never a carried observation
        mask[fill, k] = True
        if earned is not None:
            gap = np.isnan(earned[:, k]) & ~np.isnan(model)
            earned[gap, k] = model[gap] / 365.0
            mask[gap, k] = True
        if lead_values is not None and lead_observed is not None and len(lead_values):
            lead = len(lead_values)
            lead_days = [history.days[0] - timedelta(days=lead - i) for i in range(lead)]
            lead_model = modelled_values(spec, lead_days)
            lead_fill = np.isnan(lead_values[:, k]) & ~np.isnan(lead_model)
            lead_values = lead_values.copy()
            lead_observed = lead_observed.copy()
            lead_values[lead_fill, k] = lead_model[lead_fill]
            lead_observed[lead_fill, k] = True
        filled = [d for d, m in zip(history.days, mask[:, k], strict=True) if m]
        reports.append(
            report(
                component=spec.component,
                origin=f"MODELLED: ETH.STORE ({Path(spec.path or '').name}) × {spec.ratio:g}",
                observations=len(filled),
                rejected=0,
                first=min(filled, default=None),
                last=max(filled, default=None),
                note=spec.note or "a model where no observed series has a value; observed data wins",
            )
        )
    return dataclasses.replace(
        history,
        values=values,
        observed=observed,
        earned=earned,
        modelled=mask,
        lead_values=lead_values,
        lead_observed=lead_observed,
        series=tuple(reports),
    )


def day_marks(history: History) -> npt.NDArray[np.str_]:
    """[t, k]: "modelled", "assumption" (a `static` value), "observed" (from an observed series, carried or new) or
    "none"."""
    values = history.values
    out = np.where(np.isnan(values), "none", "observed").astype("<U10")
    static = {s.component for s in history.series if s.origin.startswith("static assumption")}
    static -= {s.component for s in history.series if not s.origin.startswith("static assumption")}
    for comp in {*history.assumptions, *static}:
        k = history.components.index(comp)
        out[~np.isnan(values[:, k]), k] = "assumption"
    if history.modelled is not None:
        out[history.modelled] = "modelled"
    return out


def mark_runs(history: History) -> dict[str, list[dict[str, Any]]]:
    """Per component, the days as runs of one mark: [{"from", "to", "mark", "days"}], covering every day."""
    marks = day_marks(history)
    out: dict[str, list[dict[str, Any]]] = {}
    for k, comp in enumerate(history.components):
        runs: list[dict[str, Any]] = []
        for t, day in enumerate(history.days):
            m = str(marks[t, k])
            if runs and runs[-1]["mark"] == m:
                runs[-1]["to"] = str(day)
                runs[-1]["days"] += 1
            else:
                runs.append({"from": str(day), "to": str(day), "mark": m, "days": 1})
        out[comp] = runs
    return out


def modelled_shares(replay: Replay, history: History, universe: Universe | None) -> dict[str, float]:
    """Per strategy, the share of its capital-days exposed to a venue whose yield that day had a modelled part (its
    own component or a parent's, the path it earns along). 0 when nothing was modelled."""
    if history.modelled is None or universe is None or not history.modelled.any():
        return {p.name: 0.0 for p in replay.paths}
    st = Structure(universe)
    col = {c: k for k, c in enumerate(history.components)}
    own = np.zeros(
        (len(history.days), st.n_venues), dtype=bool
    )  # [t, venue]: a component of the venue modelled
    for i, venue in enumerate(universe.venues):
        for c in venue.components:
            k = col.get(f"{venue.id}.{c.name}")
            if k is not None:
                own[:, i] |= history.modelled[:, k]
    along = (own.astype(float) @ np.asarray(st.path, dtype=float).T) > 0  # a venue earns its ancestors' too
    along = along[len(history.days) - len(replay.days) :]  # the history starts the day before the replay
    out: dict[str, float] = {}
    for p in replay.paths:
        w = np.vstack(p.exposure)
        total = float(w.sum())
        out[p.name] = float((w * along[: len(w)]).sum()) / total if total > 0 else 0.0
    return out


def eth_store_line(path: Path, days: Sequence[date]) -> tuple[list[float | None], list[float | None]]:
    """ETH.STORE on the replay's days: the value of 1 ETH staked at its APR from the first day (compounded daily,
    None after a day it does not cover), and its APR (None where it has none)."""
    apr = read_dated(path, "apr")
    value: list[float | None] = []
    rates: list[float | None] = []
    v: float | None = 1.0
    for i, day in enumerate(days):
        a = apr.get(day)
        rates.append(a)
        if i > 0 and v is not None:
            v = None if a is None else v * (1.0 + a / 365.0)
        value.append(v)
    return value, rates


__all__ = ["day_marks", "eth_store_line", "mark_runs", "modelled_shares", "modelled_values", "with_modelled"]
