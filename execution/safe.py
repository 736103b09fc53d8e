"""Safe{Wallet} Transaction Builder batches: one file per day of a plan's timeline (issue #16).

The format and its checksum are the Transaction Builder's own (docs/execution.md §1): the web app recomputes the
checksum on import and warns when it differs. Every transaction carries its calldata (`data`), so the file says
exactly what will be signed; what could not be encoded is listed as manual in `meta.description` and in the plan
summary, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from eth_hash.auto import keccak

from execution.calls import Call, Context, Manual, checksum_address, encode_event
from execution.simulate import Check
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
    checks: tuple[Check, ...] = ()  # the simulation of each call, when one was run (`simulated`)

    @property
    def blocked(self) -> list[Check]:
        return [c for c in self.checks if c.status == "blocked"]

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
    """A batch per date of the timeline, its calls in the timeline's order (claims, requests, sales, deposits). When
    a later plan re-dated the plan's deposits (`timeline.redated`), the description of the day they moved to says
    so."""
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
            redated = timeline.redated
            if (
                redated is not None
                and offset == redated.day
                and any(e.kind == "deposit" for e in timeline.on(day))
            ):
                lines.append(f"Deposits made on this day, later than the plan gave them: {redated.why}.")
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


def simulated(days: Sequence[DayBatch], checks: Sequence[Check], block: int) -> list[DayBatch]:
    """The days with their simulation: each day's checks attached, and its batch's description saying at which
    block it was simulated and which steps revert (BLOCKED or UNVERIFIED, with the reason); checksum recomputed."""
    out: list[DayBatch] = []
    for d in days:
        mine = tuple(c for c in checks if c.day == d.day)
        batch = d.batch
        if batch is not None:
            bad = [c for c in mine if c.status != "ok"]
            line = f"Simulated with eth_call from the Safe at block {block}: " + (
                f"{len(bad)} step(s) revert." if bad else "every step passes on its own."
            )
            lines = [line, *(f"- step {c.step} {c.status.upper()}: {c.function}: {c.reason}" for c in bad)]
            description = batch["meta"]["description"] + "\n" + "\n".join(lines)
            batch = with_checksum({**batch, "meta": {**batch["meta"], "description": description}})
        out.append(replace(d, batch=batch, checks=mine))
    return out


def summary(
    plan_id: str, days: list[DayBatch], ctx: Context, simulated_at: int | None = None
) -> dict[str, Any]:
    """What was written, day by day: the file, each call (to, value, signature, note, and its simulation when one
    was run) and each manual step; `blocked` lists the steps a simulation found reverting for sure."""
    checks = {(d.day, c.step): c for d in days for c in d.checks}
    return {
        "plan": plan_id,
        "safe": checksum_address(ctx.safe),
        "slippage": ctx.slippage,
        "rates": dict(ctx.rates),
        "simulated_at_block": simulated_at,
        "days": [
            {
                "day": d.day,
                "date": d.date.isoformat(),
                "file": d.filename if d.batch is not None else None,
                "blocked": [c.as_dict() for c in d.blocked],
                "calls": [
                    {
                        "to": checksum_address(c.to),
                        "value": str(c.value),
                        "function": c.signature,
                        "data": c.data,
                        "note": c.note,
                        **(
                            {
                                "simulation": {
                                    "status": checks[d.day, i].status,
                                    "reason": checks[d.day, i].reason,
                                }
                            }
                            if (d.day, i) in checks
                            else {}
                        ),
                    }
                    for i, c in enumerate(d.calls, 1)
                ],
                "manual": [{"what": m.what, "why": m.why} for m in d.manual],
            }
            for d in days
        ],
    }
