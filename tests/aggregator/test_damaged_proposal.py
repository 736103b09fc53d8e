"""A damaged stored proposal in the real SQLite file: `aggregator show` (a real subprocess) and the API (a real
server) report it as damaged, naming what does not parse, and go on serving the others (before: a traceback and
exit 1, a bare 500)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import load_settings
from tests.conftest import AGGREGATOR, clean_env, free_port

EXIT_STORE = 8


def _garbage(con: sqlite3.Connection, run_id: str) -> None:
    con.execute("update proposals set plan = ? where id = ?", ('{"status": "rebalance", "mo', run_id))


def _missing_field(con: sqlite3.Connection, run_id: str) -> None:
    plan = json.loads(con.execute("select plan from proposals where id = ?", (run_id,)).fetchone()[0])
    del plan["moves"]
    con.execute("update proposals set plan = ? where id = ?", (json.dumps(plan), run_id))


def _bad_time(con: sqlite3.Connection, run_id: str) -> None:
    con.execute("update proposals set created_at = ? where id = ?", ("not a time", run_id))


DAMAGE = {
    "garbage-json": (_garbage, "is not valid JSON"),
    "missing-field": (_missing_field, "lacks the field 'moves'"),
    "bad-time": (_bad_time, "created_at"),
}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request: pytest.FixtureRequest, demo_config: Callable[..., Path]) -> tuple[Path, str, str, str]:
    """Two proposals in the demo store, the first one damaged: (config, damaged id, intact id, expected reason)."""
    config = demo_config()
    service = Service(load_settings(config))
    bad, good = service.rebalance("cli").run_id, service.rebalance("cli").run_id
    damage, reason = DAMAGE[request.param]
    with sqlite3.connect(service.store.url.removeprefix("sqlite:///")) as con:
        damage(con, bad)
    return config, bad, good, reason


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGGREGATOR, *args],
        env=clean_env({"COLUMNS": "200"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_show_reports_a_damaged_proposal_and_the_others_still_show(
    damaged: tuple[Path, str, str, str],
) -> None:
    """`show` of the damaged one: exit 8, a one-line message naming the proposal and the damage, the
    `proposal_damaged` log event, no traceback; `history` still lists both."""
    config, bad, good, reason = damaged
    done = _cli("show", bad, "--config", str(config))
    assert done.returncode == EXIT_STORE, done.stderr[-2000:]
    assert f"proposal {bad} is damaged" in done.stderr and reason in done.stderr
    assert "Traceback" not in done.stderr
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(x["event"] == "proposal_damaged" and x["proposal"] == bad for x in logged)
    history = _cli("history", "--json", "--config", str(config))
    assert history.returncode == 0, history.stderr[-2000:]
    assert {r["id"] for r in json.loads(history.stdout)} == {bad, good}
    if reason == "created_at":  # the table shows the row as damaged
        table = _cli("history", "--config", str(config))
        assert table.returncode == 0 and "damaged" in table.stdout, table.stderr[-2000:]


def test_the_api_reports_a_damaged_proposal_and_serves_the_others(
    damaged: tuple[Path, str, str, str],
) -> None:
    """GET of the damaged one: a JSON 500 saying it is damaged and why (logged `proposal_damaged`); the list,
    the intact proposal and /health are served as before."""
    config, bad, good, reason = damaged
    settings = load_settings(config)
    metrics = Metrics()
    app = create_app(Service(settings, metrics=metrics), metrics, SecretStr("damaged-test-token-0123"))
    server = ApiServer(app, "127.0.0.1", free_port())
    server.start()
    try:
        with capture_logs() as logs, httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = client.get(f"/api/v1/proposals/{bad}")
            assert response.status_code == 500
            detail = response.json()["detail"]
            assert detail.startswith(f"proposal {bad} is damaged") and reason in detail
            listed = client.get("/api/v1/proposals").json()
            assert [r["id"] for r in listed] == [good, bad]
            if reason == "created_at":
                assert listed[1]["created_at"] is None and "created_at" in listed[1]["damaged"]
            assert client.get(f"/api/v1/proposals/{good}").json()["plan"]["status"] == "rebalance"
            assert client.get("/health").json()["status"] == "ok"
        assert [x["proposal"] for x in logs if x["event"] == "proposal_damaged"] == [bad]
    finally:
        server.stop()
