"""The plan as the CLI prints it (a real subprocess on the demo): venue names from the config, the gain called what
it is (risk-adjusted, with λ), each move's cost split into fees and yield forgone; the split adds up to the cost
the plan records."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from aggregator.interfaces.render import move_costs
from optimizer import Plan
from tests.conftest import AGGREGATOR, clean_env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGGREGATOR), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=clean_env({"COLUMNS": "200"}),
        check=False,
    )


def test_rebalance_table_names_venues_and_splits_costs(demo_config: Callable[..., Path]) -> None:
    config = str(demo_config())
    done = _cli("rebalance", "--config", config)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "net gain" not in out
    assert "risk-adjusted gain" in out and "λ = " in out
    assert "fees ETH" in out and "yield forgone ETH" in out and "cost ETH" not in out
    assert "Lido stETH" in out  # the config's name, not the id lido-steth
    shown = _cli("show", "latest", "--config", config)
    assert shown.returncode == 0 and "Lido stETH" in shown.stdout and "risk-adjusted gain" in shown.stdout


def test_fees_and_forgone_add_up_to_each_moves_cost(demo_config: Callable[..., Path]) -> None:
    done = _cli("rebalance", "--json", "--config", str(demo_config()))
    assert done.returncode == 0, done.stderr
    plan = Plan.model_validate(json.loads(done.stdout))
    assert plan.moves
    exits = [m for m in plan.moves if m.action == "withdraw"]
    assert exits
    for m in plan.moves:
        fees, forgone = move_costs(plan, m)
        assert fees >= 0.0 and forgone >= 0.0
        assert abs(fees + forgone - m.cost_eth) < 1e-12
        if m.action == "deposit":
            assert forgone == 0.0
    queued = [m for m in exits if m.days > 0]
    assert all(move_costs(plan, m)[1] > 0.0 for m in queued)  # a queue's capital earns nothing in transit
