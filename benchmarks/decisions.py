"""Is the optimizer's advice worth following? Replay the bundled history for a sweep of CVaR budgets.

    .venv/bin/python -m benchmarks.decisions                       # config/demo.toml, table + var/decisions/
    .venv/bin/python -m benchmarks.decisions --budgets 0.04,0.06 --out /tmp/decisions

For each budget (and "stETH": the CVaR of 100 % stETH with every limit 100 % stETH breaks lifted, so that the
simplest book is inside the limits) it runs `aggregator backtest` on the config with that budget and prints, for the
optimizer at each risk aversion compared (the `[backtest] risk_aversions`, default the config's λ): the realised
net yield, costs (ETH and bp/yr of the book), executed turnover, executed legs and those reversed within 14 days,
mean and max CVaR on exposed capital (queued capital at the venue it left) and the share of days within every
limit on that basis; and the same for the best STATIC book chosen IN HINDSIGHT inside the same limits.

The hindsight book: the optimizer's own model maximises each venue's realised yield over the period (what
`History.earned` says it earned, after haircuts; a day without a realised return earns nothing, as in the replay)
less the entry costs spread over the period, subject to the same limits and CVaR budget, with no risk aversion,
no expected-loss term and no turnover cap; it is then replayed as a fixed book (bought on day one, re-traded
only past the config's `min_move_eth` drift), with the same costs. It knows the future: the optimizer does not.
The risk-priced hindsight book is the same with the optimizer's own risk charges (expected loss and λ·CVaR): the
gap between the two hindsight rows is what pricing risk costs on a history in which nothing failed, the gap
between the optimizer and the risk-priced row is what not knowing the future (and trading on estimates) costs.

The replay starts (`--start warm`, the default) `[backtest] min_observations` days after the config's start: the
bundled stETH series begins the day before the config's start, so before then the entry gate keeps the best venue
closed and the optimizer deploys idle ETH into second-best venues that it then keeps (moving costs round trips),
while the hindsight book has no gate. Both start on the same day with the same data; `--start config` replays from
the config's start to show that warm-up cost.

Writes decisions.json, decisions.md (the table) and frontier.png (realised yield against mean CVaR on exposed
capital: the optimizer's line over the budgets, every baseline a point) into --out (default var/decisions/).
One core, a few minutes at most.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aggregator.events.logs import configure_logging  # noqa: E402
from aggregator.interfaces.research_inputs import inputs_from_settings  # noqa: E402
from aggregator.research.backtest.history import History, build_history  # noqa: E402
from aggregator.research.backtest.replay import DAYS_PER_YEAR  # noqa: E402
from aggregator.research.backtest.run import Backtest, StrategyResult, backtest  # noqa: E402
from aggregator.settings import Settings, load_settings  # noqa: E402
from optimizer import ModelCache, OptimizationInputs  # noqa: E402
from optimizer.evaluate import violations  # noqa: E402
from optimizer.optimize import prepare, shape_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HINDSIGHT = "hindsight-best static"
PRICED = "hindsight static, risk-priced"
STETH = "lido-steth"
DEFAULT_BUDGETS = (0.03, 0.04, 0.05, 0.06, 0.08)


def with_budget(settings: Settings, budget: float) -> Settings:
    return settings.model_copy(update={"limits": settings.limits.model_copy(update={"cvar_budget": budget})})


def steth_case(settings: Settings, venue: str = STETH) -> tuple[Settings, float, list[str]]:
    """The config with the CVaR budget set to 100 % `venue`'s CVaR and every limit that book breaks lifted."""
    cache = ModelCache()
    model = cache.get(settings.universe(), shape_of(settings.limits))
    st = model.structure
    x = np.zeros(st.n_venues)
    x[st.venue_index[venue]] = 1.0
    # the CVaR the limit check computes (the enumerated tail and the residual mass of deeper combinations)
    cvar = model.losses.cvar(x, model.shape.cvar_beta, model.losses.losses(x))
    total = settings.portfolio_eth
    values, _, _ = prepare(
        model,
        OptimizationInputs(
            universe=st.universe,
            limits=settings.limits.model_copy(update={"cvar_budget": cvar}),
            portfolio_eth=total,
            holdings_eth={st.universe.root.id: total},
            yields={},
        ),
    )
    broken = violations(st, model.losses, model.shape, values, x, check_turnover=False)
    lifted: list[str] = []
    venues = list(settings.venues)
    nodes = list(settings.risk_nodes)
    limits = settings.limits.model_copy(update={"cvar_budget": cvar})
    ladder = list(limits.ladder)
    layer_caps = dict(limits.layer_caps)
    for b in broken:
        what = b.split(":")[0]
        if b.startswith(f"{venue}: share") and "above its maximum" in b:
            venues = [v.model_copy(update={"max_share": 1.0}) if v.id == venue else v for v in venues]
            lifted.append(f"{venue} max_share")
        elif what.startswith("risk node "):
            node = what.removeprefix("risk node ")
            nodes = [n.model_copy(update={"cap": None}) if n.id == node else n for n in nodes]
            lifted.append(f"{node} node cap")
        elif what.startswith("layer "):
            kind = what.removeprefix("layer ")
            layer_caps.pop(kind, None)  # type: ignore[call-overload]
            lifted.append(f"{kind} layer cap")
        elif what == "liquidity":
            days = float(b.split("back within ")[1].split(" d")[0])
            ladder = [r for r in ladder if r.days != days]
            lifted.append(f"ladder {days:g} d")
        elif what == "forced sale":  # 100 % of one token: its rungs rest on its market route (none for stETH)
            if "forced-sale budget" not in lifted:
                lifted.append("forced-sale budget")
        else:
            raise SystemExit(f"100 % {venue} breaks {b!r}, which this benchmark cannot lift")
    limits = limits.model_copy(update={"ladder": tuple(ladder), "layer_caps": layer_caps})
    if "forced-sale budget" in lifted:
        limits = limits.model_copy(update={"forced_sale_budget": None})
    out = settings.model_copy(update={"venues": venues, "risk_nodes": nodes, "limits": limits})
    return out, cvar, lifted


