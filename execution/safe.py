"""Safe{Wallet} Transaction Builder batches: one file per day of a plan's timeline (issue #16).

The format and its checksum are the Transaction Builder's own (docs/execution.md §1): the web app recomputes the
checksum on import and warns when it differs. Every transaction carries its calldata (`data`), so the file says
exactly what will be signed; what could not be encoded is listed as manual in `meta.description` and in the plan
summary, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from eth_hash.auto import keccak

from execution.calls import Call, Context, Manual, checksum_address, encode_event
from execution.timeline import Timeline

TX_BUILDER_VERSION = "1.16.5"
CHAIN_ID = "1"


def _serialise(value: Any) -> str:
    """The Transaction Builder's serialisation: objects as their sorted key list, then each value followed by a
    comma; arrays and scalars as JSON (non-ASCII characters as they are, as JavaScript writes them)."""
    if isinstance(value, list):
        return "[" + ",".join(_serialise(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value)
        return "{" + _json(keys) + "".join(_serialise(value[k]) + "," for k in keys) + "}"
    return _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def checksum(batch: dict[str, Any]) -> str:
    """The checksum the Transaction Builder writes into `meta.checksum`: keccak-256 of the serialised batch with
    `meta.name` null and `meta.checksum` left out."""
    meta = {k: v for k, v in batch["meta"].items() if k != "checksum"}
    meta["name"] = None
    return "0x" + keccak(_serialise({**batch, "meta": meta}).encode()).hex()


def with_checksum(batch: dict[str, Any]) -> dict[str, Any]:
    return {**batch, "meta": {**batch["meta"], "checksum": checksum(batch)}}


@dataclass(frozen=True)
class DayBatch:
    """One date of a plan: its Transaction Builder file (None when nothing on it can be encoded), the calls in it,
    and the manual steps."""

    day: int
    date: date
    calls: list[Call]
    manual: list[Manual]
    batch: dict[str, Any] | None

    @property
    def filename(self) -> str:
        return f"day-{self.day:03d}-{self.date.isoformat()}.json"


def transaction(call: Call) -> dict[str, Any]:
    return {
        "to": checksum_address(call.to),
        "value": str(call.value),
        "data": call.data,
        "contractMethod": None,
        "contractInputsValues": None,
    }


def batches(timeline: Timeline, plan_id: str, ctx: Context, created: datetime) -> list[DayBatch]:
    """A batch per date of the timeline, its calls in the timeline's order (claims, requests, sales, deposits)."""
    safe = checksum_address(ctx.safe)
    out: list[DayBatch] = []
    for day in timeline.dates():
        calls: list[Call] = []
        manual: list[Manual] = []
        for event in timeline.on(day):
            encoded = encode_event(event.kind, event.from_venue, event.to_venue, event.amount_eth, ctx)
            calls += encoded.calls
            manual += encoded.manual
        offset = (day - timeline.start).days
        batch = None
        if calls:
            lines = [
                f"restaking-aggregator plan {plan_id}, day {offset} ({day.isoformat()}): {len(calls)} call(s).",
                *(f"{i}. {c.note or c.signature}" for i, c in enumerate(calls, 1)),
            ]
            if manual:
                lines.append(f"Manual steps on this day, NOT in this batch ({len(manual)}):")
                lines += [f"- {m.what} ({m.why})" for m in manual]
            lines.append(
                f"Token amounts at the planning-time rates, slippage allowance {ctx.slippage:.2%}. Simulate "
                "before signing."
            )
            batch = with_checksum(
                {
                    "version": "1.0",
                    "chainId": CHAIN_ID,
                    "createdAt": int(created.timestamp() * 1000),
                    "meta": {
                        "name": f"Plan {plan_id} day {offset}",
                        "description": "\n".join(lines),
                        "txBuilderVersion": TX_BUILDER_VERSION,
                        "createdFromSafeAddress": safe,
                        "createdFromOwnerAddress": "",
                    },
                    "transactions": [transaction(c) for c in calls],
                }
            )
        out.append(DayBatch(offset, day, calls, manual, batch))
    return out


def summary(plan_id: str, days: list[DayBatch], ctx: Context) -> dict[str, Any]:
    """What was written, day by day: the file, each call (to, value, signature, note) and each manual step."""
    return {
        "plan": plan_id,
        "safe": checksum_address(ctx.safe),
        "slippage": ctx.slippage,
        "rates": dict(ctx.rates),
        "days": [
            {
                "day": d.day,
                "date": d.date.isoformat(),
                "file": d.filename if d.batch is not None else None,
                "calls": [
                    {
                        "to": checksum_address(c.to),
                        "value": str(c.value),
                        "function": c.signature,
                        "data": c.data,
                        "note": c.note,
                    }
                    for c in d.calls
                ],
                "manual": [{"what": m.what, "why": m.why} for m in d.manual],
            }
            for d in days
        ],
    }
