"""The store on a real SQLite file: migrations, history, atomic writes; change across processes; smoothing."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import inspect, text

from aggregator.core.errors import DamagedRecordError, StoreError
from aggregator.rates.collect import ComponentRate, RateBook, Rejection
from aggregator.service.cycle import inputs_for
from aggregator.settings import load_settings
from aggregator.store import MIGRATIONS, Store
from aggregator.store.rows import LatestRates, ListedProposalRow, StoredRateRow
from tests.aggregator.test_cli import run
from tests.helpers.postgres import count_rows

T = datetime(2026, 9, 14, 23, tzinfo=UTC)


def book(at: datetime, value: float, rejected: list[Rejection] | None = None) -> RateBook:
    rate = ComponentRate("lido-steth", "base", value, ("demo",), at, ())
    return RateBook(fetched_at=at, rates=[rate], rejected=rejected or [], failed_sources={"x": "down"})


def test_migrations_create_the_schema_once(store_url: str) -> None:
    """A new database (a SQLite file, or PostgreSQL) gets the schema at the latest revision; opening it again
    changes nothing. A SQLite file is in WAL mode."""
    Store(store_url)
    store = Store(store_url)
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).all() == [(head,)]
        if store.engine.dialect.name == "sqlite":
            assert conn.execute(text("pragma journal_mode")).one() == ("wal",)
        tables = set(inspect(conn).get_table_names())
    assert {"collections", "quotes", "rates", "rejections", "proposals", "book", "leases"} <= tables


def test_window_counts_and_latest_values(store_url: str) -> None:
    """Stored yields come back by component over [since, before), each distinct value once with its count:
    older rows and rows at or after `before` are outside; the latest value wins."""
    store = Store(store_url)
    for days, value in ((10, 0.020), (3, 0.022), (2, 0.024), (1, 0.024), (0, 0.030)):
        store.record_rates(book(T - timedelta(days=days), value), "rates")
    assert store.window_counts(T - timedelta(days=5), before=T) == {
        ("lido-steth", "base"): {0.022: 1, 0.024: 2}
    }
    assert store.window_counts(T + timedelta(days=1), before=T + timedelta(days=2)) == {}
    assert store.latest_values() == {("lido-steth", "base"): 0.030}


def test_a_failed_write_leaves_nothing_behind(store_url: str) -> None:
    """A write that fails after the collection and rates rows were inserted is rolled back whole; the
    constraint error is the store's StoreError, not SQLAlchemy's."""
    store = Store(store_url)
    bad = [Rejection("s", "k", None, None)]  # type: ignore[arg-type]  # reason is NOT NULL
    # SQLite's words, then PostgreSQL's
    with pytest.raises(
        StoreError, match=r'NOT NULL constraint failed|"reason" .*violates not-null constraint'
    ):
        store.record_rates(book(T, 0.02, bad), "rates")
    assert count_rows(store_url, "collections") == 0
    assert count_rows(store_url, "rates") == 0


def test_every_accepted_quote_is_stored_with_its_source(tmp_path: Path) -> None:
    """A CLI collection stores each source's accepted quote beside the component medians."""
    env = {"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/q.sqlite"}
    assert run("rates", "--config", "config/demo.toml", env=env).returncode == 0
    con = sqlite3.connect(tmp_path / "q.sqlite")
    rows = dict(con.execute("select key, value from quotes where source = 'demo'").fetchall())
    assert rows["lido-steth.base"] == pytest.approx(0.02235) and len(rows) == 7
    assert con.execute("select count(*) from quotes where source = 'assumptions'").fetchone() == (3,)


def test_rates_shows_change_since_the_last_run_across_processes(tmp_path: Path) -> None:
    """Two separate `aggregator rates` runs on one database: the second reports the change (zero here)."""
    env = {"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/shared.sqlite"}
    first = json.loads(run("rates", "--json", "--config", "config/demo.toml", env=env).stdout)
    second = json.loads(run("rates", "--json", "--config", "config/demo.toml", env=env).stdout)
    assert {r["change"] for r in first["rates"]} == {None}
    assert {r["change"] for r in second["rates"]} == {0.0}


