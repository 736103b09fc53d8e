"""Behaviour pins of the allocation model."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
import pytest
from cvxpy.reductions.solvers.solving_chain import SolvingChain

from optimizer import Hold, LadderRung, Limits, ModelCache, OptimizationInputs, StressScenario, Universe
from optimizer.optimize import optimize
from optimizer.problem import AllocationModel
from optimizer.scenarios import ScenarioLosses, enumerate_scenarios
from optimizer.structure import Structure
from optimizer.synthetic import synthetic_universe
from tests.optimizer.invariants import check_invariants
from tests.optimizer.linprog_rebuild import rebuild_objective
from tests.optimizer.universes import YIELDS, small_inputs, small_universe


def test_plan_from_idle_eth_respects_every_limit_and_matches_linprog() -> None:
    """A first allocation out of idle ETH is valid and its optimum equals an independent linprog rebuild."""
    plan = optimize(small_inputs())
    assert plan.status == "rebalance"
    check_invariants(plan)
    assert plan.problem.objective == pytest.approx(rebuild_objective(plan), abs=1e-6)
    assert all(m.action == "deposit" for m in plan.moves)
    assert sum(m.amount_eth for m in plan.moves if m.from_venue == "eth") == pytest.approx(
        1000.0 * (1 - plan.target_weights["eth"]), rel=1e-9
    )


def test_steth_into_eigenlayer_costs_only_the_eigenlayer_deposit() -> None:
    """Moving stETH into EigenLayer is one deposit from stETH, charged EigenLayer's entry cost, no Lido exit."""
    inputs = small_inputs(
        holdings={"lido-steth": 600.0, "eth": 400.0},
        yields={**YIELDS, "eigenlayer-steth": {"restaking": 0.06}},
        risk_aversion=0.0,
        cvar_budget=None,
        ladder=(),
    )
    plan = optimize(inputs)
    assert plan.status == "rebalance"
    el = [m for m in plan.moves if m.venue == "eigenlayer-steth"]
    assert len(el) == 1 and el[0].action == "deposit" and el[0].from_venue == "lido-steth"
    assert not [m for m in plan.moves if m.venue == "lido-steth" and m.action == "withdraw"]
    assert el[0].cost_eth == pytest.approx(el[0].amount_eth * 0.0002)


def test_a_rotation_out_of_a_queued_venue_is_not_blocked_by_the_one_day_floor() -> None:
    """Idle ETH at the 1-day floor (5 %), everything else in stETH (5-day queue) and restaked stETH, and rETH
    suddenly yields 9 %: the plan sells stETH for rETH. The ladder used to count the queued stETH exit where it
    leaves AND its proceeds already in rETH, i.e. took them out of idle ETH (liquidity -0.55 within a day), so no
    rotation was feasible at all. Deposits wait until the exits land: the ladder holds on the target, and the book
    in between is today's."""
    best = {**YIELDS, "rocketpool-reth": {"base": 0.09}}
    plan = optimize(
        small_inputs(holdings={"eth": 50.0, "lido-steth": 550.0, "eigenlayer-steth": 400.0}, yields=best)
    )
    assert plan.status == "rebalance", plan.reason
    assert plan.target_weights["rocketpool-reth"] == pytest.approx(0.6, abs=1e-6)
    assert plan.target_weights["eth"] == pytest.approx(0.05, abs=1e-6)  # the 1-day floor, met on the target
    assert [m.action for m in plan.moves if "steth" in m.from_venue] == ["withdraw"] * len(
        [m for m in plan.moves if "steth" in m.from_venue]
    )
    check_invariants(plan)
    assert rebuild_objective(plan) == pytest.approx(plan.problem.objective, abs=1e-7)


def test_exits_come_before_entries_and_amounts_add_up() -> None:
    """Withdrawals are listed first; ETH leaving a venue equals ETH arriving elsewhere. (No ladder: with a 1-day floor
    the rETH leaving through its 3-day queue is not ETH yet, so it could not be redeployed in this plan.)"""
    inputs = small_inputs(
        holdings={"rocketpool-reth": 600.0, "eth": 400.0},
        yields={**YIELDS, "rocketpool-reth": {"base": 0.01}},
        ladder=(),
    )
    plan = optimize(inputs)
    actions = [m.action for m in plan.moves]
    assert "withdraw" in actions and actions == sorted(actions, key=lambda a: a != "withdraw")
    for v, w in plan.target_weights.items():
        assert plan.target_eth[v] == pytest.approx(w * 1000.0)


def test_unchanged_inputs_after_applying_a_plan_hold() -> None:
    """Re-solving from the plan's own target with the same inputs proposes nothing."""
    first = optimize(small_inputs())
    again = optimize(small_inputs(holdings={k: v for k, v in first.target_eth.items() if v > 0}))
    assert again.status == "hold"
    assert again.moves == []
    assert abs(again.gain_bps) < 0.01


def test_tighter_cvar_budget_never_raises_cvar() -> None:
    """CVaR of the plan is non-increasing as the budget tightens, and each plan stays within its budget."""
    cache = ModelCache()
    cvars = []
    for budget in (0.3, 0.1, 0.05, 0.02, 0.01, 0.005):
        plan = optimize(small_inputs(cvar_budget=budget, risk_aversion=0.0), cache=cache)
        check_invariants(plan)
        cvars.append(plan.after.cvar)
        assert plan.after.cvar <= budget + 1e-7
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(cvars))


def test_infeasible_cvar_budget_is_diagnosed_with_the_least_feasible_value() -> None:
    """With idle ETH capped at 5 %, a tiny CVaR budget is infeasible; the plan holds and names min-CVaR."""
    u = small_universe()
    venues = tuple(v.model_copy(update={"max_share": 0.05}) if v.id == "eth" else v for v in u.venues)
    universe = Universe(venues=venues, nodes=u.nodes)

    def run(budget: float) -> object:
        return optimize(
            OptimizationInputs(
                universe=universe,
                limits=Limits(cvar_budget=budget, risk_aversion=0.0),
                portfolio_eth=100.0,
                holdings_eth={"eth": 100.0},
                yields=YIELDS,
            )
        )

    plan = run(0.001)
    assert plan.status == "hold"
    diag = [d for d in plan.diagnosis if d.limit == "cvar_budget"]
    assert len(diag) == 1 and "smallest feasible CVaR budget" in diag[0].message
    least = diag[0].least_feasible
    assert least > 0.001
    assert run(least + 1e-6).status == "rebalance"
    assert run(least - 1e-4).status == "hold"


def test_shares_that_cannot_sum_to_one_are_prechecked() -> None:
    """Max shares summing below 1 are reported with the shortfall, before any solve."""
    u = small_universe()
    venues = tuple(v.model_copy(update={"max_share": 0.1}) for v in u.venues)
    plan = optimize(
        OptimizationInputs(
            universe=Universe(venues=venues, nodes=u.nodes),
            portfolio_eth=1.0,
            holdings_eth={"eth": 1.0},
            yields=YIELDS,
        )
    )
    assert plan.status == "hold" and plan.solver.solves == 0
    assert plan.diagnosis[0].limit == "max_share" and "0.5000 < 1" in plan.diagnosis[0].message


def test_unreachable_liquidity_floor_is_prechecked() -> None:
    """A 1-day floor above what 1-day venues can hold names the largest feasible floor."""
    u = small_universe()
    venues = tuple(v.model_copy(update={"max_share": 0.2}) if v.id == "eth" else v for v in u.venues)
    plan = optimize(
        OptimizationInputs(
            universe=Universe(venues=venues, nodes=u.nodes),
            limits=Limits(ladder=(LadderRung(days=1, min_share=0.5),)),
            portfolio_eth=1.0,
            holdings_eth={"eth": 1.0},
            yields=YIELDS,
        )
    )
    assert plan.status == "hold"
    assert plan.diagnosis[0].limit == "ladder" and plan.diagnosis[0].least_feasible == pytest.approx(0.2)


def test_venue_without_fresh_yield_is_held_not_bought() -> None:
    """A venue missing a yield component (and its children) stays at its current weight."""
    yields = {k: v for k, v in YIELDS.items() if k != "lido-steth"}
    plan = optimize(small_inputs(holdings={"eth": 900.0, "lido-steth": 100.0}, yields=yields))
    assert plan.target_weights["lido-steth"] == pytest.approx(0.1)
    assert plan.target_weights["eigenlayer-steth"] == pytest.approx(0.0)
    assert {h.venue for h in plan.held} == {"lido-steth", "eigenlayer-steth"}
    check_invariants(plan)


def test_no_trade_band_holds_and_says_by_how_much() -> None:
    """A gain below min_improvement_bps gives "hold" with the shortfall in the reason."""
    plan = optimize(small_inputs(min_improvement_bps=10_000.0))
    assert plan.status == "hold" and "short by" in plan.reason and plan.gain_bps > 0
    assert plan.target_weights == plan.current_weights


def test_gas_per_move_counts_against_the_gain() -> None:
    """A fixed gas cost per move lowers the reported gain by moves × gas, annualised."""
    free = optimize(small_inputs())
    paid = optimize(small_inputs(gas_cost_eth=0.5))
    expected = len(free.moves) * 0.5 / 1000.0 * 365.0 / 180.0 * 1e4
    assert free.gain_bps - paid.gain_bps == pytest.approx(expected, rel=1e-6)
    assert paid.costs.gas_eth == pytest.approx(len(paid.moves) * 0.5)


def test_minimum_move_size_drops_small_moves() -> None:
    """Moves below min_move_eth are dropped, the LP re-solved, and the heuristic named in the plan."""
    base = optimize(small_inputs(holdings={"eth": 500.0, "lido-steth": 300.0, "rocketpool-reth": 200.0}))
    smallest = min(m.amount_eth for m in base.moves)
    plan = optimize(
        small_inputs(
            holdings={"eth": 500.0, "lido-steth": 300.0, "rocketpool-reth": 200.0},
            min_move_eth=smallest + 1.0,
        )
    )
    check_invariants(plan)
    deltas = [abs(plan.target_eth[v] - plan.current_weights[v] * 1000.0) for v in plan.target_eth]
    assert all(d < 1e-6 or d >= smallest + 1.0 - 1e-6 for d in deltas)
    assert plan.heuristics and "minimum move" in plan.heuristics[0]


def test_a_sale_never_leaves_less_than_the_minimum_move_behind() -> None:
    """weETH pays best but its layer is capped at 0.5 % of the book (5 ETH): the LP sells 295 of its 300 ETH and
    keeps 5, a remainder that only a move below the 25 ETH minimum could ever sell. With the minimum move the plan
    sells all of it (the remainder would otherwise stay for good, as 0.68 ETH of rsETH did in the 2022 -> 2026
    replay); without one it keeps the 5 ETH."""
    held = {"eth": 500.0, "etherfi-weeth": 300.0, "lido-steth": 200.0}
    loose = optimize(small_inputs(holdings=held, layer_caps={"liquid_restaking": 0.005}))
    assert loose.status == "rebalance"
    assert loose.target_eth["etherfi-weeth"] == pytest.approx(5.0, abs=1e-6)
    plan = optimize(small_inputs(holdings=held, layer_caps={"liquid_restaking": 0.005}, min_move_eth=25.0))
    check_invariants(plan)
    assert plan.status == "rebalance"
    assert plan.target_eth["etherfi-weeth"] == pytest.approx(0.0, abs=1e-6)
    (sale,) = [m for m in plan.moves if m.venue == "etherfi-weeth"]
    assert sale.action == "withdraw" and sale.amount_eth == pytest.approx(300.0)
    assert any("sold all of etherfi-weeth" in h for h in plan.heuristics)


def _restake_but_cap(min_move_eth: float) -> OptimizationInputs:
    """700 ETH idle, 300 stETH; EigenLayer's stETH venue capped at 29.5 % and the Lido node at 30 %: the LP restakes
    295 stETH and keeps 5 as stETH (a restake inside stETH's subtree, not a sale)."""
    inputs = small_inputs(holdings={"eth": 700.0, "lido-steth": 300.0}, min_move_eth=min_move_eth)
    u = inputs.universe
    venues = tuple(
        v.model_copy(update={"max_share": 0.295}) if v.id == "eigenlayer-steth" else v for v in u.venues
    )
    nodes = tuple(n.model_copy(update={"cap": 0.30}) if n.id == "lido" else n for n in u.nodes)
    return inputs.model_copy(update={"universe": Universe(venues=venues, nodes=nodes)})


