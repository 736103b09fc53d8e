"""Shared test helpers: a demo-like config written to a temp folder, and the console script's path."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AGGREGATOR = str(Path(sys.executable).parent / "aggregator")


@pytest.fixture
def demo_config(tmp_path: Path) -> Callable[[Callable[[str], str] | None], Path]:
    """Copy config/demo.toml (and the snapshot it reads) into tmp_path, optionally edited by a text function."""

    def make(edit: Callable[[str], str] | None = None) -> Path:
        (tmp_path / "data" / "snapshots").mkdir(parents=True, exist_ok=True)
        (tmp_path / "config").mkdir(exist_ok=True)
        for snap in (ROOT / "data" / "snapshots").glob("*.json"):
            shutil.copy(snap, tmp_path / "data" / "snapshots" / snap.name)
        text = (ROOT / "config" / "demo.toml").read_text()
        path = tmp_path / "config" / "demo.toml"
        path.write_text(edit(text) if edit else text)
        return path

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
