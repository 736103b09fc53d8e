"""Shared test helpers: a demo-like config written to a temp folder, and the console script's path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.demo import AGGREGATOR, ROOT, clean_env, copy_demo, free_port, start_daemon
from tests.helpers.fixture_server import FixtureServer, Reply

__all__ = ["AGGREGATOR", "ROOT", "clean_env", "copy_demo", "free_port", "start_daemon"]


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
