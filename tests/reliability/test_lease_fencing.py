"""The rebalance lease fences the write (issue 14, breaks 4 and 9): a cycle that outlived its lease cannot write
once another has taken it; a lease whose release failed is recognised as this process's own, never reported as
"another rebalance is running"."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from aggregator.coordination import Leases
from aggregator.core.errors import LeaseLostError, StoreError
from aggregator.rates.collect import RateBook
from aggregator.service import LEASE, Service
from aggregator.settings import load_settings
from aggregator.store import Store
from tests.conftest import AGGREGATOR, ROOT, clean_env
from tests.fixture_server import FixtureServer, Reply
from tests.helpers.faults import allow_lease_release, refuse_lease_release
from tests.helpers.postgres import count_rows
from tests.reliability.test_database_faults import pragma

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SLOW = 40  # seconds A's one slow source takes to answer


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _count(db: Path, table: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])


def test_a_stale_holders_write_is_refused_once_another_store_took_the_lease(store_url: str) -> None:
    """Two store handles on one database (a SQLite file, then PostgreSQL). A holds the lease (on another host, so B judges it by the wall
    clock); B's clock passes A's expiry and B takes the lease with the next epoch. A's write is refused, whole;
    B's goes through."""
    url = store_url
    clock_a, clock_b = Clock(T0), Clock(T0)
    a, b = Store(url, now=clock_a), Store(url, now=clock_b)
    fence_a = Leases(a).acquire(LEASE, "elsewhere:1:a", ttl_seconds=600)
    assert fence_a is not None and fence_a.epoch == 1
    assert Leases(b).acquire(LEASE, "elsewhere:2:b", ttl_seconds=600) is None  # A's lease is live
    clock_b.at = T0 + timedelta(seconds=601)
    fence_b = Leases(b).acquire(LEASE, "elsewhere:2:b", ttl_seconds=600)
    assert fence_b is not None and fence_b.epoch > fence_a.epoch

    empty = RateBook(fetched_at=T0, rates=[], rejected=[], failed_sources={}, missing=[])
    with pytest.raises(LeaseLostError, match=r"epoch 1\) is now held by elsewhere:2:b"):
        a.record_cycle(empty, "cli", "run-a", None, apply=False, fence=fence_a)
    assert count_rows(url, "collections") == 0  # nothing of A's cycle
    b.record_cycle(empty, "cli", "run-b", None, apply=False, fence=fence_b)
    assert count_rows(url, "collections") == 1

    Leases(b).release(LEASE, "elsewhere:2:b")  # released: the row is gone, the epoch is not reused
    with pytest.raises(LeaseLostError, match="nobody"):
        a.record_cycle(empty, "cli", "run-a", None, apply=False, fence=fence_a)
    again = Leases(b).acquire(LEASE, "elsewhere:3:c", ttl_seconds=600)
    assert again is not None and again.epoch > fence_b.epoch


