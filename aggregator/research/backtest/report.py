"""The backtest report: `summary.json`, PNG plots (matplotlib, Agg) and `report.html` linking them.

Deterministic: the same inputs give the same bytes (no timestamps, fixed PNG metadata, sorted keys).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from aggregator.research.backtest.incidents import INCIDENTS, MAX_DAYS_AFTER_WINDOW, replay_incidents
from aggregator.research.backtest.longrun import eth_store_line, mark_runs, modelled_shares
from aggregator.research.backtest.run import Backtest
from aggregator.research.backtest.table import TABLE_HEAD, pct, rows

PNG_METADATA = {"Software": None}  # no matplotlib version stamp: the same run gives the same bytes


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("λ=", "lambda-")).strip("-")


def summary(b: Backtest) -> dict[str, Any]:
    days = b.replay.days
    return long_window(b) | {
        "period": {"start": str(days[0]), "end": str(days[-1]), "days": len(days)},
        "start_eth": b.replay.start_eth,
        "rebalance_every_days": b.settings.rebalance_every_days,
        "max_gap_days": b.settings.max_gap_days,
        "start_from": b.settings.start_from,
        "risk_aversions": list(b.risk_aversions),
        "optimizers": [{"name": o.name, "limits": o.limits} for o in b.settings.optimizers],
        "cvar_budget": b.cvar_budget,
        "drift_tolerance": b.replay.drift_tolerance,
        "stress": [{"node": e.node, "on": str(e.on), "loss": e.loss} for e in b.stress],
        "incidents": [] if b.universe is None else replay_incidents(b.replay, b.universe),
        "series": [
            {
                "component": s.component,
                "origin": s.origin,
                "observations": s.observations,
                "rejected": s.rejected,
                "first": None if s.first is None else str(s.first),
                "last": None if s.last is None else str(s.last),
                "note": s.note,
            }
            for s in b.history.series
        ],
        "assumptions": b.history.assumptions,
        "availability": {k: round(v, 6) for k, v in b.history.availability().items()},
        "strategies": [
            {
                "name": r.name,
                "final_eth": r.final_eth,
                "net_yield": r.net_yield,
                "costs_eth": r.costs_eth,
                "costs_bps": r.costs_bps,
                "turnover": r.turnover,
                "trades": r.trades,
                "reversed_within_14d": r.reversed,
                "plans": r.plans,
                "planned_turnover": r.planned_turnover,
                "decisions": r.decisions,
                "worst_drawdown": r.worst_drawdown,
                "within_limits": r.within_limits,
                "cvar_within_budget": r.cvar_within_budget,
                "cvar_mean": r.cvar_mean,
                "cvar_max": r.cvar_max,
                "stress_loss_eth": r.stress_loss_eth,
                "unpriced_days": r.unpriced_days,
                "broken_days": r.broken,
            }
            for r in b.results
        ],
    }


def long_window(b: Backtest) -> dict[str, Any]:
    """What the long history adds to summary.json: each component's days marked observed, modelled, assumption or
    none (runs covering every day of the history), each strategy's share of capital-days on modelled yields, and the
    ETH.STORE benchmark line (value of 1 ETH staked at its APR, and the APR) when the config names it."""
    out: dict[str, Any] = {
        "marks": mark_runs(b.history),
        "modelled_share": modelled_shares(b.replay, b.history, b.universe),
    }
    if b.settings.eth_store is not None:
        value, apr = eth_store_line(Path(b.settings.eth_store), b.replay.days)
        out["eth_store"] = {
            "source": Path(b.settings.eth_store).name,
            "days": [str(d) for d in b.replay.days],
            "value": value,
            "apr": apr,
        }
    return out


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110, metadata=PNG_METADATA)
    plt.close(fig)


def plots(b: Backtest, out: Path) -> dict[str, Path]:
    """Cumulative value of every strategy, yield per venue, and each strategy's allocation as stacked areas."""
    rp = b.replay
    x = np.array(rp.days, dtype="datetime64[D]")
    files: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(10, 5))
    for p in rp.paths:
        ax.plot(x, np.asarray(p.values) / rp.start_eth, label=p.name, linewidth=1.4)
    line = _eth_store(b)
    if line is not None:
        ax.plot(x, line[0], label="ETH.STORE (network staking APR, benchmark)", color="black", linewidth=1.2)
    for e in b.stress:
        ax.axvline(np.datetime64(e.on, "D"), color="black", linestyle=":", linewidth=1)  # type: ignore[arg-type]
        ax.annotate(f"{e.node} fails", (np.datetime64(e.on, "D"), ax.get_ylim()[1]), fontsize=8, va="top")
    for inc in INCIDENTS:
        if rp.days[0] < inc.on <= rp.days[-1]:
            ax.axvline(np.datetime64(inc.on, "D"), color="red", linestyle="--", linewidth=1)  # type: ignore[arg-type]
            ax.annotate(inc.name, (np.datetime64(inc.on, "D"), ax.get_ylim()[0]), fontsize=8, color="red")
    later = [inc for inc in INCIDENTS if 0 < (inc.on - rp.days[-1]).days <= MAX_DAYS_AFTER_WINDOW]
    for k, inc in enumerate(later):
        ax.annotate(
            f"{inc.name} on {inc.on}: {(inc.on - rp.days[-1]).days} days after this last day, "
            "replayed on the last book",
            (0.99, 0.03 + 0.05 * k),
            xycoords="axes fraction",
            ha="right",
            fontsize=8,
            color="red",
        )
    ax.set_title("Value of 1 ETH invested at the start (after costs)")
    ax.set_ylabel("ETH")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    files["value"] = out / "value.png"
    _save(fig, files["value"])

    fig, ax = plt.subplots(figsize=(10, 5))
    for i, venue in enumerate(rp.venues):
        series = rp.venue_yield[:, i]
        if np.all(np.isnan(series)) or np.nanmax(np.abs(series)) == 0:
            continue
        ax.plot(x, series * 100.0, label=venue, linewidth=1)
    if line is not None:
        ax.plot(x, line[1] * 100.0, label="ETH.STORE (benchmark)", color="black", linewidth=1.2)
    modelled = _modelled_spans(b)
    for lo, hi in modelled:
        ax.axvspan(np.datetime64(lo, "D"), np.datetime64(hi, "D"), color="grey", alpha=0.12, linewidth=0)  # type: ignore[arg-type]
    if modelled:
        ax.annotate(
            "grey: some value is MODELLED (ETH.STORE × fitted ratio)",
            (0.01, 0.01),
            xycoords="axes fraction",
            fontsize=8,
        )
    ax.set_title("Net yield per venue as the data gives it (gaps: no value)")
    ax.set_ylabel("% per year")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.autofmt_xdate()
    files["yields"] = out / "yields.png"
    _save(fig, files["yields"])

    for p in rp.paths:
        w = np.vstack(p.exposure)
        used = [i for i in range(w.shape[1]) if w[:, i].max() > 1e-6]
        fig, ax = plt.subplots(figsize=(10, 4.5))
        ax.stackplot(x, *(w[:, i] * 100.0 for i in used), labels=[rp.venues[i] for i in used])
        ax.set_ylim(0, 100)
        ax.set_title(f"Exposure over time (queued capital at the venue it left): {p.name}")
        ax.set_ylabel("% of the book")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.autofmt_xdate()
        fig.tight_layout()
        key = f"allocation-{slug(p.name)}"
        files[key] = out / f"{key}.png"
        _save(fig, files[key])
    return files


