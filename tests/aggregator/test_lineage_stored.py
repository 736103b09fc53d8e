"""Source lineage is stored with each collection's rates (migration 0008) and served by GET /api/v1/rates (issue 20):
how many independent observations a rate rests on, "2 independent of 3", and per observation its origin and the
sources that reported it. A real SQLite file, sources on a local HTTP server, the API on a real server; rates
stored before 0008 have no lineage (null), and are still served."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from pydantic import SecretStr

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import Settings, load_settings
from aggregator.store import MIGRATIONS, Store
from tests.adapters.cases import FIXTURES
from tests.conftest import free_port
from tests.fixture_server import FixtureServer, Reply

STETH_POOL = "747c1d2a-c668-4682-b9f9-296708a3dd90"
ROW = "lido-steth", "base"


def _three_ways(server: FixtureServer) -> Callable[[str], str]:
    """stETH's base yield quoted by the demo snapshot, Lido's API and DefiLlama (whose stETH number is Lido's API):
    three sources, two independent observations."""
    last = json.loads((FIXTURES / "lido/apr_last.reconstructed.json").read_text())
    last["data"]["timeUnix"] = int(time.time()) - 600  # fresh for the wall clock the service runs on
    server.routes["/lido/v1/protocol/steth/apr/last"] = [Reply(json.dumps(last).encode())]
    server.routes["/llama/pools"] = [
        Reply((FIXTURES / "defillama/pools.partly-reconstructed.json").read_bytes())
    ]

    def edit(text: str) -> str:
        old = 'quotes = [{ source = "demo", key = "lido-steth.base" }]'
        assert old in text
        return text.replace(
            old,
            'quotes = [{ source = "demo", key = "lido-steth.base" }, { source = "lido", key = "apr_last" }, '
            f'{{ source = "llama", key = "{STETH_POOL}" }}]',
        ) + (
            f'\n[sources.lido]\nadapter = "lido"\nbase_url = "{server.url}/lido"\n'
            f'\n[sources.llama]\nadapter = "defillama"\nbase_url = "{server.url}/llama"\n'
        )

    return edit


@contextmanager
def _api(settings: Settings) -> Iterator[httpx.Client]:
    """The API on a real server over a fresh service (a new process would read the same file)."""
    metrics = Metrics()
    app = create_app(Service(settings, metrics=metrics), metrics, SecretStr("lineage-test-token-0123456"))
    server = ApiServer(app, "127.0.0.1", free_port())
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
            yield client
    finally:
        server.stop()


def _rates(client: httpx.Client) -> dict[tuple[str, str], dict[str, Any]]:
    response = client.get("/api/v1/rates")
    assert response.status_code == 200, response.text
    return {(r["venue"], r["component"]): r for r in response.json()["rates"]}


def test_the_api_serves_each_rates_lineage_from_the_store(demo_config: Callable[..., Path]) -> None:
    with FixtureServer() as server:
        settings = load_settings(demo_config(_three_ways(server)))
        book = Service(settings).collect("cli")
    live = next(r for r in book.rates if (r.venue, r.component) == ROW)
    assert live.sources == ("demo", "lido", "llama") and live.independent == 2
    db = settings.database.url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:
        stored = con.execute(
            "select independent, lineage from rates where venue = ? and component = ?", ROW
        ).fetchone()
    assert stored[0] == 2
    assert sorted(json.loads(stored[1])) == ["demo:lido-steth.base: demo", "lido-api: lido, llama"]
    with _api(settings) as client:
        served = _rates(client)
    steth = served[ROW]
    assert steth["independent"] == 2
    assert steth["independence"] == "2 independent of 3"
    assert sorted(steth["lineage"]) == ["demo:lido-steth.base: demo", "lido-api: lido, llama"]
    one = served[("rocketpool-reth", "base")]  # one source: one observation
    assert (one["independent"], one["independence"]) == (1, "1 source")
    assert one["lineage"] == ["demo:rocketpool-reth.base: demo"]
    assert {tuple(k) for k in served} == {(r.venue, r.component) for r in book.rates}


def test_rates_stored_before_migration_0008_are_served_without_lineage(tmp_path: Path) -> None:
    """A store at 0007 with a collection in it: opening it migrates to 0008, the old rows get no lineage (null,
    not a guess), and GET /api/v1/rates serves them."""
    url = f"sqlite:///{tmp_path}/old.sqlite"
    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
        conn.execute(
            sa.text(
                'insert into collections (id, fetched_at, "trigger", failed_sources) '
                "values (1, '2026-11-24 12:00:00', 'rates', '{}')"
            )
        )
        conn.execute(
            sa.text(
                "insert into rates (collection_id, venue, component, value, sources, observed_at, spread) "
                "values (1, 'lido-steth', 'base', 0.0223, 'demo,lido', '2026-11-24 11:00:00', 0.001)"
            )
        )
    engine.dispose()
    store = Store(url)
    latest = store.latest_rates()
    assert latest is not None
    assert latest.rates[0].model_dump() | {"observed_at": None} == {
        "venue": "lido-steth",
        "component": "base",
        "value": 0.0223,
        "sources": ["demo", "lido"],
        "observed_at": None,
        "spread": 0.001,
        "independent": None,
        "independence": None,
        "lineage": None,
    }
    store.engine.dispose()


def test_the_api_serves_rows_without_lineage(demo_config: Callable[..., Path]) -> None:
    """The same over HTTP: a stored collection whose rows have no lineage is a 200 with nulls."""
    settings = load_settings(demo_config())
    Service(settings).collect("cli")
    with sqlite3.connect(settings.database.url.removeprefix("sqlite:///")) as con:
        con.execute("update rates set independent = null, lineage = null")
    with _api(settings) as client:
        served = _rates(client)
    assert served and all(
        r["independent"] is None and r["lineage"] is None and r["independence"] is None
        for r in served.values()
    )