def realised_yields(settings: Settings, history: History) -> dict[str, dict[str, float]]:
    """Each component's realised yield over the period (mean daily return × 365; no return: 0 that day), as the
    optimizer's `yields` mapping, so that its net yield of a book is the book's realised yield."""
    assert history.earned is not None
    col = {c: k for k, c in enumerate(history.components)}
    earned = np.nan_to_num(history.earned[1:])
    return {
        v.id: {c.name: float(earned[:, col[f"{v.id}.{c.name}"]].mean() * DAYS_PER_YEAR) for c in v.components}
        for v in settings.venues
    }


def hindsight_book(settings: Settings, history: History, *, priced: bool = False) -> dict[str, float]:
    """The static book with the best realised yield less entry costs inside the config's limits (module doc).
    `priced`: with the optimizer's own risk charges (expected loss and λ·CVaR), so that it differs from the
    optimizer only by knowing the realised yields and trading once."""
    days = len(history.days) - 1
    limits = settings.limits.model_copy(update={"horizon_days": float(days), "max_turnover": None})
    cache = ModelCache()
    model = cache.get(settings.universe(), shape_of(limits))
    st = model.structure
    total = settings.portfolio_eth
    values, _, _ = prepare(
        model,
        OptimizationInputs(
            universe=st.universe,
            limits=limits,
            portfolio_eth=total,
            holdings_eth={st.universe.root.id: total},
            yields=realised_yields(settings, history),
        ),
    )
    values = dataclasses.replace(
        values,
        expected_loss=values.expected_loss if priced else np.zeros_like(values.expected_loss),
        risk_aversion=values.risk_aversion if priced else 0.0,
        c_in=st.entry_cost * DAYS_PER_YEAR / days,  # entries once over the period; a held book never exits
        c_out=np.zeros_like(values.c_out),
    )
    result = model.solve(values)
    if not result.ok or result.x is None:
        raise SystemExit(f"no static book inside the limits: solver status {result.status}")
    x = np.where(result.x < 1e-9, 0.0, result.x)
    x = x / x.sum()
    return {v: float(w) for v, w in zip(st.venue_ids, x, strict=True) if w > 0}


