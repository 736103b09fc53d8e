"""Shared test helpers: a demo-like config written to a temp folder, and the console script's path."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixture_server import FixtureServer, Reply

ROOT = Path(__file__).resolve().parent.parent
AGGREGATOR = str(Path(sys.executable).parent / "aggregator")


def copy_demo(home: Path, edit: Callable[[str], str] | None = None) -> Path:
    """config/demo.toml (optionally edited by a text function) and the data it reads, copied under `home`."""
    (home / "data" / "snapshots").mkdir(parents=True, exist_ok=True)
    (home / "config").mkdir(exist_ok=True)
    for snap in (ROOT / "data" / "snapshots").glob("*.json"):
        shutil.copy(snap, home / "data" / "snapshots" / snap.name)
    if not (home / "data" / "history").exists():
        shutil.copytree(ROOT / "data" / "history", home / "data" / "history")
    shutil.copytree(ROOT / "config" / "risk", home / "config" / "risk", dirs_exist_ok=True)  # the scorecard
    text = (ROOT / "config" / "demo.toml").read_text()
    path = home / "config" / "demo.toml"
    path.write_text(edit(text) if edit else text)
    return path


@pytest.fixture
def demo_config(tmp_path: Path) -> Callable[[Callable[[str], str] | None], Path]:
    """Copy config/demo.toml (and the data it reads) into tmp_path, optionally edited by a text function."""

    def make(edit: Callable[[str], str] | None = None) -> Path:
        return copy_demo(tmp_path, edit)

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slow_source(server: FixtureServer, delay: float, timeout: float | None = None) -> Callable[[str], str]:
    """Serve the recorded /pools after `delay` seconds and return an edit of the demo config that makes stETH also
    quoted by that slow source, so a cycle takes at least `delay` (for lock, shutdown and kill tests)."""
    server.routes["/slow/pools"] = [
        Reply((ROOT / "tests/fixtures/defillama/pools.json").read_bytes(), delay=delay)
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


def start_daemon(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`aggregator run` as a real subprocess, JSON log lines on stdout; the caller's environment without any
    `AGGREGATOR_*` variable, then `env` on top. Use it as a context manager."""
    return subprocess.Popen(
        [AGGREGATOR, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(env),
    )


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any `AGGREGATOR_*` variable, then `env` on top."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")} | env
