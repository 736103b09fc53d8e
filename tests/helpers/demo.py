"""What the benchmarks share with the tests, without pytest: the demo config copied into a folder, a free port,
the console script's path and a daemon subprocess (`tests/conftest.py` re-exports these for the tests)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
