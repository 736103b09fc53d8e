"""kill -9 at random points of 50 cycles: the daemon, on an accelerated schedule (a rebalance every 0.12 s, a rate
collection every 0.18 s, both writing), is killed at a seeded random moment 50 times and started again each time.

After every kill the store must open, pass SQLite's integrity and foreign-key checks, and hold only whole cycles: every
proposal has its collection and a plan that parses with as many moves as its row says; no collection of a proposal
without its rates. The last start must take over the dead holder's lease and propose."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from optimizer import Plan
from tests.aggregator.test_daemon import _read_until
from tests.conftest import start_daemon

KILLS = 50
PHASES = {  # the last event logged before the kill -> where the kill landed
    "cycle_started": "collecting or solving",
    "move_proposed": "logging the plan",
    "venue_held": "logging the plan",
    "rebalance_completed": "writing the proposal",
    "cycle_finished": "between cycles",
    "rates_collected": "between cycles",
}


def _check_store(db: Path) -> tuple[int, int]:
    """The store's invariants after a crash; returns (collections, proposals)."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        assert con.execute("pragma foreign_key_check").fetchall() == []
        rows = con.execute(
            "select p.id, p.moves, p.plan, c.id, (select count(*) from rates r where r.collection_id = c.id) "
            "from proposals p left join collections c on c.id = p.collection_id"
        ).fetchall()
        for run_id, moves, plan, collection, n_rates in rows:
            assert collection is not None, f"proposal {run_id} without its collection"
            assert n_rates > 0, f"proposal {run_id}: its collection has no rates"
            assert len(Plan.model_validate_json(plan).moves) == moves, f"proposal {run_id} half-written"
        assert con.execute("select count(*) from leases").fetchone()[0] <= 1
        assert con.execute("select count(*) from book").fetchone() == (0,)  # dry run: the book never changes
        collections = con.execute("select count(*) from collections").fetchone()[0]
        return int(collections), len(rows)
    finally:
        con.close()


def test_kill_9_at_random_points_of_fifty_cycles(demo_config: Callable[..., Path], tmp_path: Path) -> None:
    rng = random.Random(9)
    db = tmp_path / "kill.sqlite"
    env = {
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
        "AGGREGATOR_API__ENABLED": "false",
        "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "0.002",
        "AGGREGATOR_SCHEDULE__RATES_EVERY_MINUTES": "0.003",
    }
    config = demo_config()
    landed: Counter[str] = Counter()
    counts = (0, 0)
    for _ in range(KILLS):
        with start_daemon(config, env) as proc:
            _read_until(proc, "daemon_started")
            time.sleep(rng.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            assert proc.stdout is not None
            tail = [json.loads(line)["event"] for line in proc.stdout.read().splitlines()]
        last = next((e for e in reversed(tail) if e in PHASES), "cycle_started")
        landed[PHASES[last]] += 1
        now = _check_store(db)
        assert now >= counts, "a crash lost rows committed before it"
        counts = now
    print(
        f"\n{KILLS} kills landed: {dict(landed)}; store after them: {counts[0]} collections, {counts[1]} proposals"
    )
    assert counts[1] > 0 and landed["collecting or solving"] > 0, landed

    with start_daemon(config, env | {"AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "60"}) as proc:
        try:
            lines = _read_until(proc, "cycle_finished")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert any(e["event"] == "rebalance_completed" and e["trigger"] == "start" for e in lines)
    final = _check_store(db)
    assert final[1] == counts[1] + 1
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from leases").fetchone() == (0,)
    con.close()
