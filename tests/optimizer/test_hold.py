"""A plan's hold reason is a typed value (issue 19): the CLI's exit code for a hold reads `plan.hold`, where it
parsed `plan.reason` (`startswith("solver failed", ...)`), a sentence meant for people."""

from __future__ import annotations

from optimizer import Hold, LadderRung, Limits, OptimizationInputs, Universe
from optimizer.optimize import optimize
from tests.optimizer.universes import YIELDS, small_inputs, small_universe


def test_each_hold_says_why_as_a_value() -> None:
    assert optimize(small_inputs()).hold is None  # a rebalance
    below = optimize(small_inputs(min_improvement_bps=10_000.0))
    assert below.status == "hold" and below.hold is Hold.BELOW_BAND and not below.hold.is_problem
    failed = optimize(small_inputs(), solvers=("NO_SUCH_SOLVER",))
    assert failed.hold is Hold.SOLVER_FAILED and failed.hold.is_problem
    u = small_universe()
    venues = tuple(v.model_copy(update={"max_share": 0.2}) if v.id == "eth" else v for v in u.venues)
    unmet = optimize(
        OptimizationInputs(
            universe=Universe(venues=venues, nodes=u.nodes),
            limits=Limits(ladder=(LadderRung(days=1, min_share=0.5),)),
            portfolio_eth=1.0,
            holdings_eth={"eth": 1.0},
            yields=YIELDS,
        )
    )
    assert unmet.hold is Hold.LIMITS_UNMET and unmet.hold.is_problem and unmet.diagnosis


def test_a_settled_book_holds_as_optimal() -> None:
    first = optimize(small_inputs())
    again = optimize(small_inputs(holdings={k: v for k, v in first.target_eth.items() if v > 0}))
    assert again.status == "hold" and again.hold is Hold.OPTIMAL and not again.hold.is_problem


def test_a_plan_stored_before_the_field_existed_still_reads() -> None:
    plan = optimize(small_inputs(min_improvement_bps=10_000.0))
    old = plan.model_dump(mode="json")
    del old["hold"]
    assert type(plan).model_validate(old).hold is None