def test_a_restake_that_leaves_a_remainder_is_not_turned_into_a_sale_below_the_minimum() -> None:
    """A venue whose own holding falls because it is restaked into its child is not being sold: emptying it would
    add a withdrawal of the 5 stETH left, a move below the 25 ETH minimum that the plan without the heuristic does
    not have (and the heuristic would say it "sold all of" a venue nothing was sold from)."""
    loose = optimize(_restake_but_cap(0.0))
    assert loose.target_eth["lido-steth"] == pytest.approx(5.0, abs=1e-6)
    assert not [m for m in loose.moves if m.action == "withdraw"]
    plan = optimize(_restake_but_cap(25.0))
    check_invariants(plan)
    assert plan.status == "rebalance"
    assert all(m.amount_eth >= 25.0 - 1e-6 for m in plan.moves), plan.moves
    assert not any("sold all of" in h for h in plan.heuristics), plan.heuristics
    assert plan.target_eth["lido-steth"] == pytest.approx(5.0, abs=1e-6)


def test_a_remainder_the_limits_need_stays_and_the_plan_says_so() -> None:
    """The max shares add up to exactly the whole book with weETH at its 0.5 % layer cap: selling the last 5 ETH
    of weETH is infeasible, so they stay, and the heuristics say why a remainder below the minimum is left."""
    inputs = small_inputs(
        holdings={"eth": 500.0, "etherfi-weeth": 300.0, "lido-steth": 200.0},
        layer_caps={"liquid_restaking": 0.005},
        min_move_eth=25.0,
    )
    caps = {"eth": 0.5, "lido-steth": 0.2, "rocketpool-reth": 0.0, "eigenlayer-steth": 0.295}
    u = inputs.universe
    venues = tuple(v.model_copy(update={"max_share": caps.get(v.id, v.max_share)}) for v in u.venues)
    plan = optimize(inputs.model_copy(update={"universe": Universe(venues=venues, nodes=u.nodes)}))
    check_invariants(plan)
    assert plan.status == "rebalance"
    assert plan.target_eth["etherfi-weeth"] == pytest.approx(5.0, abs=1e-6)
    assert any("selling all of etherfi-weeth" in h and "the limits need" in h for h in plan.heuristics), (
        plan.heuristics
    )


