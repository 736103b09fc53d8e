"""A stored plan whose waiting deposits a later applied plan re-dated in the book: its own views (`aggregator show`,
its --json timeline, GET /api/v1/proposals/{id} and its Safe batches) put the deposits on the re-dated day and name
the later plan; a plan nothing re-dated reads as before (issue #13)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from aggregator.service import Service
from aggregator.settings import load_settings
from execution.safe import checksum
from execution.timeline import Redated, plan_timeline, schedule
from optimizer import Move
from tests.helpers.api import api_client
from tests.helpers.cli import run

T0 = datetime(2026, 9, 14, 12, 0, tzinfo=UTC)
TOKEN = "t0ken-for-tests-0123456789"
SAFE = "0x1111111111111111111111111111111111111111"
LATER = "later-exit"
REDATED_DAY, REDATED_DATE = 15, "2026-09-29"  # B's 14-day EigenLayer exit applied at T0+1 lands at T0+15


def rotation(sell_eth: float, venue: str, buy_eth: float, *, book_eth: float) -> list[Move]:
    """stETH sold through Lido's 5-day queue, then idle ETH deposited into `venue` (waiting for that exit)."""
    return [
        Move(
            step=1, action="withdraw", venue="lido-steth", from_venue="lido-steth", to_venue="eth",
            amount_eth=sell_eth, share=sell_eth / book_eth, cost_eth=0.0, days=5.0, route="queue",
        ),
        Move(
            step=2, action="deposit", venue=venue, from_venue="eth", to_venue=venue,
            amount_eth=buy_eth, share=buy_eth / book_eth, cost_eth=0.0, days=0.0, route="deposit",
        ),
    ]  # fmt: skip


