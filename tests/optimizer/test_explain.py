"""Explanations that are true: every binding-limit sentence is a re-solve, tied limits say so, nothing is offered
for a bound that cannot move, and a multi-limit diagnosis says which values hold together."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import BindingLimit, LadderRung, Limits, ModelCache, OptimizationInputs, Plan, Universe
from optimizer.explain import explain
from optimizer.optimize import optimize, prepare
from optimizer.synthetic import synthetic_universe
from tests.optimizer.universes import YIELDS, small_inputs, small_universe


def relaxed(inputs: OptimizationInputs, b: BindingLimit) -> OptimizationInputs:
    """The same inputs with the limit of sentence `b` relaxed by `b.relaxed_by`, built from the raw inputs."""
    step, u, lim = b.relaxed_by, inputs.universe, inputs.limits
    if b.limit in ("max_share", "min_share"):
        field, sign = ("max_share", 1.0) if b.limit == "max_share" else ("min_share", -1.0)
        venues = tuple(
            v.model_copy(update={field: getattr(v, field) + sign * step}) if v.id == b.subject else v
            for v in u.venues
        )
        return inputs.model_copy(update={"universe": Universe(venues=venues, nodes=u.nodes, stress=u.stress)})
    if b.limit == "node_cap":
        nodes = tuple(n.model_copy(update={"cap": n.cap + step}) if n.id == b.subject else n for n in u.nodes)
        return inputs.model_copy(update={"universe": Universe(venues=u.venues, nodes=nodes, stress=u.stress)})
    if b.limit == "cvar_budget":
        return inputs.model_copy(
            update={"limits": lim.model_copy(update={"cvar_budget": lim.cvar_budget + step})}
        )
    if b.limit == "turnover":
        return inputs.model_copy(
            update={"limits": lim.model_copy(update={"max_turnover": lim.max_turnover + step})}
        )
    if b.limit == "ladder":
        ladder = tuple(
            r.model_copy(update={"min_share": r.min_share - step}) if f"{r.days:g}" == b.subject else r
            for r in lim.ladder
        )
        return inputs.model_copy(update={"limits": lim.model_copy(update={"ladder": ladder})})
    if b.limit == "layer_cap":
        caps = {k: (c + step if str(k) == b.subject else c) for k, c in lim.layer_caps.items()}
        return inputs.model_copy(update={"limits": lim.model_copy(update={"layer_caps": caps})})
    raise AssertionError(f"no relaxation for {b.limit}")


def check_sentences(inputs: OptimizationInputs, plan: Plan) -> None:
    """Each sentence's figure equals an independent re-solve (fresh model, full LP) with that limit relaxed."""
    assert plan.problem.objective is not None
    for b in plan.binding:
        again = optimize(relaxed(inputs, b), risk_form="factored")
        assert again.problem.objective is not None
        gain = (again.problem.objective - plan.problem.objective) * 1e4
        assert b.gain_bps == pytest.approx(max(gain, 0.0), abs=2e-3), (b.explanation, gain)
        if not b.tied and f"{b.gain_bps:.2f} bp/yr" in b.explanation:
            assert b.bp_per_pct == pytest.approx(b.gain_bps / (b.relaxed_by * 100.0))


@st.composite
def problems(draw: st.DrawFn) -> OptimizationInputs:
    universe, yields = synthetic_universe(
        draw(st.integers(6, 14)), draw(st.integers(4, 9)), seed=draw(st.integers(0, 10_000))
    )
    nodes = tuple(
        n.model_copy(update={"cap": draw(st.sampled_from([None, 0.3, 0.5]))}) for n in universe.nodes
    )
    return OptimizationInputs(
        universe=Universe(venues=universe.venues, nodes=nodes),
        limits=Limits(
            cvar_budget=draw(st.sampled_from([None, 0.01, 0.03, 0.08])),
            risk_aversion=draw(st.sampled_from([0.0, 0.05, 0.3])),
            max_turnover=draw(st.sampled_from([None, 0.4])),
            ladder=(LadderRung(days=7, min_share=draw(st.sampled_from([0.0, 0.2]))),),
        ),
        portfolio_eth=100.0,
        holdings_eth={"eth": 100.0},
        yields=yields,
    )


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_shadow_price_sentence_matches_a_re_solve(inputs: OptimizationInputs) -> None:
    """On random universes, every "relaxing X would add N bp/yr" equals a re-solve of the full LP, and the cut form
    and the full LP give the same sentences with the same figures for the same optimum."""
    plan = optimize(inputs)
    if plan.problem.objective is None:
        return
    check_sentences(inputs, plan)
    full = optimize(inputs, risk_form="factored")
    x_cut = np.array(list(plan.target_weights.values()))
    x_full = np.array(list(full.target_weights.values()))
    if np.abs(x_cut - x_full).max() < 1e-6:  # the same optimum (an LP may have several)
        positive = {(b.limit, b.subject): b.gain_bps for b in plan.binding if b.gain_bps > 0.01}
        other = {(b.limit, b.subject): b.gain_bps for b in full.binding if b.gain_bps > 0.01}
        assert positive.keys() == other.keys()
        for key, gain in positive.items():
            assert other[key] == pytest.approx(gain, abs=2e-3)


