"""The real `aggregator` console script in a subprocess: outputs, exit codes and config errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from optimizer import Plan
from tests.conftest import AGGREGATOR, ROOT
from tests.optimizer.invariants import check_invariants
from tests.optimizer.linprog_rebuild import rebuild_objective

DB = tempfile.mkdtemp(prefix="aggregator-cli-")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    full_env["AGGREGATOR_DATABASE__URL"] = f"sqlite:///{DB}/aggregator.sqlite"
    full_env |= env or {}
    return subprocess.run(
        [AGGREGATOR, *args], check=False, capture_output=True, text=True, timeout=120, env=full_env, cwd=cwd
    )


def test_rebalance_json_is_a_consistent_plan_that_resolves_independently() -> None:
    """`rebalance --json` on the demo: stdout is only the plan; it meets every limit; linprog re-solves it."""
    out = run("rebalance", "--json", "--config", "config/demo.toml")
    assert out.returncode == 0, out.stderr
    plan = Plan.model_validate_json(out.stdout)
    check_invariants(plan)
    assert plan.problem.objective == pytest.approx(rebuild_objective(plan), abs=1e-6)
    # consistent with the bundled data: the stETH yield it optimised on is the snapshot's 2.235 %, pulled halfway
    # ([rates] shrink = 0.5) toward the median of the snapshot's seven token yields (2.33 %), and the log says so
    assert plan.problem.inputs.yields["lido-steth"]["base"] == pytest.approx(0.5 * 0.02235 + 0.5 * 0.0233)
    shrunk = next(
        json.loads(line)
        for line in out.stderr.splitlines()
        if line.startswith("{") and json.loads(line)["event"] == "estimates_shrunk"
    )
    assert shrunk["estimates"]["lido-steth.base"] == pytest.approx(
        {"own": 0.02235, "median": 0.0233, "seen": plan.problem.inputs.yields["lido-steth"]["base"]}
    )
    assert "eigenlayer-steth.restaking" not in shrunk["estimates"]  # restaking rewards are not shrunk
    assert plan.portfolio_eth == pytest.approx(10_000.0)
    moved = sum(m.amount_eth for m in plan.moves if m.action == "deposit" and m.from_venue == "eth")
    assert moved == pytest.approx(
        sum(
            plan.target_eth[v] - plan.current_weights[v] * 1e4
            for v in plan.target_eth
            if plan.problem.inputs.universe.venues[plan.problem.venue_order.index(v)].parent == "eth"
            and plan.target_eth[v] > plan.current_weights[v] * 1e4
        ),
        rel=1e-6,
    )
    events = [json.loads(line)["event"] for line in out.stderr.splitlines() if line.startswith("{")]
    assert events.count("move_proposed") == len(plan.moves)
    assert events[-2:] == ["rebalance_completed", "cycle_finished"]


def test_rebalance_table_for_people() -> None:
    """Without --json the plan is a readable report naming the status and the moves."""
    out = run("rebalance", "--config", "config/demo.toml", env={"COLUMNS": "160"})
    assert out.returncode == 0, out.stderr
    assert "(dry run)" in out.stdout and "Moves (exits first)" in out.stdout and "binding" in out.stdout


def test_rates_json_lists_every_component() -> None:
    """`rates --json` returns each venue component with its source."""
    out = run("rates", "--json", "--config", "config/demo.toml")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["rates"]) == 10 and not data["missing"]
    assert {r["venue"] for r in data["rates"] if r["sources"] == ["demo"]} >= {"lido-steth", "kelp-rseth"}


def test_check_config_summarises_and_passes() -> None:
    """check-config prints the universe and exits 0 on both shipped configs."""
    for cfg in ("config/demo.toml", "config/production.toml"):
        out = run("check-config", "--config", cfg, env={"COLUMNS": "200"})
        assert out.returncode == 0, out.stderr
        assert "eigenlayer-steth" in out.stdout and "ok:" in out.stdout


def test_missing_config_file_exits_3() -> None:
    """A missing file names the path and how to pass another."""
    out = run("rebalance", "--config", "config/nope.toml")
    assert out.returncode == 3
    assert "config file not found: config/nope.toml" in out.stderr


BAD_CONFIGS = [
    (
        'parent = "lido-steth"\nkind = "restaking"\nname = "stETH restaked',
        'parent = "lidoo-steth"\nkind = "restaking"\nname = "stETH restaked',
        "parent 'lidoo-steth' is not a venue",
    ),
    (
        'id = "kelp"\nparents',
        'id = "kelp"\np = 0.04\nparents',
        "risk_nodes[kelp].p is typed in the config, but risk.scorecard",
    ),
    ("cvar_budget = 0.06", "cvar_budget = 1.5", "limits.cvar_budget = 1.5"),
    (
        'parents = ["eigenlayer", "ethereum-consensus"]   # an LRT',
        'parents = ["etherfi", "ethereum-consensus"]   # an LRT',
        "risk node cycle: etherfi -> etherfi",
    ),
    (
        'kind = "liquid_staking"\nname = "Lido stETH"',
        'kind = "liquid-staking"\nname = "Lido stETH"',
        "venues[lido-steth].kind = 'liquid-staking'",
    ),
    ('rebalance_cron = "0 */6 * * *"', 'rebalance_cron = "every 6 hours"', "not a valid crontab expression"),
    (
        '{ source = "demo", key = "lido-steth.base" }',
        '{ source = "dem", key = "lido-steth.base" }',
        "source 'dem' is not defined; defined sources: ['assumptions', 'demo']",
    ),
    (
        "size_eth = 10000.0",
        "size_eth = 9000.0",
        "portfolio.size_eth = 9000.0 but holdings_eth sum to 10000.0",
    ),
    ("holdings_eth = { eth = 1000.0,", "holdings_eth = { ether = 1000.0,", "unknown venues ['ether']"),
    ('adapter = "snapshot"', 'adapter = "snapshots"', "does not match any of the expected tags"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_CONFIGS, ids=[m[:30] for _, _, m in BAD_CONFIGS])
def test_bad_config_is_rejected_naming_the_key(
    demo_config: Callable[..., Path], old: str, new: str, message: str
) -> None:
    """Each bad config stops with exit 3 and a message naming what is wrong and what would be valid."""
    assert old in (ROOT / "config/demo.toml").read_text()
    path = demo_config(lambda t: t.replace(old, new, 1))
    out = run("check-config", "--config", str(path))
    assert out.returncode == 3, out.stdout + out.stderr
    assert message in out.stderr


def test_shares_that_cannot_sum_to_one_fail_check_config(demo_config: Callable[..., Path]) -> None:
    """A universe whose max shares sum below 1 fails check-config with the shortfall."""
    path = demo_config(
        lambda t: re.sub(r"max_share = [0-9.]+", "max_share = 0.05", t).replace(
            'kind = "idle"', 'kind = "idle"\nmax_share = 0.05'
        )
    )
    out = run("check-config", "--config", str(path), env={"COLUMNS": "250"})
    assert out.returncode == 3
    assert "cannot be met" in out.stderr and "sum to 0.5500 < 1; raise them by 0.4500" in out.stdout


def test_environment_overrides_the_file() -> None:
    """AGGREGATOR_LIMITS__CVAR_BUDGET overrides the file's budget."""
    out = run(
        "rebalance", "--json", "--config", "config/demo.toml", env={"AGGREGATOR_LIMITS__CVAR_BUDGET": "0.045"}
    )
    assert out.returncode == 0, out.stderr
    plan = Plan.model_validate_json(out.stdout)
    assert plan.problem.cvar_budget == 0.045 and plan.after.cvar <= 0.045 + 1e-7