def test_a_minimum_move_re_solve_that_breaks_limits_is_not_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer the plan uses is re-checked in numpy, the heuristic's re-solves too: a re-solve (here faked)
    that puts the 300 ETH of weETH back above its 0.5 % layer cap is not the plan; the LP's first, checked answer
    is, and the heuristics say why."""
    real = AllocationModel.solve
    calls = {"n": 0}

    def solve(self: AllocationModel, values: Any, solvers: Any = ()) -> Any:
        res = real(self, values, solvers) if solvers else real(self, values)
        calls["n"] += 1
        if calls["n"] == 2 and res.x is not None:  # the minimum-move re-solve
            x = np.array(res.x, dtype=float)
            k = self.structure.venue_index["etherfi-weeth"]
            x[self.structure.venue_index["eth"]] -= 0.3 - x[k]
            x[k] = 0.3
            return dataclasses.replace(res, x=x)
        return res

    monkeypatch.setattr(AllocationModel, "solve", solve)
    held = {"eth": 500.0, "etherfi-weeth": 300.0, "lido-steth": 200.0}
    plan = optimize(small_inputs(holdings=held, layer_caps={"liquid_restaking": 0.005}, min_move_eth=25.0))
    assert calls["n"] >= 2
    check_invariants(plan)
    assert plan.target_eth["etherfi-weeth"] == pytest.approx(5.0, abs=1e-6)
    assert any("broke limits" in h for h in plan.heuristics), plan.heuristics
    assert not any("sold all of" in h for h in plan.heuristics), plan.heuristics


def _weeth_sold_into_reth(min_move_eth: float, min_improvement_bps: float) -> OptimizationInputs:
    """A book inside every limit: weETH (2 %/yr here) is sold into rETH up to rETH's max share (295 ETH of room),
    and the last 5 ETH stay in weETH, which still pays more than idle ETH."""
    inputs = small_inputs(
        holdings={"eth": 50.0, "lido-steth": 345.0, "rocketpool-reth": 305.0, "etherfi-weeth": 300.0},
        yields={**YIELDS, "etherfi-weeth": {"base": 0.02, "restaking": 0.0}},
        min_move_eth=min_move_eth,
        min_improvement_bps=min_improvement_bps,
    )
    caps = {"lido-steth": 0.345, "eigenlayer-steth": 0.0}
    u = inputs.universe
    venues = tuple(v.model_copy(update={"max_share": caps.get(v.id, v.max_share)}) for v in u.venues)
    return inputs.model_copy(update={"universe": Universe(venues=venues, nodes=u.nodes)})


def test_emptying_a_remainder_does_not_make_the_current_book_break_limits() -> None:
    """The heuristic's bound of 0 on the venue it empties is not an operator limit: today's book (300 ETH of weETH)
    does not "break limits" because of it, so the plan neither says so nor skips the no-trade band. Before, a gain
    of 17 bp/yr against a 500 bp/yr band became a rebalance 'required' by limits the book met."""
    loose = optimize(_weeth_sold_into_reth(0.0, 0.0))
    assert loose.status == "rebalance"
    assert loose.target_eth["etherfi-weeth"] == pytest.approx(5.0, abs=1e-6)
    assert "breaks limits" not in loose.reason
    plan = optimize(_weeth_sold_into_reth(25.0, 0.0))
    check_invariants(plan)
    assert plan.status == "rebalance"
    assert plan.target_eth["etherfi-weeth"] == pytest.approx(0.0, abs=1e-6)
    assert "breaks limits" not in plan.reason, plan.reason
    banded = optimize(_weeth_sold_into_reth(25.0, 500.0))
    assert banded.status == "hold" and banded.hold == Hold.BELOW_BAND, banded.reason
    assert "breaks limits" not in banded.reason


def test_binding_node_cap_shadow_price_matches_a_finite_difference() -> None:
    """The reported bp/yr for 1 % more room on a binding node cap is what re-solving with 1 % more gives."""
    u = small_universe()
    nodes = tuple(n.model_copy(update={"cap": 0.2}) if n.id == "lido" else n for n in u.nodes)
    universe = Universe(venues=u.venues, nodes=nodes)

    def run(cap: float) -> object:
        nn = tuple(n.model_copy(update={"cap": cap}) if n.id == "lido" else n for n in nodes)
        return optimize(
            OptimizationInputs(
                universe=Universe(venues=u.venues, nodes=nn),
                limits=Limits(risk_aversion=0.0),
                portfolio_eth=1.0,
                holdings_eth={"eth": 1.0},
                yields=YIELDS,
            )
        )

    plan = run(0.2)
    del universe
    bind = [b for b in plan.binding if b.limit == "node_cap" and b.subject == "lido"]
    assert bind, plan.binding
    bumped = run(0.2001)
    finite = (bumped.problem.objective - plan.problem.objective) / 0.0001 * 100.0
    assert bind[0].bp_per_pct == pytest.approx(finite, rel=1e-4)
    assert "raising the lido exposure cap by 1 percentage point" in bind[0].explanation


def test_stress_scenario_max_loss_is_a_hard_limit() -> None:
    """An operator stress scenario with max_loss bounds the plan's loss in it."""
    u = small_universe()
    stress = (StressScenario(name="restaking crisis", nodes=("eigenlayer", "lido"), max_loss=0.02),)
    inputs = OptimizationInputs(
        universe=Universe(venues=u.venues, nodes=u.nodes, stress=stress),
        limits=Limits(risk_aversion=0.0),
        portfolio_eth=1.0,
        holdings_eth={"eth": 1.0},
        yields=YIELDS,
    )
    plan = optimize(inputs)
    check_invariants(plan)
    assert plan.after.stress_losses["restaking crisis"] <= 0.02 + 1e-7
    assert any(b.limit == "stress_max_loss" for b in plan.binding)


def test_failed_solver_holds_with_the_reason() -> None:
    """When every solver errors, the plan is "hold" and says so."""
    plan = optimize(small_inputs(), solvers=("NO_SUCH_SOLVER",))
    assert plan.status == "hold" and "solver failed" in plan.reason
    assert plan.solver.attempts[0][0] == "NO_SUCH_SOLVER"


def test_clarabel_fallback_agrees_with_highs() -> None:
    """Clarabel alone reaches the same optimum as HiGHS (1e-6)."""
    a = optimize(small_inputs(), solvers=("HIGHS",))
    b = optimize(small_inputs(), solvers=("CLARABEL",))
    assert b.solver.name == "CLARABEL"
    assert a.problem.objective == pytest.approx(b.problem.objective, abs=1e-6)


