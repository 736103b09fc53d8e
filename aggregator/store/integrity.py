"""Damage to an SQLite store: integrity checks, a watch on the write-ahead log, and an online backup.

A damaged file is never written to: the store refuses every write with `StoreDamagedError`, whose message carries
the recovery procedure (also in docs/RELIABILITY.md).
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from contextlib import closing
from pathlib import Path

from aggregator.core.errors import StoreDamagedError, StoreError

RECOVERY = (
    "Recovery: stop the daemon; run `aggregator db check` to see the damage; restore the latest "
    "`aggregator db backup` copy (move the damaged file and its -wal and -shm files aside, copy the backup to the "
    "database path) or salvage what is readable with `sqlite3 DAMAGED .recover | sqlite3 NEW`; then start again "
    "(docs/RELIABILITY.md, 'Recovering a damaged store')"
)
SHOWN_LINES = 5  # of an integrity report, in an error message


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL, or None for an in-memory database or another dialect."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def integrity_report(path: Path, *, quick: bool) -> list[str]:
    """`PRAGMA quick_check` (or the full `integrity_check`) on a fresh read-only connection: no page cache of a
    long-lived connection can hide damage on disk. `["ok"]` when the file is sound."""
    if not path.exists():
        raise StoreError(f"no database file at {path}")
    pragma = "quick_check" if quick else "integrity_check"
    try:
        with closing(_readonly(path)) as conn:
            return [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
        return [str(exc)]


def damaged_error(path: Path, report: list[str], what: str = "PRAGMA quick_check") -> StoreDamagedError:
    shown = "; ".join(report[:SHOWN_LINES]) + (
        f"; … {len(report) - SHOWN_LINES} more" if len(report) > 5 else ""
    )
    return StoreDamagedError(
        f"the database {path} is damaged ({what}: {shown}); nothing more will be written to it. {RECOVERY}"
    )


def check_file(path: Path) -> None:
    """Raise StoreDamagedError unless a quick check of the file passes."""
    report = integrity_report(path, quick=True)
    if report != ["ok"]:
        raise damaged_error(path, report)


def backup(path: Path, target: Path) -> list[str]:
    """Copy the live database to `target` through SQLite's online backup API (consistent while the daemon writes:
    the copy is one snapshot) and return the copy's `integrity_check` report. The copy is written beside
    `target` and renamed into place, so a failed backup leaves no partial file under that name."""
    if not path.exists():
        raise StoreError(f"no database file at {path}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with closing(_readonly(path)) as src, closing(sqlite3.connect(partial)) as dst:
            src.backup(dst, pages=1024)
        with closing(sqlite3.connect(partial)) as copy:
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            report = [str(row[0]) for row in copy.execute("PRAGMA integrity_check")]
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"backing up {path} to {target} failed: {exc}") from exc
    return report


def _readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)


class WalWatch:
    """Notices the write-ahead log being deleted or replaced under a running process.

    SQLite deletes the `-wal` file only when the last connection to the database closes; this watch keeps one
    connection open for its lifetime, so while it lives the file can only vanish or change identity by outside
    hands (an operator, a clean-up script). Writes made after that go to a file nobody else sees and are lost at
    exit, so the store refuses them instead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens (and creates) the WAL
        weakref.finalize(self, self._conn.close)
        self.identity = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.wal)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def problem(self) -> str | None:
        """Why the WAL is no longer the one this process opened, or None."""
        now = self._identity()
        if self.identity is None:  # not in WAL mode when opened (another journal mode): nothing to watch
            return None
        if now is None:
            return f"the write-ahead log {self.wal} was deleted while this process had the database open"
        if now != self.identity:
            return f"the write-ahead log {self.wal} was replaced while this process had the database open"
        return None

    def close(self) -> None:
        self._conn.close()
