"""The canary for cvxpy's private API (`optimizer.cvxpy_private`), and the fallback when it moves (issue 19).

The canary fails, naming what moved, when a cvxpy upgrade renames one of the private names the cut loop reads; the
fallback test shows that a plan still comes out meanwhile (the factored form), where before the exception escaped
`optimize`."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import optimizer.cuts
import optimizer.cvxpy_private
from optimizer.cvxpy_private import internals
from optimizer.optimize import optimize
from tests.optimizer.invariants import check_invariants
from tests.optimizer.universes import small_inputs


def test_canary_the_private_names_resolve_and_mean_what_the_cut_loop_reads() -> None:
    cv = internals()
    x = cp.Variable(2, name="x")
    problem = cp.Problem(cp.Maximize(cp.sum(x)), [x >= 0, x <= 1, cp.sum(x) == 1.5])
    data, _chain, _inverse = problem.get_problem_data(cp.HIGHS)
    for key in (cv.a, cv.b, cv.c, cv.dims, cv.param_prob):
        assert key in data, f"cvxpy's problem data lost {key!r}"
    assert cv.column(data, x) == 0
    assert cv.eq_rows(data) == 1  # the one equality comes first
    assert cv.status("kOptimal") == cp.OPTIMAL and cp.OPTIMAL in cv.solution_present
    assert cv.status("no such status") == cv.unknown
    lb, ub = data.get(cv.lower_bounds), data.get(cv.upper_bounds)
    assert lb is None or np.asarray(lb).shape == (2,)
    assert ub is None or np.asarray(ub).shape == (2,)


def test_canary_the_cut_loop_agrees_with_cvxpys_own_solve() -> None:
    """The whole private path end to end: the default (cuts) and the factored form give the same optimum."""
    cuts = optimize(small_inputs())
    factored = optimize(small_inputs(), risk_form="factored")
    assert cuts.solver.risk_form == "cuts" and cuts.solver.attempts[0] == ("HIGHS", "optimal")
    assert cuts.problem.objective == pytest.approx(factored.problem.objective, abs=1e-7)


@pytest.mark.parametrize(
    "error",
    [AttributeError("'ParamConeProg' object has no attribute 'var_id_to_col'"), KeyError("A"), TypeError],
)
def test_an_unexpected_error_in_the_cut_loop_falls_back_to_the_factored_form(
    monkeypatch: pytest.MonkeyPatch, error: BaseException | type[BaseException]
) -> None:
    def moved() -> optimizer.cvxpy_private.Internals:
        raise error

    monkeypatch.setattr(optimizer.cuts, "internals", moved)
    plan = optimize(small_inputs())
    assert plan.solver.risk_form == "factored" and plan.solver.name == "HIGHS"
    first = plan.solver.attempts[0]
    assert first[0] == "HIGHS" and first[1].startswith("cut loop error: ") and "factored form" in first[1]
    check_invariants(plan)
    assert plan.problem.objective == pytest.approx(
        optimize(small_inputs(), risk_form="factored").problem.objective, abs=1e-7
    )
