"""Scripted faults for the tests: a source's answer from its recorded payload (shared by the flapping test and the soak),
and a SQLite lease table that refuses releases as on a full disk."""

from __future__ import annotations

import copy
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.helpers.cases import FIXTURES, Case
from tests.helpers.fixture_server import Reply

FAULTS = ("up", "down", "slow", "garbled", "absurd")
FAILING = frozenset(
    {"down", "slow", "garbled"}
)  # the source fails; "absurd" parses and is rejected by validation
SLOW_SECONDS = (
    1.2  # longer than the timeouts the flapping test (0.6 s) and the soak (0.2 s) give their sources
)


def _get(doc: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple[str | int, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    if not path:
        return value
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


def scripted_reply(case: Case, fault: str) -> Reply:
    """up: the recording; down: 503; slow: the recording after SLOW_SECONDS; garbled: its first half;
    absurd: the quoted number × 100."""
    body = (FIXTURES / case.fixture).read_bytes()
    if fault == "down":
        return Reply(b'{"error": "unavailable"}', status=503)
    if fault == "slow":
        return Reply(body, delay=SLOW_SECONDS)
    if fault == "garbled":
        return Reply(body[: len(body) // 2])
    if fault == "absurd":
        doc = json.loads(body)
        big = float(_get(doc, case.value_path)) * 100
        return Reply(json.dumps(_set(doc, case.value_path, str(big) if case.string_valued else big)).encode())
    if fault != "up":
        raise ValueError(f"unknown fault {fault!r}; valid: {FAULTS}")
    return Reply(body)


REFUSE_LEASE_RELEASE = "CREATE TRIGGER refuse_release BEFORE DELETE ON leases BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
"""SQLite: the lease's release fails as on a full disk (the delete refused); `ALLOW_LEASE_RELEASE` undoes it."""
ALLOW_LEASE_RELEASE = "DROP TRIGGER refuse_release"


def refuse_lease_release(db: Path) -> None:
    """Make every release of a lease in the SQLite file `db` fail, as on a full disk, until ALLOW_LEASE_RELEASE."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(REFUSE_LEASE_RELEASE)
        conn.commit()


def allow_lease_release(db: Path) -> None:
    """The disk has room again: releases of a lease in `db` succeed."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(ALLOW_LEASE_RELEASE)
        conn.commit()
