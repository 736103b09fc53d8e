"""The console script as a real subprocess, on a scratch database unless the caller's `env` names one."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tests.helpers.demo import AGGREGATOR, ROOT

DB = tempfile.mkdtemp(prefix="aggregator-cli-")


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`aggregator *args` with the caller's environment minus every `AGGREGATOR_*` variable, the database in a
    scratch folder, then `env` on top."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    full_env["AGGREGATOR_DATABASE__URL"] = f"sqlite:///{DB}/aggregator.sqlite"
    full_env |= env or {}
    return subprocess.run(
        [AGGREGATOR, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )
