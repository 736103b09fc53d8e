"""`rebalance --safe-batch DIR`: a plan's Transaction Builder files, one per date of its timeline (issue #16)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from execution.calls import RATE_KEYS, Context
from execution.safe import DayBatch, batches, summary
from execution.timeline import Timeline


def parse_rates(given: list[str]) -> dict[str, float]:
    """`VENUE=RATE` options as a mapping (ValueError naming the bad one and what would be valid)."""
    out: dict[str, float] = {}
    for item in given:
        venue, _, text = item.partition("=")
        if venue not in RATE_KEYS:
            raise ValueError(f"--rate {item!r}: no rate is used for {venue!r}; rates are {sorted(RATE_KEYS)}")
        try:
            rate = float(text)
        except ValueError:
            rate = float("nan")
        if not 0.5 <= rate <= 2.0:
            raise ValueError(
                f"--rate {item!r}: write {venue}=RATE, the {RATE_KEYS[venue]}, between 0.5 and 2"
            )
        out[venue] = rate
    return out


def write(
    directory: Path,
    plan_id: str,
    timeline: Timeline,
    *,
    safe: str,
    slippage: float,
    rates: Mapping[str, float],
    created: datetime,
    resolved: Mapping[str, str] | None = None,
    rpc_url: str | None = None,
) -> tuple[list[Path], dict[str, object]]:
    """Write the batch files and `<plan>-summary.json` (every call and every manual step) into `directory`; with
    `rpc_url`, each call simulated first (`eth_call` from the Safe, never sent), its verdict in both."""
    ctx = Context(safe=safe, slippage=slippage, rates=dict(rates), resolved=dict(resolved or {}))
    days = batches(timeline, plan_id, ctx, created)
    days, block = simulate_days(rpc_url, safe, days)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for day in days:
        if day.batch is not None:
            path = directory / f"{plan_id}-{day.filename}"
            path.write_text(json.dumps(day.batch, indent=2, ensure_ascii=False) + "\n")
            written.append(path)
    listed = summary(plan_id, days, ctx, simulated_at=block)
    path = directory / f"{plan_id}-summary.json"
    path.write_text(json.dumps(listed, indent=2, ensure_ascii=False) + "\n")
    written.append(path)
    return written, listed


def simulate_days(rpc_url: str | None, safe: str, days: list[DayBatch]) -> tuple[list[DayBatch], int | None]:
    """The days simulated at the latest block when an RPC is configured (the block, else None); a failed
    simulation is said on stderr and the days stay unsimulated (never marked checked)."""
    if rpc_url is None:
        return days, None
    import sys

    from aggregator.core.errors import SourceError
    from aggregator.service.chain import simulate

    try:
        return simulate(rpc_url, safe, days)
    except SourceError as exc:
        print(f"batches not simulated ({exc}); simulate them in the Safe web app", file=sys.stderr)
        return days, None
