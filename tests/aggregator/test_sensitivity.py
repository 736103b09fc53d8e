"""`rebalance --sensitivity`: every variant equals a manual re-solve with that one number changed, variants are
ranked by how far they move the target, and the CLI reports them on the demo."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.risk.sensitivity import sensitivity
from aggregator.settings import load_settings
from optimizer import OptimizationInputs, Plan, RiskNode
from optimizer.optimize import optimize
from tests.conftest import AGGREGATOR, ROOT, clean_env
from tests.helpers.api import api_client
from tests.optimizer.universes import small_inputs

TOKEN = "t0ken-for-tests-0123456789"


def _with_node(inputs: OptimizationInputs, node_id: str, **change: float) -> OptimizationInputs:
    nodes = tuple(
        RiskNode(**(n.model_dump() | change)) if n.id == node_id else n for n in inputs.universe.nodes
    )
    return inputs.model_copy(update={"universe": inputs.universe.model_copy(update={"nodes": nodes})})


def test_each_variant_is_the_manual_re_solve() -> None:
    """lido's p doubled, etherfi's lgd halved and the budget 1 pp tighter, solved by hand, match the report."""
    inputs = small_inputs(holdings={"eth": 500.0, "lido-steth": 500.0}, cvar_budget=0.05)
    found = sensitivity(inputs)
    nodes = inputs.universe.nodes
    assert len(found.variants) == 4 * len(nodes) + 2
    base = optimize(inputs)
    assert found.base_weights == pytest.approx(base.target_weights, abs=1e-9)
    by_label = {v.assumption: v for v in found.variants}
    manual = {
        "lido.p × 2": optimize(_with_node(inputs, "lido", p=0.01)),
        "etherfi.lgd × 0.5": optimize(_with_node(inputs, "etherfi", lgd=0.15)),
        "cvar_budget − 1 pp": optimize(
            inputs.model_copy(update={"limits": inputs.limits.model_copy(update={"cvar_budget": 0.04})})
        ),
    }
    for label, plan in manual.items():
        v = by_label[label]
        diff = {
            k: plan.target_weights.get(k, 0.0) - base.target_weights.get(k, 0.0) for k in plan.target_weights
        }
        assert v.max_change == pytest.approx(max(abs(d) for d in diff.values()), abs=1e-9), label
        assert v.net_yield == pytest.approx(plan.after.net_yield, abs=1e-12)
        assert v.cvar == pytest.approx(plan.after.cvar, abs=1e-12)
        assert v.status == plan.status
    moved = [v for v in found.variants if v.max_change > 1e-6]
    assert moved, "some assumption must move this plan"
    assert [v.max_change for v in found.variants] == sorted(
        (v.max_change for v in found.variants), reverse=True
    )
    assert by_label["cvar_budget − 1 pp"].cvar <= 0.04 + 1e-7


def test_cli_reports_sensitivity_on_the_demo(tmp_path: Path) -> None:
    """On the demo the JSON carries the plan and 50 variants; the top one re-solves by hand to the same target."""
    env = clean_env({"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/a.sqlite", "COLUMNS": "200"})
    out = subprocess.run(
        [AGGREGATOR, "rebalance", "--sensitivity", "--json", "--config", "config/demo.toml"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    plan = Plan.model_validate(data["plan"])
    variants = data["sensitivity"]["variants"]
    assert len(variants) == 4 * len(plan.problem.inputs.universe.nodes) + 2
    top = variants[0]
    assert top["max_change"] >= max(v["max_change"] for v in variants) and top["max_change"] > 0.01
    node, field = top["assumption"].split(" × ")[0].split(".")
    manual = optimize(_with_node(plan.problem.inputs, node, **{field: top["value"]}))
    assert manual.after.net_yield == pytest.approx(top["net_yield"], abs=1e-9)
    base = data["sensitivity"]["base"]["target_weights"]
    assert abs(manual.target_weights[top["venue"]] - base[top["venue"]]) == pytest.approx(
        top["max_change"], abs=1e-6
    )
    people = subprocess.run(
        [AGGREGATOR, "rebalance", "--sensitivity", "--config", "config/demo.toml"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert people.returncode == 0 and "assumptions that move the plan most" in people.stdout
    assert top["assumption"] in people.stdout
    # the target's ladder priced if the queues stall (aggregator.risk.market): idle ETH is the target's
    rungs = data["market"]["ladder"]
    assert [r["days"] for r in rungs] == [r.days for r in plan.problem.inputs.limits.ladder]
    assert all(r["idle"] == pytest.approx(plan.target_weights["eth"]) for r in rungs)
    assert "if the queues stall" in people.stdout and "the plan's target" in people.stdout


def test_api_rebalance_with_sensitivity(demo_config: Callable[..., Path]) -> None:
    """POST /api/v1/rebalance {"sensitivity": true} answers the plan and the same variants as a re-solve here."""
    with api_client(load_settings(demo_config()), TOKEN, timeout=300) as client:
        plain = client.post("/api/v1/rebalance", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert plain.status_code == 200 and "sensitivity" not in plain.json()
        response = client.post(
            "/api/v1/rebalance", json={"sensitivity": True}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    plan = Plan.model_validate(body["plan"])
    expected = sensitivity(plan.problem.inputs)
    got = body["sensitivity"]["variants"]
    assert [v["assumption"] for v in got] == [v.assumption for v in expected.variants]
    assert [v["net_yield"] for v in got] == pytest.approx([v.net_yield for v in expected.variants], abs=1e-9)
