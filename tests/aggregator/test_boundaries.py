"""Third-party errors stay in the layer that called them (issue 19): SQLAlchemy's in the store (a failed read is a
StoreError naming what was read), pydantic's in the service (inputs that do not validate are a ConfigError naming
the field); and capital in flight to or from a venue the config dropped no longer fails every cycle."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from aggregator.core.errors import ConfigError, StoreError
from aggregator.service import Service
from aggregator.service.cycle import run_cycle
from aggregator.store import Store
from optimizer import ModelCache
from tests.helpers.settings import demo_settings


def test_a_failed_read_is_a_store_error_naming_the_read(tmp_path: Path) -> None:
    db = tmp_path / "reads.sqlite"
    store = Store(f"sqlite:///{db}")
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("drop table proposals")
        conn.commit()
    with pytest.raises(StoreError, match=r"reading the proposals failed on .*no such table: proposals"):
        store.proposals()


def test_inputs_that_do_not_validate_are_a_config_error_naming_the_field(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path, database={"url": f"sqlite:///{tmp_path / 'inputs.sqlite'}"})
    service = Service(settings)
    book = service.collect("cli")
    with pytest.raises(ConfigError, match=r"holdings name unknown venues \['nowhere'\]"):
        run_cycle(
            settings,
            book,
            cache=ModelCache(),
            trigger="cli",
            now=service.now,
            holdings={"nowhere": 10.0},
        )


def test_capital_in_flight_at_a_dropped_venue_is_reported_and_the_cycle_proposes(tmp_path: Path) -> None:
    db = tmp_path / "flight.sqlite"
    settings = demo_settings(tmp_path, database={"url": f"sqlite:///{db}"})
    service = Service(settings)
    service.rebalance("cli", apply=True)
    due = (datetime.now(UTC) + timedelta(days=3)).replace(tzinfo=None).isoformat(sep=" ")
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "insert into in_flight (from_venue, to_venue, amount_eth, due_at, proposal_id) "
            "values ('retired-venue', 'lido-steth', 100.0, ?, NULL)",
            (due,),
        )
        conn.commit()
    with capture_logs() as logs:
        plan = service.rebalance(
            "cli"
        ).plan  # before: pydantic's "in_flight names unknown venues", every cycle
    reported = [e for e in logs if e["event"] == "in_flight_venue_unknown"]
    assert reported and reported[0]["exits"] == [{"from": "retired-venue", "to": "lido-steth", "eth": 100.0}]
    assert all(f.from_venue != "retired-venue" for f in plan.problem.inputs.in_flight)
