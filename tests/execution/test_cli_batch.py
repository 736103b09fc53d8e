"""`aggregator rebalance --safe-batch DIR` on the demo, as a real subprocess (issue #16)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from execution.safe import checksum
from tests.conftest import AGGREGATOR, copy_demo

SAFE = "0x1111111111111111111111111111111111111111"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    return subprocess.run(
        [AGGREGATOR, *args], check=False, capture_output=True, text=True, timeout=180, env=env, cwd="/"
    )


def test_safe_batch_files_import_checks_and_the_table_has_a_timeline(tmp_path: Path) -> None:
    config = str(copy_demo(tmp_path))
    out_dir = tmp_path / "b"
    refused = run("rebalance", "--config", config, "--safe-batch", str(out_dir))
    assert refused.returncode == 2 and "--safe 0x" in refused.stderr
    assert not out_dir.exists()
    done = run("rebalance", "--config", config, "--safe-batch", str(out_dir), "--safe", SAFE)
    assert done.returncode == 0, done.stderr
    assert "Timeline from" in done.stdout and "claim" in done.stdout
    [summary_file] = out_dir.glob("*-summary.json")
    summary = json.loads(summary_file.read_text())
    plan_id = summary["plan"]
    files = sorted(out_dir.glob(f"{plan_id}-day-*.json"))
    assert files and all(f"wrote {f}" in done.stderr for f in files)
    for path in files:
        batch = json.loads(path.read_text())
        assert batch["version"] == "1.0" and batch["chainId"] == "1"
        assert checksum(batch) == batch["meta"]["checksum"]
        assert plan_id in batch["meta"]["description"]
        for tx in batch["transactions"]:
            assert set(tx) == {"to", "value", "data", "contractMethod", "contractInputsValues"}
            assert tx["data"].startswith("0x") and int(tx["value"]) >= 0
    manual = [m for d in summary["days"] for m in d["manual"]]
    assert manual and all(m["why"] for m in manual)
    shown = run("show", plan_id, "--json", "--config", config)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["timeline"]["events"]
