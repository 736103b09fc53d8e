"""A stored book naming a venue the config no longer has (issue 19): the cycle starts from the book restricted to
the known venues and says so (`book_venue_unknown`); before, every cycle failed with a pydantic error (CLI exit 1,
daemon `rebalance_failed` forever). A SIGHUP to such a config reports it."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from structlog.testing import capture_logs

from aggregator.service import Service
from aggregator.settings import load_settings
from tests.aggregator.test_cli import run
from tests.aggregator.test_daemon import _read_until
from tests.conftest import free_port, start_daemon


def _book_with_a_removed_venue(db: Path) -> None:
    """The book as an applied plan left it, plus 250 ETH in a venue the config has since dropped."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "insert into book (venue, amount_eth, updated_at, proposal_id) "
            "values ('retired-venue', 250.0, '2026-11-01 00:00:00', NULL)"
        )
        conn.commit()


def test_the_cycle_starts_from_the_known_venues_and_reports_the_others(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    db = tmp_path / "book.sqlite"
    settings = load_settings(
        demo_config(lambda t: t.replace("sqlite:///../var/demo.sqlite", f"sqlite:///{db}"))
    )
    service = Service(settings)
    service.rebalance("cli", apply=True)
    book = service.store.book()
    assert book is not None
    _book_with_a_removed_venue(db)

    with capture_logs() as logs:
        plan = service.rebalance("cli").plan
    unknown = [e for e in logs if e["event"] == "book_venue_unknown"]
    assert len(unknown) == 1 and unknown[0]["venues"] == {"retired-venue": 250.0}
    assert "add these venues back" in str(unknown[0]["fix"])
    assert plan.problem.inputs.holdings_eth == book  # the known venues, as applied

    out = run(
        "rebalance", "--config", "config/demo.toml", env={"AGGREGATOR_DATABASE__URL": f"sqlite:///{db}"}
    )
    assert out.returncode == 0, out.stderr
    assert "book_venue_unknown" in out.stderr


def test_the_daemon_keeps_proposing_and_a_reload_reports_the_unknown_venue(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    db = tmp_path / "daemon-book.sqlite"
    env = {"AGGREGATOR_DATABASE__URL": f"sqlite:///{db}"}
    config = demo_config()
    assert run("rebalance", "--apply", "--config", str(config), env=env).returncode == 0
    _book_with_a_removed_venue(db)
    with start_daemon(config, env | {"AGGREGATOR_API__PORT": str(free_port())}) as proc:
        try:
            lines = _read_until(proc, "cycle_finished", timeout=120)
            events = [e["event"] for e in lines]
            assert "book_venue_unknown" in events and "rebalance_completed" in events
            assert "rebalance_failed" not in events
            proc.send_signal(signal.SIGHUP)
            _read_until(proc, "config_reloaded", timeout=120)
            reported = _read_until(proc, "book_venue_unknown", timeout=120)[-1]
            assert reported["venues"] == {"retired-venue": 250.0} and reported["path"] == str(config)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
