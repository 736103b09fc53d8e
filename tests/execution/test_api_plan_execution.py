"""The plan's timeline and Safe batches over the real HTTP API (issue #16)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import SecretStr

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import load_settings
from execution.safe import checksum
from tests.conftest import free_port

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
