"""Shared test helpers: a demo-like config written to a temp folder, and the console script's path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.demo import AGGREGATOR, ROOT, clean_env, copy_demo, free_port, start_daemon
from tests.helpers.fixture_server import FixtureServer, Reply
from tests.helpers.postgres import PostgresServer, PostgresUnavailableError, engines_disposed

__all__ = ["AGGREGATOR", "ROOT", "clean_env", "copy_demo", "free_port", "start_daemon"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | PostgresUnavailableError]:
    """One real PostgreSQL server for the session (tests/helpers/postgres.py), started on first use; where it
    cannot start, the reason, for the PostgreSQL variants to skip with."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailableError as exc:
        yield exc
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store's URL: a real SQLite file, then a new database on the real PostgreSQL server (skipped
    with the reason only where that server cannot start). The engines the test opened on it are disposed after
    it, so no pooled connection is left to be closed by the garbage collector."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.sqlite"
        return
    server = request.getfixturevalue("postgres_server")
    if isinstance(server, PostgresUnavailableError):
        pytest.skip(f"PostgreSQL unavailable: {server}")
    with engines_disposed():
        yield server.database()


@pytest.fixture
def demo_config(tmp_path: Path) -> Callable[[Callable[[str], str] | None], Path]:
    """Copy config/demo.toml (and the data it reads) into tmp_path, optionally edited by a text function."""

    def make(edit: Callable[[str], str] | None = None) -> Path:
        return copy_demo(tmp_path, edit)

    return make


def slow_source(server: FixtureServer, delay: float, timeout: float | None = None) -> Callable[[str], str]:
    """Serve the recorded /pools after `delay` seconds and return an edit of the demo config that makes stETH also
    quoted by that slow source, so a cycle takes at least `delay` (for lock, shutdown and kill tests)."""
    server.routes["/slow/pools"] = [
        Reply((ROOT / "tests/fixtures/defillama/pools.partly-reconstructed.json").read_bytes(), delay=delay)
    ]
    extra = "" if timeout is None else f"timeout_seconds = {timeout:g}\n"

    def edit(text: str) -> str:
        return (
            text.replace(
                'quotes = [{ source = "demo", key = "lido-steth.base" }]',
                'quotes = [{ source = "demo", key = "lido-steth.base" }, '
                '{ source = "slow", key = "747c1d2a-c668-4682-b9f9-296708a3dd90" }]',
            )
            + f'\n[sources.slow]\nadapter = "defillama"\nbase_url = "{server.url}/slow"\n{extra}'
        )

    return edit