def incidents_plot(incidents: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """incidents.png: per incident, every strategy's stake and its loss sold at the low or held, titled with the
    basis (the book of the day before, or the window's last book N days before); an incident not replayed says why."""
    if not incidents:
        return {}
    fig, axes = plt.subplots(len(incidents), 1, figsize=(10, 2.6 * len(incidents)), squeeze=False)
    for ax, inc in zip(axes[:, 0], incidents, strict=True):
        if not inc["replayed"]:
            ax.set_title(f"{inc['name']} ({inc['on']}): not replayed", fontsize=9)
            ax.text(0.5, 0.5, inc["why"], ha="center", va="center", fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
            continue
        rows_ = inc["strategies"]
        y = np.arange(len(rows_))
        h = 0.27
        stake = [r["at_stake_eth"] for r in rows_]
        ax.barh(y - h, stake, h, label="at stake", color="#9ecae1")
        ax.barh(y, [r["loss_if_sold_eth"] for r in rows_], h, label="loss sold at the low", color="#fd8d3c")
        ax.barh(y + h, [r["loss_if_held_eth"] for r in rows_], h, label="loss held", color="#cb181d")
        ax.set_yticks(y, [r["strategy"] for r in rows_], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{inc['name']} ({inc['on']}): {inc['basis']} ({inc['book_day']})", fontsize=9)
        ax.set_xlabel("ETH", fontsize=8)
        if max(stake, default=0.0) <= 0.0:
            ax.set_xlim(0, 1)
            ax.text(
                0.5, 0.5, "nothing at stake in any strategy", ha="center", fontsize=8, transform=ax.transAxes
            )
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "incidents.png"
    _save(fig, path)
    return {"incidents": path}


def _eth_store(b: Backtest) -> tuple[Any, Any] | None:
    """The ETH.STORE benchmark as float arrays (NaN where it has no value): value of 1 ETH, APR."""
    if b.settings.eth_store is None:
        return None
    value, apr = eth_store_line(Path(b.settings.eth_store), b.replay.days)
    return _floats(value), _floats(apr)


def _floats(xs: Sequence[float | None]) -> Any:
    return np.array([np.nan if v is None else v for v in xs], dtype=float)


def _modelled_spans(b: Backtest) -> list[tuple[Any, Any]]:
    """Runs of replay days on which some component's value is modelled."""
    if b.history.modelled is None:
        return []
    offset = len(b.history.days) - len(b.replay.days)
    any_day = [bool(v) for v in np.asarray(b.history.modelled[offset:]).any(axis=1).ravel().tolist()]
    spans: list[tuple[Any, Any]] = []
    for day, on in zip(b.replay.days, any_day, strict=True):
        if on and spans and (day - spans[-1][1]).days == 1:
            spans[-1] = (spans[-1][0], day)
        elif on:
            spans.append((day, day))
    return spans


def write(b: Backtest, out: Path) -> dict[str, Path]:
    """Write summary.json, the PNGs and report.html into `out`; returns every file written."""
    out.mkdir(parents=True, exist_ok=True)
    data = summary(b)
    files = {"summary": out / "summary.json"}
    files["summary"].write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    files.update(plots(b, out))
    files.update(incidents_plot(data["incidents"], out))
    files["report"] = out / "report.html"
    files["report"].write_text(_html(b, data, files))
    return files


def _table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _html(b: Backtest, data: dict[str, Any], files: dict[str, Path]) -> str:
    period = data["period"]
    series = [
        (
            s["component"],
            s["origin"],
            str(s["observations"]),
            str(s["rejected"]),
            f"{s['first']} → {s['last']}",
            s["note"],
        )
        for s in data["series"]
    ]
    series += [(c, "static assumption from the config", "", "", "constant", "") for c in data["assumptions"]]
    avail = [(c, pct(v, 0)) for c, v in data["availability"].items()]
    broken = [(r.name, "; ".join(f"{k} ({v} d)" for k, v in r.broken.items()) or "none") for r in b.results]
    stress = "".join(
        f"<li>{html.escape(e.node)} fails on {e.on}"
        + ("" if e.loss is None else f", losing {e.loss * 100:g} %")
        + "</li>"
        for e in b.stress
    )
    incidents = _incidents_html(data["incidents"])
    images = "".join(
        f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(k)}"></figure>'
        for k, p in files.items()
        if p.suffix == ".png"
    )
    budget = "none" if b.cvar_budget is None else pct(b.cvar_budget)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest {period["start"]} → {period["end"]}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Backtest {period["start"]} → {period["end"]} ({period["days"]} days)</h1>
<p>{b.replay.start_eth:,.0f} ETH, starting from {html.escape(b.settings.start_from)}; a decision every
{b.settings.rebalance_every_days} day(s), each from the data known the day before; moves pay the config's entry and
exit costs and gas; exits wait in their queue earning nothing; each venue earns what happened (realised
exchange-rate growth, trailing-window APRs over the days they measured, APY compounded once, negative returns
included) after haircuts. CVaR budget {budget}; CVaR and every limit are checked daily on exposed capital (capital in
an exit queue counted at the venue it left) allowing a drift of {pct(b.replay.drift_tolerance)} of the book (the
config's <code>drift_band</code>). Optimizer risk aversions: {", ".join(f"{x:g}" for x in b.risk_aversions)}.</p>
{f"<h2>Stress</h2><ul>{stress}</ul>" if stress else ""}
{incidents}
<h2>Results</h2>
{_table(TABLE_HEAD, rows(b))}
<p>Turnover is the share of the book moved by executed legs, summed over the period; legs are executed orders
(one withdrawal or deposit each), in brackets those undone by an opposite leg on the same venue within 14 days;
costs in bp/yr of the starting book. Days a held venue had no realised return accrue nothing.</p>
<h2>Limits broken (days)</h2>
{_table(("strategy", "limits broken"), broken)}
<h2>Data</h2>
{_table(("component", "source", "values in range", "rejected", "range", "note"), series)}
{_marks_html(data)}
<p>Values are carried at most {b.settings.max_gap_days} day(s); after that a venue is unavailable until its next
value. Share of days with a value:</p>
{_table(("component", "available"), avail)}
<p>Not replayed: the cross-source disagreement flag and one-source jump quarantine (one series per component).</p>
<h2>Plots</h2>
{images}
</body></html>
"""


def _incidents_html(incidents: list[dict[str, Any]]) -> str:
    """Each real incident: every strategy's stake the day before and its loss sold at the low or held; or why not."""
    if not incidents:
        return ""
    parts = ["<h2>Incidents (real events, docs/risk.md)</h2>"]
    for inc in incidents:
        head = f"<h3>{html.escape(inc['name'])} ({inc['on']}, node {html.escape(inc['node'])})</h3>"
        parts.append(head + f"<p>{html.escape(inc['evidence'])}</p>")
        if not inc["replayed"]:
            parts.append(f"<p>Not replayed: {html.escape(inc['why'])}.</p>")
            continue
        body = [
            (
                r["strategy"],
                f"{r['at_stake_eth']:,.2f}",
                pct(r["at_stake_share"]),
                f"{r['loss_if_sold_eth']:,.2f}",
                f"{r['loss_if_held_eth']:,.2f}",
            )
            for r in inc["strategies"]
        ]
        parts.append(
            f"<p>Basis: {html.escape(inc['basis'])} (the book at the close of {inc['book_day']}).</p>"
        )
        head_row = (
            "strategy",
            f"at stake on {inc['book_day']} (ETH)",
            "share",
            "loss sold at the low",
            "loss held",
        )
        parts.append(_table(head_row, body))
    return "\n".join(parts)


def _marks_html(data: dict[str, Any]) -> str:
    """Day by day, which values are observed and which MODELLED (runs of one mark per component)."""
    marks: dict[str, list[dict[str, Any]]] = data["marks"]
    if not any(r["mark"] == "modelled" for runs in marks.values() for r in runs):
        return ""
    body = [
        (
            comp,
            f"{r['from']} → {r['to']}",
            str(r["days"]),
            r["mark"].upper() if r["mark"] == "modelled" else r["mark"],
        )
        for comp, runs in marks.items()
        for r in runs
    ]
    shares = [(name, pct(v, 1)) for name, v in data["modelled_share"].items()]
    return (
        "<h3>Observed and modelled values</h3><p>MODELLED values are ETH.STORE × the LST's fitted share of it, "
        "used only where no observed series has a value; summary.json lists the same runs under <code>marks</code>."
        "</p>"
        + _table(("component", "days", "count", "value"), body)
        + "<p>Share of each strategy's capital-days on a venue earning a modelled yield:</p>"
        + _table(("strategy", "on modelled yields"), shares)
    )
