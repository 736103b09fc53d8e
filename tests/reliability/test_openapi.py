"""schemathesis against the API's own OpenAPI spec, served by a real uvicorn server on 127.0.0.1.

Every operation gets generated requests (valid and invalid parameters, bodies, headers, bearer tokens). For each:
no 5xx, the status and content type are ones the spec documents, and a state-changing request without the right
token is refused (400/401/403/405/422) and writes nothing."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import load_settings
from tests.conftest import copy_demo, free_port

TOKEN = "openapi-test-token-value"
TABLES = ("collections", "rates", "proposals", "book", "leases")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The daemon's API on the demo config, with one proposal already recorded."""
    home = tmp_path_factory.mktemp("openapi")
    db = home / "api.sqlite"
    cfg = load_settings(copy_demo(home))
    cfg = cfg.model_copy(update={"database": cfg.database.model_copy(update={"url": f"sqlite:///{db}"})})
    service = Service(cfg)
    service.rebalance("cli")
    metrics = Metrics()
    server = ApiServer(create_app(service, metrics, SecretStr(TOKEN)), "127.0.0.1", free_port())
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", db
    finally:
        server.stop()


def _spec() -> dict[str, Any]:
    """The spec of an app over a real service on a demo copy of its own (the app reads the store when built)."""
    home = Path(tempfile.mkdtemp(prefix="openapi-spec-"))
    cfg = load_settings(copy_demo(home))
    db = cfg.database.model_copy(update={"url": f"sqlite:///{home / 'spec.sqlite'}"})
    service = Service(cfg.model_copy(update={"database": db}))
    return create_app(service, Metrics(), SecretStr(TOKEN)).openapi()


# The spec the server publishes at /openapi.json (checked equal below), built from the same app at import time:
# schemathesis's fixture-based loading does not work with this pytest.
SPEC = _spec()
schema = schemathesis.openapi.from_dict(SPEC)


def test_the_server_publishes_the_spec_under_test(api: tuple[str, Path]) -> None:
    assert httpx.get(f"{api[0]}/openapi.json", timeout=10).json() == SPEC


def _counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_against_its_openapi_spec(case: schemathesis.Case[Any], api: tuple[str, Path]) -> None:
    url, db = api
    before = _counts(db)
    response = case.call_and_validate(
        base_url=url, checks=[not_a_server_error, status_code_conformance, content_type_conformance]
    )
    if case.method.upper() not in {"GET", "HEAD", "OPTIONS"}:
        given = case.headers.get("Authorization", "") if case.headers else ""
        if given != f"Bearer {TOKEN}":
            assert response.status_code in {400, 401, 403, 405, 422}, response.text
            assert _counts(db) == before, "an unauthenticated request changed state"
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200


@schema.include(method="POST").parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_authenticated_writes_against_the_spec(case: schemathesis.Case[Any], api: tuple[str, Path]) -> None:
    """With the right token, generated bodies either propose (one whole proposal more) or are refused unwritten."""
    url, db = api
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or None)
    headers["Authorization"] = f"Bearer {TOKEN}"
    case.headers = headers
    before = _counts(db)
    response = case.call_and_validate(
        base_url=url,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance],
    )
    after = _counts(db)
    if response.status_code == 200:
        assert after["proposals"] == before["proposals"] + 1
        proposal = response.json()["proposal"]
        assert httpx.get(f"{url}/api/v1/proposals/{proposal}", timeout=10).status_code == 200
    else:
        assert response.status_code in {400, 405, 422}, response.text
        assert after == before