def test_scenarios_keep_every_triple_and_the_residual_mass() -> None:
    """Enumerated probabilities and the residual mass sum to 1; every triple is there; propagation fails children
    with parents; the combination left out (all four) is not a scenario (no "every node fails" stand-in)."""
    st = Structure(small_universe())
    scen = enumerate_scenarios(st)
    assert scen.depth == 3 and scen.enumerated == 1 + 4 + 6 + 4
    assert sum(s.probability for s in scen) + scen.residual.mass == pytest.approx(1.0, abs=1e-15)
    assert scen.residual.mass == pytest.approx(float(np.prod(st.node_p)), rel=1e-12)  # the only 4-set
    assert len(scen) == scen.enumerated and all(len(s.name.split(" + ")) <= 3 for s in scen)
    el = next(s for s in scen if s.name == "eigenlayer fails")
    assert el.failed == {st.node_index["eigenlayer"], st.node_index["etherfi"]}
    p = st.node_p
    assert el.probability == pytest.approx(p[2] * np.prod(1 - np.delete(p, 2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_factored_losses_equal_the_dense_matrix(seed: int) -> None:
    """H @ D reproduces every scenario's loss vector from its definition, and both LP forms reach the same
    optimum."""
    universe, yields = synthetic_universe(40, 25, seed=seed)
    structure = Structure(universe)
    sl = ScenarioLosses(structure, enumerate_scenarios(structure))
    lgd = structure.node_lgd
    rng = np.random.default_rng(seed)
    dense = (sl.term_coefficients @ sl.term_incidence).toarray()
    for i in rng.choice(len(sl.scenarios), size=300, replace=False):
        sc = sl.scenarios[int(i)]
        want = [1.0 - np.prod([1.0 - lgd[j] for j in sc.failed & e]) for e in structure.venue_exposure_sets]
        np.testing.assert_allclose(dense[int(i)], want, atol=1e-12)
    inputs = OptimizationInputs(
        universe=universe,
        limits=Limits(cvar_budget=0.05, risk_aversion=0.2, tail_tolerance=1e-3),
        portfolio_eth=10.0,
        holdings_eth={"eth": 10.0},
        yields=yields,
    )
    f = optimize(inputs, risk_form="factored")
    d = optimize(inputs, risk_form="dense")
    assert f.problem.objective == pytest.approx(d.problem.objective, abs=1e-7)


def test_problem_is_dpp_and_resolves_without_recompiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled problem is DPP; a second cycle re-uses the cached model and compiles nothing (cvxpy's full
    compilation, `SolvingChain.apply`, is counted: a DPP fast path skips it)."""
    compilations = 0
    compile_once = SolvingChain.apply

    def counted(self: SolvingChain, *args: Any, **kwargs: Any) -> Any:
        nonlocal compilations
        compilations += 1
        return compile_once(self, *args, **kwargs)

    monkeypatch.setattr(SolvingChain, "apply", counted)
    cache = ModelCache()
    optimize(small_inputs(), cache=cache)
    first = compilations
    assert first > 0
    optimize(small_inputs(yields={**YIELDS, "lido-steth": {"base": 0.03}}), cache=cache)
    assert compilations == first
    assert len(cache.models) == 1
    model: AllocationModel = next(iter(cache.models.values()))
    assert model.problem.is_dpp()


@pytest.mark.parametrize(("band", "status"), [(0.0, "rebalance"), (0.0025, "hold")])
def test_drift_past_a_limit_within_the_drift_band_may_be_held(band: float, status: str) -> None:
    """A book 0.1 % of the portfolio short of the 7-day liquidity floor (yields drift between cycles) is held when
    `drift_band` allows 0.25 %; without a band the optimizer must move, whatever the no-trade band says."""
    first = optimize(small_inputs())
    held = {k: v for k, v in first.target_eth.items() if v > 0}
    liquid = sum(
        first.target_weights[v]
        for v, d in zip(first.problem.venue_order, first.problem.days_to_eth, strict=True)
        if d <= 7
    )
    ladder = (LadderRung(days=1, min_share=0.05), LadderRung(days=7, min_share=liquid + 0.001))
    plan = optimize(small_inputs(holdings=held, ladder=ladder, drift_band=band, min_improvement_bps=10_000.0))
    assert plan.status == status, plan.reason
    if status == "rebalance":
        assert "the current allocation breaks limits" in plan.reason
        check_invariants(plan)