def test_limits_that_bind_together_are_called_tied() -> None:
    """rETH's max share and the Rocket Pool exposure cap are the same limit (60 %): relaxing either alone gains
    nothing. The solver puts the worth of both on one; the plan says that one is tied with the other, not that it
    would add that worth."""
    u = small_universe()
    nodes = tuple(n.model_copy(update={"cap": 0.6}) if n.id == "rocketpool" else n for n in u.nodes)
    inputs = OptimizationInputs(
        universe=Universe(venues=u.venues, nodes=nodes),
        limits=Limits(risk_aversion=0.0),
        portfolio_eth=1.0,
        holdings_eth={"eth": 1.0},
        yields={**YIELDS, "rocketpool-reth": {"base": 0.08}},
    )
    plan = optimize(inputs)
    assert plan.target_weights["rocketpool-reth"] == pytest.approx(0.6)
    about = [b for b in plan.binding if b.subject in ("rocketpool", "rocketpool-reth")]
    assert len(about) == 1, plan.binding
    b = about[0]
    assert b.tied and b.gain_bps == 0.0 and b.shadow_bp_per_pct > 1.0
    assert "alone would add nothing: it is tied with" in b.explanation
    assert ("rocketpool exposure cap" in b.explanation) or ("max share of rocketpool-reth" in b.explanation)
    check_sentences(inputs, plan)


def test_no_sentence_for_a_min_share_already_at_zero() -> None:
    """A positive dual on a venue's `x ≥ min_share` row with min share 0 (the same bound as x ≥ 0; where a solver
    puts that dual is its choice) gives no "lowering the min share" sentence; the same dual on a max share does."""
    inputs = small_inputs(risk_aversion=0.0)
    cache = ModelCache()
    optimize(inputs, cache=cache)
    model = next(iter(cache.models.values()))
    values, _, _ = prepare(model, inputs)
    res = model.solve(values)
    k = model.structure.venue_index["etherfi-weeth"]
    assert values.lo[k] == 0.0 and values.hi[k] < 1.0
    min_dual = np.zeros(model.structure.n_venues)
    min_dual[k] = 0.5
    injected = dataclasses.replace(res, duals={**res.duals, "min_share": [min_dual]})
    assert not [b for b in explain(model, values, injected, set(), ("HIGHS",)) if b.limit == "min_share"]
    injected = dataclasses.replace(res, duals={**res.duals, "max_share": [min_dual]})
    sentences = [b for b in explain(model, values, injected, set(), ("HIGHS",)) if b.limit == "max_share"]
    assert [b.subject for b in sentences] == ["etherfi-weeth"]


def test_a_multi_limit_diagnosis_says_the_values_hold_together_and_gives_each_alone() -> None:
    """With idle ETH capped at 10 %, a tiny CVaR budget and a 30 % turnover cap from an all-ETH book cannot be met.
    The diagnosis names both, says their values hold together (and they do), and says that neither alone can make
    the problem feasible with the other as configured (true: each value alone still holds)."""
    u = small_universe()
    venues = tuple(v.model_copy(update={"max_share": 0.1}) if v.id == "eth" else v for v in u.venues)
    universe = Universe(venues=venues, nodes=u.nodes)

    def run(budget: float, turnover: float) -> Plan:
        return optimize(
            OptimizationInputs(
                universe=universe,
                limits=Limits(cvar_budget=budget, risk_aversion=0.0, max_turnover=turnover),
                portfolio_eth=100.0,
                holdings_eth={"eth": 100.0},
                yields=YIELDS,
            )
        )

    plan = run(0.001, 0.3)
    assert plan.status == "hold"
    found = {d.limit: d for d in plan.diagnosis}
    assert set(found) == {"cvar_budget", "turnover"}, plan.diagnosis
    for d in found.values():
        assert "holds together with the other values named" in d.message
        assert d.least_alone is None and "no value of this limit alone" in d.message
    cvar, turnover = found["cvar_budget"], found["turnover"]
    assert run(cvar.least_feasible + 1e-6, turnover.least_feasible + 1e-6).status == "rebalance"
    assert run(cvar.least_feasible + 1e-6, 0.3).status == "hold"
    assert run(0.001, turnover.least_feasible + 1e-6).status == "hold"


def test_a_single_limit_diagnosis_gives_its_least_value_given_the_others() -> None:
    """One limit alone: its joint value is its value with the others as configured, and the message says so."""
    u = small_universe()
    venues = tuple(v.model_copy(update={"max_share": 0.1}) if v.id == "eth" else v for v in u.venues)
    plan = optimize(
        OptimizationInputs(
            universe=Universe(venues=venues, nodes=u.nodes),
            limits=Limits(cvar_budget=0.001, risk_aversion=0.0),
            portfolio_eth=100.0,
            holdings_eth={"eth": 100.0},
            yields=YIELDS,
        )
    )
    (d,) = plan.diagnosis
    assert d.least_alone == d.least_feasible and "given the other limits" in d.message
