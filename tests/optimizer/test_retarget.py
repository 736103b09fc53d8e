"""The priors as parameters of the compiled model: a model retargeted to new p and lgd (no compile) reaches the
optimum a model built for them reaches, to 1e-7, and the problem stays DPP."""

from __future__ import annotations

import pytest

from optimizer import OptimizationInputs, RiskNode, StressScenario
from optimizer.optimize import optimize, shape_for
from optimizer.retarget import RetargetingCache
from tests.optimizer.universes import small_inputs


def _with_node(inputs: OptimizationInputs, node_id: str, **change: float) -> OptimizationInputs:
    nodes = tuple(
        RiskNode(**(n.model_dump() | change)) if n.id == node_id else n for n in inputs.universe.nodes
    )
    return inputs.model_copy(update={"universe": inputs.universe.model_copy(update={"nodes": nodes})})


def _stressed(inputs: OptimizationInputs, max_loss: float) -> OptimizationInputs:
    """A stress scenario with a loss limit (its rows are the second parameter the priors reach)."""
    stress = (StressScenario(name="eigen-wide", nodes=("eigenlayer",), max_loss=max_loss),)
    return inputs.model_copy(update={"universe": inputs.universe.model_copy(update={"stress": stress})})


CHANGES = [
    ("lido", {"p": 0.01}),
    ("lido", {"lgd": 0.6}),
    ("etherfi", {"p": 0.005}),
    ("etherfi", {"lgd": 0.15}),
    ("eigenlayer", {"p": 0.02, "lgd": 0.4}),
    ("rocketpool", {"p": 0.0025}),
]


@pytest.mark.parametrize("stress", [None, 0.02])
def test_a_retargeted_model_reaches_the_rebuilt_optimum(stress: float | None) -> None:
    base = small_inputs(holdings={"eth": 500.0, "lido-steth": 500.0}, cvar_budget=0.05)
    if stress is not None:
        base = _stressed(base, stress)
    cache = RetargetingCache()
    optimize(base, cache=cache)
    model = cache.get(base.universe, shape_for(base))
    compiled = model.problem
    moved = 0
    base_weights = optimize(base).target_weights
    # each change, then the base again: the cuts kept under one set of priors must not survive into the next
    for node, change in [*CHANGES, CHANGES[0]]:
        for inputs in (_with_node(base, node, **change), base):
            warm = optimize(inputs, cache=cache)
            cold = optimize(inputs)
            assert warm.status == cold.status, (node, change)
            assert warm.problem.objective == pytest.approx(cold.problem.objective, abs=1e-7), (node, change)
            for venue, w in cold.target_weights.items():
                assert warm.target_weights[venue] == pytest.approx(w, abs=1e-7), (node, change, venue)
            assert warm.after.cvar == pytest.approx(cold.after.cvar, abs=1e-7)
            assert warm.after.expected_loss == pytest.approx(cold.after.expected_loss, abs=1e-12)
            moved += max(abs(w - cold.target_weights[v]) for v, w in base_weights.items()) > 1e-6
    assert moved, (
        "no change moved the plan: the comparison would not tell a stale model from a retargeted one"
    )
    assert cache.built == 1 and cache.retargeted >= 2 * len(CHANGES)
    assert cache.get(base.universe, shape_for(base)).problem is compiled  # never compiled again
    assert compiled.is_dpp()


def test_a_different_skeleton_is_a_new_model() -> None:
    """A venue's share bound is structure, not a prior: the cache compiles a second model for it."""
    base = small_inputs()
    cache = RetargetingCache()
    optimize(base, cache=cache)
    venues = tuple(
        v.model_copy(update={"max_share": 0.4}) if v.id == "lido-steth" else v for v in base.universe.venues
    )
    other = base.model_copy(update={"universe": base.universe.model_copy(update={"venues": venues})})
    assert optimize(other, cache=cache).target_weights == pytest.approx(
        optimize(other).target_weights, abs=1e-7
    )
    assert cache.built == 2 and cache.retargeted == 0
