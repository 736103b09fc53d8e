"""The plan's timeline and Safe batches over the real HTTP API (issue #16)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import load_settings
from execution.safe import checksum
from optimizer import Move
from tests.conftest import free_port
from tests.helpers.api import api_client
from tests.helpers.settings import demo_settings

TOKEN = "t0ken-for-tests-0123456789"
SAFE = "0x1111111111111111111111111111111111111111"


def test_a_proposal_has_its_timeline_and_its_safe_batches(demo_config: Callable[..., Path]) -> None:
    service = Service(load_settings(demo_config()))
    metrics = Metrics()
    server = ApiServer(create_app(service, metrics, SecretStr(TOKEN)), "127.0.0.1", free_port())
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120) as client:
            booked = client.get("/api/v1/book").json()
            assert booked["source"] == "config" and booked["holdings_eth"]["eigenlayer-steth"] == 4000.0
            made = client.post("/api/v1/rebalance", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
            assert made.status_code == 200, made.text
            proposal = made.json()["proposal"]
            assert made.json()["timeline"]["events"]
            shown = client.get(f"/api/v1/proposals/{proposal}").json()
            timeline = shown["timeline"]
            moves = shown["plan"]["moves"]
            # the demo exits EigenLayer (14 days) and Lido (5 days): their claims fall on those days
            queued = {m["from_venue"]: m["days"] for m in moves if m["route"] == "queue"}
            claims = {e["from_venue"]: e["day"] for e in timeline["events"] if e["kind"] == "claim"}
            assert claims == {v: int(d) for v, d in queued.items()} and claims
            assert client.get(f"/api/v1/proposals/{proposal}/safe-batch").status_code == 400  # no Safe known
            assert client.get(f"/api/v1/proposals/{proposal}/safe-batch?safe=0x12").status_code == 422
            got = client.get(f"/api/v1/proposals/{proposal}/safe-batch?safe={SAFE}").json()
            assert got["summary"]["plan"] == proposal
            assert got["batches"]
            for batch in got["batches"].values():
                assert checksum(batch) == batch["meta"]["checksum"]
                assert proposal in batch["meta"]["description"]
            listed = [m for d in got["summary"]["days"] for m in d["manual"]]
            assert listed  # the claims at least are manual, and listed
    finally:
        server.stop()


def test_a_plans_deposits_wait_in_its_timeline_and_safe_batches_for_an_earlier_plans_exits(
    tmp_path: Path,
) -> None:
    """The demo's first plan, applied at T0, sends stETH through Lido's 5-day queue (its deposits wait until T0+5 in
    the book). A plan made a day later that only deposits settled stETH into EigenLayer has no exits of its own, but
    the book still has capital in the queue: its timeline and its Safe batches put the deposit on day 4 (when the
    earlier exit lands, as the book makes it), not on day 0, over the real API."""
    t0 = datetime(2026, 9, 14, 12, 0, tzinfo=UTC)
    settings = demo_settings(
        tmp_path, database={"url": f"sqlite:///{tmp_path}/a.db"}, limits={"max_turnover": 1.0}
    )
    clock = {"now": t0}
    service = Service(settings, now=lambda: clock["now"])
    first = service.rebalance("cli", apply=True).plan
    lido = [m for m in first.moves if m.action == "withdraw" and m.from_venue == "lido-steth" and m.days > 0]
    assert lido and lido[0].days == 5.0, first.moves
    clock["now"] = t0 + timedelta(days=1)
    later = service.rebalance("cli")  # a dry run at T0+1: solved with the first plan's capital in flight
    flights = later.plan.problem.inputs.in_flight
    assert flights and {f.days_left for f in flights} == {4.0}
    deposit = Move(
        step=1, action="deposit", venue="eigenlayer-steth", from_venue="lido-steth", to_venue="eigenlayer-steth",
        amount_eth=500.0, share=0.05, cost_eth=0.0, days=0.0, route="deposit",
    )  # fmt: skip
    plan = later.plan.model_copy(update={"status": "rebalance", "moves": [deposit]})
    service.store.record_cycle(later.book, "cli", "later-plan", plan, apply=False)
    with api_client(settings, TOKEN) as client:
        timeline = client.get("/api/v1/proposals/later-plan").json()["timeline"]
        got = client.get(f"/api/v1/proposals/later-plan/safe-batch?safe={SAFE}").json()
    assert [(e["day"], e["date"], e["kind"]) for e in timeline["events"]] == [(4, "2026-09-19", "deposit")]
    assert [(i["from_day"], i["to_day"], i["venue"], i["why"]) for i in timeline["idle"]] == [
        (
            0,
            4,
            "lido-steth",
            "waiting for earlier plans' exits to land before it is deposited into eigenlayer-steth",
        )
    ]
    assert [(d["day"], d["date"]) for d in got["summary"]["days"]] == [(4, "2026-09-19")]
    assert all("day-004-2026-09-19" in name for name in got["batches"])
