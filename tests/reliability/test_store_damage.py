"""A damaged SQLite store is noticed and never written to (issue 14, break 7): garbage in the middle of the file,
damage found while running, a `-wal` file deleted under a running daemon; `db check` and `db backup`."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from aggregator.core.errors import StoreDamagedError
from aggregator.service import Service
from aggregator.settings import load_settings
from aggregator.store.integrity import RECOVERY
from tests.aggregator.test_cli import run
from tests.aggregator.test_daemon import _read_until
from tests.conftest import free_port, start_daemon

GARBAGE = b"\xde\xad\xbe\xef"


def _garble(db: Path) -> None:
    """Checkpoint, then write garbage over four pages in the middle of the file."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with db.open("r+b") as f:
        f.seek(size * (pages // 2))
        f.write(GARBAGE * size)  # 4 pages


def _proposals(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("select count(*) from proposals").fetchone()[0])


def _integrity(db: Path) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_garbage_in_the_middle_of_the_file_refuses_every_command_with_the_recovery(tmp_path: Path) -> None:
    db = tmp_path / "damaged.sqlite"
    env = {"AGGREGATOR_DATABASE__URL": f"sqlite:///{db}"}
    for _ in range(3):
        assert run("rebalance", "--config", "config/demo.toml", env=env).returncode == 0
    _garble(db)
    size = db.stat().st_size

    out = run("rebalance", "--config", "config/demo.toml", env=env)
    assert out.returncode == 8, out.stderr
    assert (
        "database error:" in out.stderr and "is damaged" in out.stderr and "aggregator db check" in out.stderr
    )
    assert "Traceback" not in out.stderr
    assert db.stat().st_size == size  # nothing written

    check = run("db", "check", "--config", "config/demo.toml", env=env)
    assert check.returncode == 8
    assert "fails PRAGMA integrity_check" in check.stderr and "aggregator db backup" in check.stderr


def test_damage_found_while_running_refuses_later_writes(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    db = tmp_path / "running.sqlite"
    settings = load_settings(
        demo_config(lambda t: t.replace("sqlite:///../var/demo.sqlite", f"sqlite:///{db}"))
    )
    service = Service(settings)
    service.rebalance("cli")
    service.rebalance("cli")
    assert service.store.check_integrity() is None
    _garble(db)
    damage = service.store.check_integrity()  # what the daemon's periodic job calls
    assert damage is not None and "is damaged" in str(damage)
    with pytest.raises(StoreDamagedError) as info:
        service.rebalance("cli")
    assert RECOVERY in str(info.value)


def test_db_check_passes_a_sound_store(tmp_path: Path) -> None:
    env = {"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/ok.sqlite"}
    assert run("rebalance", "--config", "config/demo.toml", env=env).returncode == 0
    out = run("db", "check", "--config", "config/demo.toml", env=env)
    assert out.returncode == 0 and "passes PRAGMA integrity_check" in out.stdout


def test_backup_while_the_daemon_runs_then_a_deleted_wal_is_detected(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A running daemon proposing every 1.2 s: `db backup` gives a sound copy with its proposals; then deleting
    the -wal file under it is logged as `store_damaged` and every later write is refused, instead of the
    proposals being logged as completed and lost."""
    db = tmp_path / "live.sqlite"
    config = demo_config()
    env = {
        "AGGREGATOR_API__PORT": str(free_port()),
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
        "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "0.02",
    }
    with start_daemon(config, env) as proc:
        try:
            _read_until(proc, "cycle_finished", timeout=120)
            _read_until(proc, "cycle_finished", timeout=120)
            copy = tmp_path / "backup.sqlite"
            out = run("db", "backup", str(copy), "--config", str(config), env=env)
            assert out.returncode == 0, out.stderr
            assert _integrity(copy) == "ok" and _proposals(copy) >= 2
            assert not Path(f"{copy}-wal").exists()  # one self-contained file
            assert (
                run("db", "backup", str(copy), "--config", str(config), env=env).returncode == 2
            )  # no overwrite

            Path(f"{db}-wal").unlink()
            damaged = _read_until(proc, "store_damaged", timeout=120)[-1]
            assert "write-ahead log" in str(damaged["error"]) and "was deleted" in str(damaged["error"])
            failed = _read_until(proc, "rebalance_failed", timeout=120)[-1]
            assert "write-ahead log" in str(failed["error"])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_daemons_periodic_check_finds_damage_and_writes_stop(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Break 7 at the daemon's level: garbage written into the file of a running daemon that is not writing (its
    next scheduled cycle is hours away) is found by its own periodic quick check (`store_damaged` within
    `integrity_check_minutes`, here 0.6 s); a rebalance asked through the API is then refused with 503 naming
    the damage and the recovery (`rebalance_failed`), the file is not written, and SIGTERM still exits 0."""
    db = tmp_path / "periodic.sqlite"
    port = free_port()
    token = "periodic-check-token-0123"
    env = {
        "AGGREGATOR_API__PORT": str(port),
        "AGGREGATOR_API__TOKEN": token,
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
        "AGGREGATOR_DATABASE__INTEGRITY_CHECK_MINUTES": "0.01",
        "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "600",
    }
    with start_daemon(demo_config(), env) as proc:
        try:
            _read_until(proc, "cycle_finished", timeout=120)  # the start-up proposal
            _garble(db)
            size = db.stat().st_size
            damaged = _read_until(proc, "store_damaged", timeout=60)[-1]
            assert "is damaged" in str(damaged["error"]), damaged
            answer = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/rebalance",
                headers={"Authorization": f"Bearer {token}"},
                json={},
                timeout=60,
            )
            assert answer.status_code == 503, answer.text
            assert (
                "is damaged" in answer.json()["detail"] and "aggregator db check" in answer.json()["detail"]
            )
            failed = _read_until(proc, "rebalance_failed", timeout=60)[-1]
            assert "is damaged" in str(failed["error"]), failed
            assert db.stat().st_size == size
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