def _views(config: Path, url: str, settings: Any, proposal: str) -> dict[str, Any]:
    """`aggregator show` (text and --json, real subprocesses) and the API's proposal and safe-batch (real server)."""
    env = {"AGGREGATOR_DATABASE__URL": url, "COLUMNS": "240"}
    text = run("show", proposal, "--config", str(config), env=env)
    assert text.returncode == 0, text.stderr
    shown = run("show", proposal, "--json", "--config", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    with api_client(settings, TOKEN) as client:
        api = client.get(f"/api/v1/proposals/{proposal}")
        batch = client.get(f"/api/v1/proposals/{proposal}/safe-batch?safe={SAFE}")
    assert api.status_code == 200 and batch.status_code == 200, (api.text, batch.text)
    return {"text": text.stdout, "json": json.loads(shown.stdout), "api": api.json(), "batch": batch.json()}


def _deposit_days(timeline: dict[str, Any]) -> set[tuple[int, str]]:
    return {(e["day"], e["date"]) for e in timeline["events"] if e["kind"] == "deposit"}


def test_an_earlier_plans_views_put_its_deposits_on_the_day_a_later_plans_exit_re_dated_them(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Plan A, applied at T0 on the demo's book, exits 500 of stETH through Lido's 5-day queue and deposits 1,500 ETH
    into ether.fi once it lands (day 5, an encoded Safe call). Plan B, applied at T0+1, queues 1,000 of stETH out of
    EigenLayer for 14 days: the book re-dates A's waiting deposit to T0+15. A's show (text, JSON), its API document
    and its Safe batches then put A's deposit on day 15 and name B; before B, and for B itself (nothing re-dated
    it), they read as the plan's recorded inputs give them."""
    config = demo_config()
    url = f"sqlite:///{tmp_path}/a.db"
    base = load_settings(config)
    settings = base.model_copy(update={"database": base.database.model_copy(update={"url": url})})
    clock = {"now": T0}
    svc = Service(settings, now=lambda: clock["now"])
    dry = svc.rebalance("cli")  # the demo's inputs, for plans of our own on its book
    moves = rotation(500.0, "etherfi-weeth", 1500.0, book_eth=10_000.0)
    plan_a = dry.plan.model_copy(update={"status": "rebalance", "moves": moves})
    svc.store.record_cycle(dry.book, "cli", "plan-a", plan_a, apply=True)
    own: dict[str, Any] = plan_timeline(plan_a, T0.date()).as_dict()
    assert _deposit_days(own) == {(5, "2026-09-19")}, own["events"]

    before = _views(
        config, url, settings, "plan-a"
    )  # applied, nothing re-dated it yet: as its inputs give it
    assert before["json"]["timeline"] == own and before["api"]["timeline"] == own
    assert "re-dated" not in before["text"] and "redated" not in before["batch"]["summary"]
    assert any("day-005-2026-09-19" in name for name in before["batch"]["batches"])

    exit_b = Move(
        step=1, action="withdraw", venue="eigenlayer-steth", from_venue="eigenlayer-steth", to_venue="lido-steth",
        amount_eth=1000.0, share=0.1, cost_eth=0.0, days=14.0, route="queue",
    )  # fmt: skip
    clock["now"] = T0 + timedelta(days=1)
    plan_b = dry.plan.model_copy(update={"status": "rebalance", "moves": [exit_b]})
    svc.store.record_cycle(dry.book, "cli", LATER, plan_b, apply=True)
    book = cast(list[dict[str, Any]], svc.book_report()["in_flight"])  # the book already has the later day
    assert {f["due"] for f in book if f["kind"] == "deposit"} == {(T0 + timedelta(days=15)).isoformat()}

    after = _views(config, url, settings, "plan-a")
    why = (
        f"re-dated by proposal {LATER}: waits for its exit of 1,000.000000 ETH eigenlayer-steth → lido-steth"
    )
    for timeline in (after["json"]["timeline"], after["api"]["timeline"]):
        assert _deposit_days(timeline) == {(REDATED_DAY, REDATED_DATE)}, timeline["events"]
        assert timeline["redated"] == {
            "day": REDATED_DAY, "date": REDATED_DATE, "by": [LATER], "why": f"{why} until {REDATED_DATE}",
        }  # fmt: skip
        assert any(i["to_day"] == REDATED_DAY and LATER in i["why"] for i in timeline["idle"])
        # the exits are not re-dated: A's own claims stay on day 5
        claims = {(e["day"], e["kind"]) for e in timeline["events"] if e["kind"] != "deposit"}
        assert claims == {(e["day"], e["kind"]) for e in own["events"] if e["kind"] != "deposit"}
    assert f"{why} until {REDATED_DATE}" in after["text"], after["text"]
    deposit_rows = re.findall(r"│\s*(\d+) │ (\d{4}-\d\d-\d\d) │ deposit", after["text"])
    assert deposit_rows == [(str(REDATED_DAY), REDATED_DATE)], after["text"]
    assert re.findall(r"│\s*(\d+) │ (\d{4}-\d\d-\d\d) │ deposit", before["text"]) == [("5", "2026-09-19")]

    got = after["batch"]
    assert got["summary"]["redated"]["by"] == [LATER]
    days = {(d["day"], d["date"]): d for d in got["summary"]["days"]}
    assert (5, "2026-09-19") in days and not any(
        "deposit" in (c["note"] or c["function"]).lower() for c in days[5, "2026-09-19"]["calls"]
    )
    assert days[REDATED_DAY, REDATED_DATE]["calls"], days
    name = next(n for n in got["batches"] if f"day-{REDATED_DAY:03d}-{REDATED_DATE}" in n)
    file = got["batches"][name]
    assert LATER in file["meta"]["description"] and checksum(file) == file["meta"]["checksum"]
    assert not any(
        "day-005" in n and "deposit" in got["batches"][n]["meta"]["description"] for n in got["batches"]
    )

    later = _views(config, url, settings, LATER)  # B itself: nothing re-dated it
    assert later["json"]["timeline"] == plan_timeline(plan_b, (T0 + timedelta(days=1)).date()).as_dict()
    assert "re-dated" not in later["text"] and "redated" not in later["batch"]["summary"]


def test_a_re_dated_day_moves_only_deposits_earlier_than_it_and_says_why() -> None:
    """Pure: `schedule` with `redated` puts a deposit no earlier than its day (an Idle entry gives the reason); a
    day no later than the plan's own deposit leaves the timeline exactly as without it."""
    moves = rotation(100.0, "rocketpool-reth", 100.0, book_eth=10_000.0)
    start, holdings = date(2026, 9, 14), {"lido-steth": 100.0}
    plain = schedule(moves, holdings, start)
    held = schedule(moves, holdings, start, redated=Redated(day=15, by=("b",), why="re-dated by proposal b"))
    assert [(e.day, e.kind) for e in held.events] == [(0, "request"), (5, "claim"), (15, "deposit")]
    assert [(i.from_day, i.to_day, i.why) for i in held.idle][-1] == (5, 15, "re-dated by proposal b")
    assert held.as_dict()["redated"] == {
        "day": 15,
        "date": "2026-09-29",
        "by": ["b"],
        "why": "re-dated by proposal b",
    }
    for day in (0, 5):
        same = schedule(moves, holdings, start, redated=Redated(day=day, by=("b",), why="x"))
        assert same == plain and same.as_dict() == plain.as_dict()