def test_a_cli_cycle_that_outlives_its_lease_writes_nothing(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Real processes: A's cycle waits SLOW seconds on a slow source with a 1 s lease (long enough for B's
    process to start on a loaded machine); B takes the expired lease, proposes
    and finishes. A's proposal is refused (`lease_lost`, exit 6): the store holds B's proposal only."""
    db = tmp_path / "two.sqlite"
    with FixtureServer() as server:
        pools = (ROOT / "tests/fixtures/defillama/pools.partly-reconstructed.json").read_bytes()
        server.routes["/slow/pools"] = [Reply(pools, delay=SLOW), Reply(pools)]
        config = demo_config(
            lambda text: (
                text.replace(
                    'quotes = [{ source = "demo", key = "lido-steth.base" }]',
                    'quotes = [{ source = "demo", key = "lido-steth.base" }, '
                    '{ source = "slow", key = "747c1d2a-c668-4682-b9f9-296708a3dd90" }]',
                )
                + f'\n[sources.slow]\nadapter = "defillama"\nbase_url = "{server.url}/slow"\ntimeout_seconds = {SLOW + 30}\n'
            )
        )
        env = clean_env(
            {
                "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
                "AGGREGATOR_SCHEDULE__CYCLE_TIMEOUT_SECONDS": "1",
                "AGGREGATOR_LOGGING__FORMAT": "json",
            }
        )
        cmd = [AGGREGATOR, "rebalance", "--json", "--config", str(config), "--wait", "60"]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as a:
            assert a.stderr is not None
            a_log = []
            for line in a.stderr:
                a_log.append(json.loads(line))
                if a_log[-1]["event"] == "cycle_started":
                    break
            b = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
            a_out, a_err = a.communicate(timeout=120)
    assert b.returncode == 0, b.stderr
    assert a.returncode == 6, a_err
    a_log += [json.loads(line) for line in a_err.splitlines() if line.startswith("{")]
    lost = [e for e in a_log if e["event"] == "lease_lost"]
    assert len(lost) == 1 and "nothing of it was written" in str(lost[0]["error"]), a_log
    assert a_out == ""
    b_log = [json.loads(line) for line in b.stderr.splitlines() if line.startswith("{")]
    b_run = next(e["run_id"] for e in b_log if e["event"] == "rebalance_completed")
    with closing(sqlite3.connect(db)) as conn:
        assert [r[0] for r in conn.execute("select id from proposals")] == [b_run]


@pytest.fixture
def service(demo_config: Callable[..., Path], tmp_path: Path) -> tuple[Service, Path]:
    db = tmp_path / "stale.sqlite"
    settings = load_settings(
        demo_config(lambda t: t.replace("sqlite:///../var/demo.sqlite", f"sqlite:///{db}"))
    )
    return Service(settings), db


def test_a_failed_release_is_recognised_as_our_own_lease_not_another_rebalance(
    service: tuple[Service, Path],
) -> None:
    """The release of the lease fails (the database refuses the delete, as on a full disk): the lease row stays.
    The same process's next cycle starts at once; with the database refusing writes it fails with a StoreError
    (exit 8), not "another rebalance is running" (exit 6); once the fault clears the leftover lease is removed."""
    svc, db = service
    refuse_lease_release(db)
    with capture_logs() as logs:
        svc.rebalance("cli")
    failed = [e for e in logs if e["event"] == "lease_release_failed"]
    assert len(failed) == 1 and "disk is full" in str(failed[0]["error"])
    assert _count(db, "leases") == 1  # left behind

    svc.rebalance("cli", wait_seconds=0)  # our own stale lease: taken again at once, no CycleBusyError
    with pragma(svc, "PRAGMA query_only = 1"), pytest.raises(StoreError) as info:
        svc.rebalance("cli", wait_seconds=0)
    assert "readonly" in str(info.value) and "another rebalance" not in str(info.value)

    svc.retry_release()  # what the daemon's main loop does every few seconds: the fault is still there
    assert _count(db, "leases") == 1
    allow_lease_release(db)  # the disk has room again
    svc.retry_release()
    assert _count(db, "leases") == 0  # no other process waits for the lease's expiry


def test_a_disk_full_cli_cycle_leaves_exit_8_for_the_next_cli_not_another_rebalance(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Break 9 as the operator met it, with real CLI processes: the disk fills (the database refuses the cycle's
    write and the lease's release), so the cycle exits 8 and leaves its lease row. The next CLI, with no waiting
    and the disk still full, must exit 8 again (the store's error), not 6 with a false "another rebalance is
    running" for `cycle_timeout_seconds`; once the disk has room the next one proposes and no lease is left."""
    db = tmp_path / "full.sqlite"
    config = demo_config(lambda t: t.replace("sqlite:///../var/demo.sqlite", f"sqlite:///{db}"))
    env = clean_env({"AGGREGATOR_LOGGING__FORMAT": "json"})
    cmd = [AGGREGATOR, "rebalance", "--json", "--config", str(config), "--wait", "0"]

    def rebalance() -> tuple[int, list[dict[str, object]], str]:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
        return (
            done.returncode,
            [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")],
            done.stderr,
        )

    assert rebalance()[0] == 0  # the store exists, one proposal
    with closing(sqlite3.connect(db)) as conn:
        for table, action in (("leases", "DELETE"), ("proposals", "INSERT")):
            conn.execute(
                f"CREATE TRIGGER full_{table} BEFORE {action} ON {table} "
                "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
            )
        conn.commit()
    code, log, err = rebalance()
    assert code == 8, err[-2000:]
    assert any(e["event"] == "lease_release_failed" for e in log), err[-2000:]
    assert _count(db, "leases") == 1  # the stale lease the issue found

    code, log, err = rebalance()  # at once, the disk still full
    assert code == 8, err[-2000:]
    assert "disk is full" in err and "another rebalance" not in err

    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER full_leases")
        conn.execute("DROP TRIGGER full_proposals")
        conn.commit()
    code, log, err = rebalance()
    assert code == 0, err[-2000:]
    assert _count(db, "proposals") == 2 and _count(db, "leases") == 0