def test_infeasible_budget_holds_with_diagnosis_and_exits_5() -> None:
    """A CVaR budget the turnover cap cannot reach: hold, the least feasible budget named, exit 5."""
    out = run(
        "rebalance", "--json", "--config", "config/demo.toml", env={"AGGREGATOR_LIMITS__CVAR_BUDGET": "0.005"}
    )
    assert out.returncode == 5, out.stderr
    plan = Plan.model_validate_json(out.stdout)
    assert plan.status == "hold" and plan.moves == []
    assert {d.limit for d in plan.diagnosis} & {"cvar_budget", "turnover"}


def test_no_usable_rates_exits_4(demo_config: Callable[..., Path]) -> None:
    """When every source fails, the rebalance proposes nothing and exits 4."""
    path = demo_config(
        lambda t: (
            t.replace("demo-2026-09-14.json", "missing.json")
            .replace('source = "assumptions", key = "eigenlayer-rewards"', 'source = "demo", key = "x"')
            .replace('source = "assumptions", key = "symbiotic-rewards"', 'source = "demo", key = "y"')
            .replace('source = "assumptions", key = "karak-rewards"', 'source = "demo", key = "z"')
        )
    )
    out = run("rebalance", "--config", str(path))
    assert out.returncode == 4, out.stdout + out.stderr
    assert "rebalance_skipped" in out.stderr and "source_failed" in out.stderr


def test_usage_error_exits_2() -> None:
    """An unknown option is a usage error."""
    assert run("rebalance", "--no-such-flag").returncode == 2
