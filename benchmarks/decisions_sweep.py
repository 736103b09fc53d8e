"""Sweep the decision defaults on two windows: does a setting hold on the bundled history AND on the hold-out?

    .venv/bin/python -m benchmarks.decisions_sweep --set limits.trade_cost_multiple=1,2 --set rates.entry_quantile=0.25,0.5

For every combination of the `--set` values (a `[limits]`, `[rates]` or `[backtest]` field of the config, several
values separated by commas) it replays, for each CVaR budget, the optimizer and the hindsight-best static book of
`benchmarks.decisions` on two windows: the bundled one (`--start warm`: the config's start plus `[backtest]
min_observations` days, to its end) and the hold-out (default 2024-09-13 → 2025-04-17, which the rules were not set
on). It prints, per setting and window, the optimizer's gap to the hindsight book at each budget (bp/yr), the worst
gap, the costs and the legs reversed within 14 days; the hindsight books do not depend on the swept settings
unless a `[limits]` field changes them. A setting is worth keeping only if it holds on both windows: pick on one,
read the other.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import itertools  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from pydantic import ValidationError  # noqa: E402

from aggregator.events.logs import configure_logging  # noqa: E402
from aggregator.interfaces.research_inputs import inputs_from_settings  # noqa: E402
from aggregator.research.backtest.history import build_history  # noqa: E402
from aggregator.research.backtest.run import backtest  # noqa: E402
from aggregator.settings import Settings, load_settings  # noqa: E402
from benchmarks.decisions import DEFAULT_BUDGETS, HINDSIGHT, hindsight_book, with_budget  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("limits", "rates", "backtest")


def parse_set(text: str) -> tuple[str, str, list[Any]]:
    """'limits.trade_cost_multiple=1,2' → ('limits', 'trade_cost_multiple', [1.0, 2.0])."""
    key, _, values = text.partition("=")
    section, _, field = key.partition(".")
    if section not in SECTIONS or not field or not values:
        raise SystemExit(
            f"--set {text!r}: give SECTION.FIELD=V1,V2 with SECTION one of {', '.join(SECTIONS)}, "
            "e.g. limits.trade_cost_multiple=1,2"
        )
    out: list[Any] = []
    for raw in values.split(","):
        v = raw.strip()
        try:
            out.append(int(v) if v.isdigit() else float(v))
        except ValueError:
            out.append(v)
    return section, field, out


def apply(settings: Settings, changes: dict[tuple[str, str], Any]) -> Settings:
    """The settings with each (section, field) replaced, validated as the config's are."""
    update: dict[str, Any] = {}
    for section in SECTIONS:
        fields = {f: v for (s, f), v in changes.items() if s == section}
        if not fields:
            continue
        current = getattr(settings, section)
        data = {**current.model_dump(exclude_unset=True), **fields}
        if section == "limits" and {"risk_aversion", "tail_weight"} & set(fields):
            data = {k: v for k, v in data.items() if k not in {"risk_aversion", "tail_weight"} or k in fields}
        try:
            update[section] = type(current).model_validate(data)
        except ValidationError as exc:
            raise SystemExit(_invalid(section, fields, exc)) from None
    return settings.model_copy(update=update)


def _invalid(section: str, fields: dict[str, Any], exc: ValidationError) -> str:
    """One line per error: the field set, the value given and what the config schema accepts."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        name = f"{section}.{loc}" if loc else ", ".join(f"{section}.{f}" for f in fields)
        value = fields.get(str(err["loc"][0]), err.get("input")) if err["loc"] else fields
        lines.append(f"--set {name}={value!r} is not valid: {err['msg']}")
    return "\n".join(lines)


def window(settings: Settings, start: date, end: date) -> Settings:
    bt = settings.backtest
    assert bt is not None
    return settings.model_copy(update={"backtest": bt.model_copy(update={"start": start, "end": end})})


def case(settings: Settings, budget: float) -> dict[str, Any]:
    s = with_budget(settings, budget)
    assert s.backtest is not None
    book = hindsight_book(s, build_history(inputs_from_settings(s), s.backtest))
    s = s.model_copy(update={"backtest": s.backtest.model_copy(update={"fixed": {HINDSIGHT: book}})})
    result = backtest(inputs_from_settings(s))
    by = {r.name: r for r in result.results}
    opt = next(r for r in result.results if r.name.startswith("optimizer"))
    return {
        "gap_bp": (opt.net_yield - by[HINDSIGHT].net_yield) * 1e4,
        "costs_bps": opt.costs_bps,
        "reversed": opt.reversed,
        "within": opt.within_limits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "demo.toml")
    parser.add_argument("--set", action="append", default=[], help="SECTION.FIELD=V1,V2 (repeatable)")
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in DEFAULT_BUDGETS))
    parser.add_argument("--holdout", default="2024-09-13:2025-04-17", help="START:END of the hold-out window")
    parser.add_argument("--only", choices=("bundled", "holdout"), default=None, help="one window only")
    args = parser.parse_args()
    configure_logging("warning", "console")
    base = load_settings(args.config)
    if base.backtest is None:
        raise SystemExit(f"{args.config} has no [backtest] section")
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    sets = [parse_set(s) for s in args.set]
    h0, _, h1 = args.holdout.partition(":")
    bt = base.backtest
    windows = {
        "bundled": (bt.start + timedelta(days=bt.min_observations or 0), bt.end),
        "holdout": (date.fromisoformat(h0), date.fromisoformat(h1)),
    }
    if args.only:
        windows = {args.only: windows[args.only]}
    grid = list(itertools.product(*[[(sec, f, v) for v in vals] for sec, f, vals in sets])) or [()]
    print(
        "| setting | window | "
        + " | ".join(f"{b * 100:g}%" for b in budgets)
        + " | worst | costs max | rev. |"
    )
    print("|---|---|" + "---|" * len(budgets) + "---|---|---|")
    for combo in grid:
        changes = {(sec, f): v for sec, f, v in combo}
        label = ", ".join(f"{sec}.{f}={v}" for sec, f, v in combo) or "config"
        settings = apply(base, changes)
        for name, (start, end) in windows.items():
            rows = [case(window(settings, start, end), b) for b in budgets]
            gaps = [r["gap_bp"] for r in rows]
            print(
                f"| {label} | {name} | "
                + " | ".join(f"{g:+.1f}" for g in gaps)
                + f" | {min(gaps):+.1f} | {max(r['costs_bps'] for r in rows):.1f} | "
                + f"{sum(r['reversed'] for r in rows)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