def run_case(settings: Settings, label: str, budget: float, lifted: list[str]) -> dict[str, Any]:
    assert settings.backtest is not None
    history = build_history(inputs_from_settings(settings), settings.backtest)
    book = hindsight_book(settings, history)
    priced = hindsight_book(settings, history, priced=True)
    fixed = {**settings.backtest.fixed, HINDSIGHT: book, PRICED: priced}
    s = settings.model_copy(update={"backtest": settings.backtest.model_copy(update={"fixed": fixed})})
    result = backtest(inputs_from_settings(s))
    return {
        "case": label,
        "cvar_budget": budget,
        "lifted": lifted,
        "hindsight_book": {k: round(v, 6) for k, v in sorted(book.items(), key=lambda kv: -kv[1])},
        "priced_book": {k: round(v, 6) for k, v in sorted(priced.items(), key=lambda kv: -kv[1])},
        "strategies": [row(r) for r in result.results],
        "attribution": attribution(
            result, (HINDSIGHT, PRICED, *(r.name for r in result.results if r.name.startswith("optimizer")))
        ),
        "seconds": result.seconds,
        "_result": result,
    }


def attribution(result: Backtest, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Where each strategy's yield came from, bp/yr of the book: per venue the realised return of its settled
    capital (settled share × the day's realised return, summed), `in transit` the share of the book in exit queues
    (earning nothing) times the mean return of the day's settled book, and `costs` (fees, gas, entry costs). The
    venue rows and costs add up to the strategy's net yield (before compounding); `transit` is what waiting cost
    relative to the rest of the book."""
    rep = result.replay
    days = len(rep.days)
    earned = np.nan_to_num(rep.venue_earned)
    out: dict[str, dict[str, float]] = {}
    for path in rep.paths:
        if path.name not in names:
            continue
        settled = np.array(path.settled)  # [day, venue] settled ETH / book value, at the start of the day
        per_venue = (settled * earned).sum(axis=0) * DAYS_PER_YEAR / days * 1e4
        parked = 1.0 - settled.sum(axis=1)
        book_rate = (settled * earned).sum(axis=1) / np.maximum(settled.sum(axis=1), 1e-12)
        row = {v: float(b) for v, b in zip(rep.venues, per_venue, strict=True) if abs(b) >= 0.05}
        row["in transit"] = -float((parked * book_rate).sum() * DAYS_PER_YEAR / days * 1e4)
        row["costs"] = -path.costs_eth / rep.start_eth / (days / DAYS_PER_YEAR) * 1e4
        out[path.name] = row
        mean_w = settled.mean(axis=0)
        out[f"{path.name} weights"] = {
            v: float(w * 100) for v, w in zip(rep.venues, mean_w, strict=True) if w >= 5e-4
        }
    return out


def row(r: StrategyResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "net_yield": r.net_yield,
        "final_eth": r.final_eth,
        "costs_eth": r.costs_eth,
        "costs_bps": r.costs_bps,
        "turnover": r.turnover,
        "legs": r.trades,
        "reversed_within_14d": r.reversed,
        "plans": r.plans,
        "cvar_mean": r.cvar_mean,
        "cvar_max": r.cvar_max,
        "within_limits": r.within_limits,
        "broken_days": r.broken,
    }


HEAD = (
    "budget",
    "strategy",
    "net yield/yr",
    "vs hindsight",
    "costs ETH",
    "costs bp/yr",
    "turnover",
    "legs",
    "reversed ≤14 d",
    "CVaR mean/max (exposed)",
    "days in limits",
)


def table(cases: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for c in cases:
        by = {r["name"]: r for r in c["strategies"]}
        best = by[HINDSIGHT]["net_yield"]
        label = c["case"]
        for r in c["strategies"]:
            if not (r["name"].startswith("optimizer") or r["name"] in (HINDSIGHT, PRICED)):
                continue
            out.append(
                (
                    label,
                    r["name"],
                    f"{r['net_yield'] * 100:.2f}%",
                    f"{(r['net_yield'] - best) * 1e4:+.1f} bp",
                    f"{r['costs_eth']:,.2f}",
                    f"{r['costs_bps']:.1f}",
                    f"{r['turnover'] * 100:.0f}%",
                    str(r["legs"]),
                    str(r["reversed_within_14d"]),
                    f"{r['cvar_mean'] * 100:.2f}%/{r['cvar_max'] * 100:.2f}%",
                    f"{r['within_limits'] * 100:.1f}%",
                )
            )
    return out


def baselines(case: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            r["name"],
            f"{r['net_yield'] * 100:.2f}%",
            f"{r['costs_bps']:.1f}",
            f"{r['turnover'] * 100:.0f}%",
            f"{r['legs']} ({r['reversed_within_14d']})",
            f"{r['cvar_mean'] * 100:.2f}%/{r['cvar_max'] * 100:.2f}%",
        )
        for r in case["strategies"]
        if not (r["name"].startswith("optimizer") or r["name"] in (HINDSIGHT, PRICED))
    ]


def markdown(head: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def frontier(cases: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.5))
    budgets = [c for c in cases if c["case"] != "stETH"]
    names = sorted({r["name"] for c in cases for r in c["strategies"] if r["name"].startswith("optimizer")})
    for name in names:
        pts = [
            (r["cvar_mean"], r["net_yield"]) for c in budgets for r in c["strategies"] if r["name"] == name
        ]
        ax.plot([p[0] * 100 for p in pts], [p[1] * 100 for p in pts], marker="o", linewidth=1.6, label=name)
    hind = [
        (r["cvar_mean"], r["net_yield"]) for c in budgets for r in c["strategies"] if r["name"] == HINDSIGHT
    ]
    ax.plot(
        [p[0] * 100 for p in hind],
        [p[1] * 100 for p in hind],
        linestyle="--",
        marker="s",
        color="grey",
        label=f"{HINDSIGHT} (knows the future)",
    )
    for c in budgets:
        r = next(r for r in c["strategies"] if r["name"] == names[0]) if names else None
        if r is not None:
            ax.annotate(
                f"budget {c['cvar_budget'] * 100:g}%",
                (r["cvar_mean"] * 100, r["net_yield"] * 100),
                fontsize=7,
            )
    steth = [c for c in cases if c["case"] == "stETH"]
    for c in steth:
        for r in c["strategies"]:
            if r["name"].startswith("optimizer"):
                ax.scatter(r["cvar_mean"] * 100, r["net_yield"] * 100, marker="*", s=120, zorder=5)
                ax.annotate(
                    f"{r['name']}, stETH's CVaR, caps lifted",
                    (r["cvar_mean"] * 100, r["net_yield"] * 100),
                    fontsize=7,
                )
    for r in cases[0]["strategies"]:
        if r["name"].startswith("optimizer") or r["name"] in (HINDSIGHT, PRICED):
            continue
        ax.scatter(r["cvar_mean"] * 100, r["net_yield"] * 100, marker="x", s=60, zorder=5)
        ax.annotate(r["name"], (r["cvar_mean"] * 100, r["net_yield"] * 100), fontsize=8)
    ax.set_xlabel("mean CVaR₉₉ on exposed capital (queued at the venue it left), %")
    ax.set_ylabel("realised net yield, %/yr (after costs)")
    ax.set_title("Realised yield against risk on the bundled history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "demo.toml")
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in DEFAULT_BUDGETS), help="CVaR budgets")
    parser.add_argument("--no-steth", action="store_true", help="skip the stETH's-CVaR-with-caps-lifted case")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "decisions")
    parser.add_argument(
        "--start",
        default="warm",
        help="first day of the replay: 'warm' (default) = the config's start plus [backtest] min_observations days, "
        "the first day the entry gate can open on series that begin the day before the config's start; 'config' = "
        "the config's start; or a date YYYY-MM-DD",
    )
    parser.add_argument(
        "--end",
        default="",
        help="last day of the replay, YYYY-MM-DD (default the config's end); with --start, a hold-out period "
        "outside the config's, e.g. --start 2024-09-13 --end 2025-04-17",
    )
    parser.add_argument(
        "--risk-aversions", default="", help="the optimizers compared, e.g. 0.05,0.25 (default: the config's)"
    )
    parser.add_argument(
        "--attribution",
        action="store_true",
        help="print where each optimizer's and hindsight book's yield came from (per venue, transit, costs)",
    )
    args = parser.parse_args()
    configure_logging("warning", "console")
    settings = load_settings(args.config)
    if settings.backtest is None:
        raise SystemExit(f"{args.config} has no [backtest] section")
    try:
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise SystemExit(
            f"--budgets {args.budgets!r}: give fractions separated by commas, e.g. 0.03,0.04"
        ) from None
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise SystemExit(f"--budgets {args.budgets!r}: each budget must be a fraction in (0, 1]")
    if args.risk_aversions:
        try:
            lambdas = tuple(float(x) for x in args.risk_aversions.split(",") if x.strip())
        except ValueError:
            raise SystemExit(
                f"--risk-aversions {args.risk_aversions!r}: give numbers ≥ 0, e.g. 0.05,0.25"
            ) from None
        if not lambdas or any(x < 0 for x in lambdas):
            raise SystemExit(f"--risk-aversions {args.risk_aversions!r}: give numbers ≥ 0, e.g. 0.05,0.25")
        chosen = settings.backtest.model_copy(update={"risk_aversions": lambdas})
        settings = settings.model_copy(update={"backtest": chosen})
    bt = settings.backtest
    assert bt is not None  # checked above; a model_copy keeps it
    if args.start == "warm":
        start = bt.start + timedelta(days=bt.min_observations or 0)
    elif args.start == "config":
        start = bt.start
    else:
        try:
            start = date.fromisoformat(args.start)
        except ValueError:
            raise SystemExit(f"--start {args.start!r}: give 'warm', 'config' or a date YYYY-MM-DD") from None
    try:
        end = date.fromisoformat(args.end) if args.end else bt.end
    except ValueError:
        raise SystemExit(f"--end {args.end!r}: give a date YYYY-MM-DD") from None
    if not start < end:
        raise SystemExit(f"--start {start} must be before --end {end}")
    settings = settings.model_copy(update={"backtest": bt.model_copy(update={"start": start, "end": end})})
    t0 = time.perf_counter()
    cases = [run_case(with_budget(settings, b), f"{b * 100:g}%", b, []) for b in budgets]
    if not args.no_steth:
        s, cvar, lifted = steth_case(settings)
        cases.append(run_case(s, "stETH", cvar, lifted))
    seconds = time.perf_counter() - t0
    first: Backtest = cases[0]["_result"]
    days = first.replay.days
    print(
        f"Bundled history {days[0]} → {days[-1]} ({len(days)} days), {first.replay.start_eth:,.0f} ETH from idle ETH; "
        f"optimizer risk aversions {', '.join(f'{x:g}' for x in first.risk_aversions)}; config {args.config}"
    )
    print()
    print(markdown(HEAD, table(cases)))
    print()
    for c in cases:
        book = ", ".join(f"{v} {w * 100:.1f}%" for v, w in c["hindsight_book"].items())
        extra = f"; lifted: {', '.join(c['lifted']) or 'nothing'}" if c["case"] == "stETH" else ""
        print(f"budget {c['case']} (CVaR {c['cvar_budget'] * 100:.2f}%{extra}): {HINDSIGHT} = {book}")
        priced = ", ".join(f"{v} {w * 100:.1f}%" for v, w in c["priced_book"].items())
        print(f"    {PRICED} = {priced}")
    print()
    if args.attribution:
        for c in cases:
            print(
                f"budget {c['case']}: where the yield came from, bp/yr of the book (mean settled weight %):"
            )
            att = c["attribution"]
            for name in [n for n in att if not n.endswith(" weights")]:
                parts = ", ".join(f"{k} {v:+.1f}" for k, v in att[name].items())
                w = ", ".join(f"{k} {v:.1f}" for k, v in att[f"{name} weights"].items())
                print(f"    {name}: {parts}")
                print(f"        weights: {w}")
        print()
    print(
        f"Baselines (CVaR on exposed capital; their yields do not depend on the budget, budget {cases[0]['case']}):"
    )
    print(
        markdown(
            ("strategy", "net yield/yr", "costs bp/yr", "turnover", "legs (rev. ≤14 d)", "CVaR mean/max"),
            baselines(cases[0]),
        )
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for c in cases:
        del c["_result"]
    (args.out / "decisions.json").write_text(
        json.dumps({"cases": cases, "seconds": seconds}, indent=2, sort_keys=True) + "\n"
    )
    (args.out / "decisions.md").write_text(markdown(HEAD, table(cases)) + "\n")
    frontier(cases, args.out / "frontier.png")
    print()
    print(
        f"{len(cases)} cases in {seconds:.1f} s; wrote {args.out}/decisions.json, decisions.md, frontier.png"
    )


if __name__ == "__main__":
    main()