def test_decisions_see_the_window_median_counted_once_and_a_stale_venue_is_closed_to_entries(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """With window_days = 7 the optimizer sees the median of the week, this cycle's value included exactly once
    whether or not it is stored yet; older rows are outside it. A component without a fresh quote is valued at its
    window's median and its venue closed to entries; with nothing in the window it stays missing."""
    settings = load_settings(demo_config(lambda t: re.sub(r"(?m)^window_days = .*$", "window_days = 7", t)))
    store = Store(f"sqlite:///{tmp_path}/s.sqlite")
    store.record_rates(book(T - timedelta(days=20), 0.10), "rates")  # outside the window
    for days, value in ((3, 0.020), (2, 0.021), (1, 0.99)):  # 0.99: one absurd print in the window
        store.record_rates(book(T - timedelta(days=days), value), "rates")
    current = book(T, 0.026)
    expected = pytest.approx((0.021 + 0.026) / 2)  # median of 0.020, 0.021, 0.026, 0.99
    assert (
        inputs_for(settings, current, store).yields["lido-steth"]["base"] == expected
    )  # before it is stored
    store.record_rates(current, "rates")
    seen = inputs_for(settings, current, store)
    assert seen.yields["lido-steth"]["base"] == expected  # and after: counted once
    assert "rocketpool-reth" not in seen.yields  # no value in the window either: stays missing
    later = RateBook(fetched_at=T + timedelta(hours=1))  # lido-steth has no fresh quote now
    stale = inputs_for(settings, later, store)
    assert stale.yields["lido-steth"]["base"] == pytest.approx((0.021 + 0.026) / 2)
    assert stale.entry_blocked["lido-steth"].startswith("lido-steth.base stale")
    assert "lido-steth" not in seen.entry_blocked


def test_a_yield_gone_stale_past_the_window_is_sold_but_a_store_warming_up_holds(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The store saw stETH's yield 20 days ago and has collected every day since without it: stETH is exit-only
    (may be sold, never bought). A store whose only stETH value is as old but that has not been collecting since
    (a daemon back from a long stop) is warming up: nothing is exit-only; a new empty store neither."""
    settings = load_settings(demo_config(lambda t: re.sub(r"(?m)^window_days = .*$", "window_days = 14", t)))
    watching = Store(f"sqlite:///{tmp_path}/w.sqlite")
    watching.record_rates(book(T - timedelta(days=20), 0.03), "rates")
    for days in range(13, 0, -1):  # daily collections in the window, without stETH
        watching.record_rates(RateBook(fetched_at=T - timedelta(days=days)), "rates")
    now = RateBook(fetched_at=T)
    gone = inputs_for(settings, now, watching)
    assert gone.exit_only["lido-steth"].startswith("lido-steth.base expired")
    assert "lido-steth" in gone.entry_blocked and "lido-steth" not in gone.yields
    assert "eigenlayer-steth" not in gone.exit_only  # its own reward was never stored: held, not sold
    assert "rocketpool-reth" not in gone.exit_only  # never stored: held
    asleep = Store(f"sqlite:///{tmp_path}/a.sqlite")
    asleep.record_rates(book(T - timedelta(days=20), 0.03), "rates")
    asleep.record_rates(RateBook(fetched_at=T - timedelta(hours=1)), "rates")  # back for an hour only
    assert inputs_for(settings, now, asleep).exit_only == {}
    assert inputs_for(settings, now, Store(f"sqlite:///{tmp_path}/n.sqlite")).exit_only == {}


def test_a_daemon_does_not_enter_a_worse_venue_while_a_newly_stored_better_one_warms_up(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """rETH has been stored for 20 days at 2.9 %; stETH's source was added two days ago (3.3 %, 3 of the 5 values
    the gate needs): rETH waits for stETH instead of taking the idle ETH. The same values in a store that also held
    stETH before the window (not new) leave rETH open: only the gate closes stETH, as before."""

    def edit(text: str) -> str:
        text = re.sub(r"(?m)^window_days = .*$", "window_days = 14", text)
        return re.sub(r"(?m)^min_observations = 1$", "min_observations = 5", text)

    settings = load_settings(demo_config(edit))

    def rates(at: datetime, steth: bool) -> RateBook:
        out = [ComponentRate("rocketpool-reth", "base", 0.029, ("demo",), at, ())]
        if steth:
            out.append(ComponentRate("lido-steth", "base", 0.033, ("demo",), at, ()))
        return RateBook(fetched_at=at, rates=out, rejected=[], failed_sources={})

    now = rates(T, steth=True)
    for name, old_steth in (("new", False), ("old", True)):
        store = Store(f"sqlite:///{tmp_path}/{name}.sqlite")
        store.record_rates(rates(T - timedelta(days=20), steth=old_steth), "rates")
        for days in range(13, 0, -1):
            store.record_rates(rates(T - timedelta(days=days), steth=days <= 2), "rates")
        seen = inputs_for(settings, now, store)
        assert seen.entry_blocked["lido-steth"] == "lido-steth.base too few observations: 3 of the 5 needed"
        if name == "new":
            assert seen.entry_blocked["rocketpool-reth"].startswith("waiting for lido-steth to warm up")
        else:
            assert "rocketpool-reth" not in seen.entry_blocked


def _proposal_row(url: str, run_id: str, turnover: object) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        con.execute(
            "insert into proposals (id, created_at, trigger, mode, status, reason, moves, turnover, yield_before, "
            "yield_after, cvar_before, cvar_after, gain_bps, collection_id, plan) "
            "values (?, '2026-09-14 23:00:00.000000', 'cli', 'dry_run', 'hold', 'why', 0, ?, 0.03, 0.03, 0.01, "
            "0.01, 0.0, 1, '{}')",
            (run_id, turnover),
        )


def test_reads_return_frozen_typed_rows(tmp_path: Path) -> None:
    """The store's reads leave it as the pydantic rows of `aggregator.store.rows` (frozen: a reader cannot
    change what another reads), with aware UTC times; `damaged` is unset on an intact row, so the listing's
    JSON is the shape it was."""
    url = f"sqlite:///{tmp_path}/store.sqlite"
    store = Store(url)
    store.record_rates(book(T, 0.031, [Rejection("demo", "k", 0.5, "quarantined jump from 0.03")]), "rates")
    _proposal_row(url, "a1", 0.25)
    latest = store.latest_rates()
    assert isinstance(latest, LatestRates)
    assert latest.fetched_at == T and latest.failed_sources == {"x": "down"}
    assert isinstance(latest.rates[0], StoredRateRow) and latest.rates[0].value == 0.031
    assert latest.rejected[0].reason == "quarantined jump from 0.03"
    [row] = store.proposals()
    assert isinstance(row, ListedProposalRow) and row.turnover == 0.25
    assert row.created_at == datetime(2026, 9, 14, 23, tzinfo=UTC)
    assert "damaged" not in row.model_fields_set
    with pytest.raises(ValidationError, match="frozen"):
        row.turnover = 0.0  # type: ignore[misc]


def test_a_row_column_that_does_not_fit_is_the_rows_damage(tmp_path: Path) -> None:
    """A stored proposal whose number is text is reported as that proposal's damage (DamagedRecordError naming
    it and the field), not as pydantic's error escaping the store."""
    url = f"sqlite:///{tmp_path}/store.sqlite"
    store = Store(url)
    store.record_rates(book(T, 0.031), "rates")
    _proposal_row(url, "b2", "lots")
    with pytest.raises(DamagedRecordError, match=r"proposal b2 is damaged: its row does not parse: turnover"):
        store.proposals()
