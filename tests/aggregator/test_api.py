"""The HTTP API on a real uvicorn server over 127.0.0.1: reads, authenticated rebalances, refusals, metrics."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import Request, Response
from pydantic import SecretStr
from structlog.testing import capture_logs

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import load_settings
from aggregator.store.rows import ListedProposalRow
from tests.conftest import free_port

TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture
def api(demo_config: Callable[..., Path], tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    settings = load_settings(demo_config())
    db = Path(settings.database.url.removeprefix("sqlite:///"))
    metrics = Metrics()
    service = Service(settings, metrics=metrics)
    server = ApiServer(create_app(service, metrics, SecretStr(TOKEN)), "127.0.0.1", free_port())
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client:
            yield client, db
    finally:
        server.stop()


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_reads_before_any_cycle(api: tuple[httpx.Client, Path]) -> None:
    """Health answers; no rates and no proposals yet; OpenAPI lists every route."""
    client, _ = api
    assert client.get("/health").json() == {
        "status": "ok",
        "last_successful_cycle": None,
        "dry_run_default": True,
    }
    assert client.get("/api/v1/rates").status_code == 404
    assert client.get("/api/v1/proposals").json() == []
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/metrics", "/api/v1/rates", "/api/v1/proposals", "/api/v1/rebalance"} <= set(paths)


@pytest.mark.parametrize("headers", [{}, auth("wrong"), {"Authorization": "Basic Zm9vOmJhcg=="}])
def test_unauthenticated_rebalance_is_refused_and_writes_nothing(
    api: tuple[httpx.Client, Path], headers: dict[str, str]
) -> None:
    """No token, a wrong token or another scheme: 401, and no collection or proposal is written."""
    client, db = api
    response = client.post("/api/v1/rebalance", json={}, headers=headers)
    assert response.status_code == 401
    assert count(db, "proposals") == 0 and count(db, "collections") == 0


@pytest.mark.parametrize(
    ("body", "field"), [({"apply": "yes"}, "apply"), ({"dry": True}, "dry"), ([1, 2], "body")]
)
def test_bad_bodies_get_422_with_the_reason(api: tuple[httpx.Client, Path], body: object, field: str) -> None:
    """A wrong type, an unknown field or a non-object body: 422 naming it, nothing written."""
    client, db = api
    response = client.post("/api/v1/rebalance", json=body, headers=auth())
    assert response.status_code == 422
    assert field in str(response.json()["detail"])
    assert count(db, "proposals") == 0


def test_authenticated_dry_run_is_recorded_and_served(api: tuple[httpx.Client, Path]) -> None:
    """With the token a dry run proposes; the proposal, the rates and the metrics are then served; the token
    never reaches the logs."""
    client, db = api
    with capture_logs() as logs:
        response = client.post("/api/v1/rebalance", json={}, headers=auth())
    assert response.status_code == 200
    run_id = response.json()["proposal"]
    assert TOKEN not in str(logs)
    rows = client.get("/api/v1/proposals").json()
    assert [(r["id"], r["trigger"], r["mode"]) for r in rows] == [(run_id, "api", "dry_run")]
    shown = client.get(f"/api/v1/proposals/{run_id}").json()
    assert shown["plan"]["status"] == "rebalance" and shown["plan"]["moves"]
    assert client.get("/api/v1/proposals/nope").status_code == 404
    rates = client.get("/api/v1/rates").json()
    assert {r["venue"] for r in rates["rates"]} >= {"lido-steth", "kelp-rseth"}
    text = client.get("/metrics").text
    assert 'aggregator_proposals_total{mode="dry_run",status="rebalance"} 1.0' in text
    assert 'aggregator_source_fetch_seconds_count{source="demo"} 1.0' in text
    assert client.get("/health").json()["last_successful_cycle"] is not None
    assert count(db, "book") == 0  # a dry run never moves the book


def test_state_changes_are_disabled_without_a_configured_token(demo_config: Callable[..., Path]) -> None:
    """With no api.token set, POST is refused (403) whatever the header says."""
    settings = load_settings(demo_config())
    metrics = Metrics()
    server = ApiServer(
        create_app(Service(settings, metrics=metrics), metrics, None), "127.0.0.1", free_port()
    )
    server.start()
    try:
        response = httpx.post(f"http://127.0.0.1:{server.port}/api/v1/rebalance", json={}, headers=auth())
        assert response.status_code == 403 and "api.token" in response.json()["detail"]
    finally:
        server.stop()


def test_database_reads_use_at_most_api_threads_and_health_answers_meanwhile(
    demo_config: Callable[..., Path],
) -> None:
    """With `threads = 2`, six slow reads at once run two at a time (the rest wait their turn), and /health and
    /metrics still answer while both threads are held."""
    settings = load_settings(demo_config())
    metrics = Metrics()
    service = Service(settings, metrics=metrics)
    gate = threading.Event()
    lock = threading.Lock()
    running, peak = 0, 0
    real = service.store.proposals

    def slow_proposals(limit: int = 20) -> list[ListedProposalRow]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            gate.wait(timeout=30)
            return real(limit)
        finally:
            with lock:
                running -= 1

    service.store.proposals = slow_proposals  # type: ignore[method-assign]
    app = create_app(service, metrics, SecretStr(TOKEN))
    arrived = 0

    @app.middleware("http")
    async def count_arrivals(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        nonlocal arrived
        if request.url.path == "/api/v1/proposals":
            with lock:
                arrived += 1
        return await call_next(request)

    server = ApiServer(app, "127.0.0.1", free_port(), threads=2)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with ThreadPoolExecutor(6) as pool:
            replies = [pool.submit(httpx.get, f"{base}/api/v1/proposals", timeout=30) for _ in range(6)]
            deadline = time.monotonic() + 10
            while running < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert running == 2
            assert httpx.get(f"{base}/health", timeout=5).status_code == 200
            assert httpx.get(f"{base}/metrics", timeout=5).status_code == 200
            while arrived < 6 and time.monotonic() < deadline:  # all six are in the server, four queued
                time.sleep(0.01)
            assert arrived == 6 and running == 2
            gate.set()
            assert [r.result().status_code for r in replies] == [200] * 6
        assert peak == 2
    finally:
        gate.set()
        server.stop()


def test_every_json_response_is_a_documented_model(api: tuple[httpx.Client, Path]) -> None:
    """/openapi.json names a response model for each JSON route (before, each was an untyped object); the served
    bodies keep their shapes: a proposal row has no `damaged` key unless damaged, times keep "+00:00"."""
    client, _ = api
    paths = client.get("/openapi.json").json()["paths"]

    def schema(path: str, method: str = "get") -> object:
        return paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]

    assert schema("/health") == {"$ref": "#/components/schemas/HealthBody"}
    assert schema("/api/v1/rates") == {"$ref": "#/components/schemas/LatestRates"}
    assert schema("/api/v1/book") == {"$ref": "#/components/schemas/BookBody"}
    assert schema("/api/v1/proposals")["items"] == {"$ref": "#/components/schemas/ListedProposalRow"}  # type: ignore[index]
    assert schema("/api/v1/proposals/{proposal_id}") == {"$ref": "#/components/schemas/ProposalBody"}
    assert schema("/api/v1/rebalance", "post")["anyOf"] == [  # type: ignore[index]
        {"$ref": "#/components/schemas/RebalanceWithSensitivityBody"},
        {"$ref": "#/components/schemas/RebalanceBody"},
    ]

    made = client.post("/api/v1/rebalance", json={}, headers=auth())
    assert made.status_code == 200 and set(made.json()) == {"proposal", "plan", "timeline"}
    [row] = client.get("/api/v1/proposals").json()
    assert (
        "damaged" not in row and row["created_at"].endswith("+00:00") and row["id"] == made.json()["proposal"]
    )
    shown = client.get(f"/api/v1/proposals/{row['id']}").json()
    assert shown["proposal"] == row and shown["plan"] == made.json()["plan"]
    assert client.get("/api/v1/rates").json()["fetched_at"].endswith("+00:00")
