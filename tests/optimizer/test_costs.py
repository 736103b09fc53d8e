"""Round-trip costs, exit routes, in-flight capital, the no-trade band and the tail weight κ."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optimizer import (
    ExitRoute,
    ExitRouteKind,
    InFlight,
    Limits,
    OptimizationInputs,
    RiskNode,
    Universe,
    Venue,
    VenueKind,
    YieldComponent,
)
from optimizer.optimize import optimize
from tests.optimizer.invariants import check_invariants, plan_cvar, today
from tests.optimizer.linprog_rebuild import rebuild_objective

BASE = YieldComponent(name="base")
QUEUE14 = ExitRoute(kind=ExitRouteKind.QUEUE, days=14)


def two_venues(
    a_routes: tuple[ExitRoute, ...], b_routes: tuple[ExitRoute, ...], entry: float = 0.001
) -> Universe:
    """Idle ETH and two risk-free liquid venues a and b (costs are the only thing between them)."""
    return Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(
                id="a",
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(BASE,),
                exit_routes=a_routes,
                entry_cost=entry,
            ),
            Venue(
                id="b",
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(BASE,),
                exit_routes=b_routes,
                entry_cost=entry,
            ),
        ),
    )


def inputs(
    universe: Universe, holdings: dict[str, float], yields: dict[str, float], **limits: object
) -> OptimizationInputs:
    lim = {"risk_aversion": 0.0, "horizon_days": 180.0} | limits
    return OptimizationInputs(
        universe=universe,
        limits=Limits.model_validate(lim),
        portfolio_eth=sum(holdings.values()),
        holdings_eth=holdings,
        yields={v: {"base": y} for v, y in yields.items()},
    )


def test_an_entry_is_charged_the_exit_it_implies_amortised() -> None:
    """Moving a → b pays b's entry plus b's implied 14-day exit, amortised: a gain that covers the entry fee alone
    (the old charge) but not the round trip is not taken; one that covers the round trip is."""
    u = two_venues((QUEUE14,), (QUEUE14,))
    # b's round trip: 0.1 % entry + 14/365 × 4 % ≈ 0.253 %; over 180 days ≈ 51 bp/yr. Entry alone ≈ 20 bp/yr.
    round_trip = 0.001 + 14 / 365 * 0.04
    per_year = round_trip * 365 / 180
    small = optimize(inputs(u, {"a": 1000.0}, {"a": 0.04 - 0.0025, "b": 0.04}))  # 25 bp/yr better
    assert 0.0025 > 0.001 * 365 / 180 and per_year > 0.0025
    assert small.status == "hold" and small.moves == []
    big = optimize(inputs(u, {"a": 1000.0}, {"a": 0.034, "b": 0.04}))  # 60 bp/yr better
    assert big.status == "rebalance" and big.target_weights["b"] == pytest.approx(1.0)
    assert big.problem.entry_cost_amortised[2] == pytest.approx(per_year)
    assert big.costs.round_trip_eth == pytest.approx(1000.0 * round_trip)
    assert big.gain_bps == pytest.approx((0.006 - per_year) * 1e4, abs=1e-6)
    assert big.problem.objective == pytest.approx(rebuild_objective(big), abs=1e-6)


def test_the_cheaper_exit_route_is_used_never_both() -> None:
    """An LRT-like venue with a 14-day queue and a 0.2 % DEX route: at a 3 % yield the queue costs 0.115 % and is
    used; at 8 % the queue costs 0.31 % and the DEX sale is used. Never fee plus queue."""
    routes = (QUEUE14, ExitRoute(kind=ExitRouteKind.DEX, fee=0.002))
    u = two_venues(routes, (ExitRoute(kind=ExitRouteKind.QUEUE, days=0.0),), entry=0.0)
    for y_a, route, cost in ((0.03, "queue", 14 / 365 * 0.03), (0.08, "dex", 0.002)):
        plan = optimize(inputs(u, {"a": 1000.0}, {"a": y_a, "b": 0.2}, max_turnover=1.0))
        exit_a = next(m for m in plan.moves if m.venue == "a")
        assert exit_a.route == route
        assert exit_a.cost_eth == pytest.approx(1000.0 * cost)
        assert exit_a.days == (14.0 if route == "queue" else 0.0)


def test_a_nested_venues_wait_costs_the_yield_of_its_whole_path() -> None:
    """Leaving a restaking venue on top of stETH forgoes stETH's yield and the rewards for 14 days, not only the
    rewards."""
    u = Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(
                id="steth",
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(BASE,),
                exit_routes=(ExitRoute(kind=ExitRouteKind.QUEUE, days=5),),
            ),
            Venue(
                id="restaked",
                parent="steth",
                kind=VenueKind.RESTAKING,
                components=(YieldComponent(name="rewards"),),
                exit_routes=(QUEUE14,),
            ),
        ),
    )
    held = {"restaked": 1000.0}
    yields = {"steth": {"base": 0.03}, "restaked": {"rewards": -0.005}}  # restaking now loses: leave it
    plan = optimize(
        OptimizationInputs(
            universe=u,
            limits=Limits(risk_aversion=0.0),
            portfolio_eth=1000.0,
            holdings_eth=held,
            yields=yields,
        )
    )
    out = next(m for m in plan.moves if m.venue == "restaked")
    assert out.action == "withdraw" and out.to_venue == "steth"
    assert out.cost_eth == pytest.approx(
        1000.0 * 14 / 365 * 0.025
    )  # the path's 3 % − 0.5 %, not max(−0.5 %, 0)


def risky_universe(cap: float | None = None) -> Universe:
    return Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(
                id="lst",
                parent="eth",
                kind=VenueKind.LIQUID_STAKING,
                components=(BASE,),
                risk_nodes=("lst",),
                exit_routes=(ExitRoute(kind=ExitRouteKind.QUEUE, days=3),),
            ),
            Venue(
                id="restaked",
                parent="lst",
                kind=VenueKind.RESTAKING,
                components=(YieldComponent(name="r"),),
                risk_nodes=("layer",),
                exit_routes=(QUEUE14,),
            ),
        ),
        nodes=(RiskNode(id="lst", p=0.005, lgd=0.1), RiskNode(id="layer", p=0.03, lgd=0.2, cap=cap)),
    )


RISKY_YIELDS = {"lst": {"base": 0.03}, "restaked": {"r": 0.01}}


def test_queued_capital_counts_where_it_left_in_exposure_and_cvar() -> None:
    """300 ETH in flight out of the restaking venue is still exposed to it: the plan's CVaR and node exposure are
    those of a book that still holds it there, not of one where it already arrived."""
    u = risky_universe()
    flying = OptimizationInputs(
        universe=u,
        limits=Limits(risk_aversion=0.0),
        portfolio_eth=1000.0,
        holdings_eth={"lst": 500.0, "restaked": 200.0},
        in_flight=(InFlight(from_venue="restaked", to_venue="lst", amount_eth=300.0, days_left=10.0),),
        yields=RISKY_YIELDS,
    )
    arrived = flying.model_copy(update={"holdings_eth": {"lst": 800.0, "restaked": 200.0}, "in_flight": ()})
    still_there = flying.model_copy(
        update={"holdings_eth": {"lst": 500.0, "restaked": 500.0}, "in_flight": ()}
    )
    p_fly, p_arrived, p_there = optimize(flying), optimize(arrived), optimize(still_there)
    assert p_fly.current_weights == pytest.approx(p_arrived.current_weights)  # headed where it will land
    assert p_fly.before.cvar == pytest.approx(p_there.before.cvar)  # exposed where it left
    assert p_fly.before.cvar > p_arrived.before.cvar + 1e-3
    x0 = np.array(p_fly.problem.x0)
    assert plan_cvar(p_fly, today(p_fly)) == pytest.approx(p_there.before.cvar)
    assert not np.allclose(today(p_fly), x0)


def test_limits_hold_on_the_target_and_a_deposit_waits_for_the_flight_it_replaces() -> None:
    """A layer cap of 40 % with the book at 30 %: moving from the LST into restaking is capped at 40 %. With 100 ETH
    in flight OUT of restaking (today's exposure already 40 %), the plan may still head restaking to 40 %: its
    deposit waits until the 100 ETH has landed (tests/backtest/test_book.py, the ledger and the timeline), so the
    exposure is 40 % before and after, never 50 %. (When capital in transit counted at both ends, the plan was held
    at 30 %, and a rotation at a binding limit could never be made.)"""
    u = risky_universe(cap=0.4)
    base = OptimizationInputs(
        universe=u,
        limits=Limits(risk_aversion=0.0, cvar_budget=0.5),
        portfolio_eth=1000.0,
        holdings_eth={"lst": 700.0, "restaked": 300.0},
        yields={"lst": {"base": 0.03}, "restaked": {"r": 0.02}},
    )
    plan = optimize(base)
    check_invariants(plan)
    assert plan.target_weights["restaked"] == pytest.approx(0.4)
    assert plan.problem.objective == pytest.approx(rebuild_objective(plan), abs=1e-6)
    flying = base.model_copy(
        update={
            "holdings_eth": {"lst": 600.0, "restaked": 300.0},
            "in_flight": (InFlight(from_venue="restaked", to_venue="lst", amount_eth=100.0, days_left=7.0),),
        }
    )
    again = optimize(flying)
    check_invariants(again)
    assert again.target_weights["restaked"] == pytest.approx(0.4, abs=1e-9)
    assert again.problem.objective == pytest.approx(rebuild_objective(again), abs=1e-6)


def test_a_plan_never_re_issues_a_move_already_in_flight() -> None:
    """Plan 1 queues an exit out of restaking; the next cycle, with that capital in flight, proposes nothing more
    out of restaking. Counting the flight as still held there (what a replay used to do) would exit it twice."""
    u = risky_universe()
    lim = Limits(risk_aversion=0.0)
    yields = {"lst": {"base": 0.03}, "restaked": {"r": -0.002}}
    first = optimize(
        OptimizationInputs(
            universe=u,
            limits=lim,
            portfolio_eth=1000.0,
            holdings_eth={"lst": 400.0, "restaked": 600.0},
            yields=yields,
        )
    )
    out = [m for m in first.moves if m.venue == "restaked"]
    assert first.status == "rebalance" and len(out) == 1 and out[0].days == 14.0
    flights = (InFlight(from_venue="restaked", to_venue="lst", amount_eth=out[0].amount_eth, days_left=13.0),)
    settled = {"lst": 400.0, "restaked": 600.0 - out[0].amount_eth}
    settled = {v: a for v, a in settled.items() if a > 1e-9}
    second = optimize(
        OptimizationInputs(
            universe=u,
            limits=lim,
            portfolio_eth=1000.0,
            holdings_eth=settled,
            in_flight=flights,
            yields=yields,
        )
    )
    assert second.status == "hold" and second.moves == []
    # The defect this prevents: the same capital counted as still in restaking is sent out again.
    naive = optimize(
        OptimizationInputs(
            universe=u,
            limits=lim,
            portfolio_eth=1000.0,
            holdings_eth={"lst": 400.0, "restaked": 600.0},
            yields=yields,
        )
    )
    assert any(m.venue == "restaked" and m.action == "withdraw" for m in naive.moves)


def test_the_band_does_not_flip_a_plan_back_on_noise_below_the_round_trip_cost() -> None:
    """a yields 4 %; b leads by 100 bp/yr once, then trades places with a by ±30 or ±60 bp/yr every cycle. One round
    trip (0.1 % in, 0.1 % out) is 41 bp/yr over 180 days. The book moves to b once; ±30 bp/yr (below one round
    trip) never flips it back; ±60 bp/yr flips it back and forth at k = 1 but not at k = 2."""
    dex = (ExitRoute(kind=ExitRouteKind.DEX, fee=0.001),)
    u = two_venues(dex, dex)
    round_trip_per_year = 0.002 * 365 / 180

    def path(noise: float, k: float) -> list[str]:
        book = {"a": 1000.0}
        where = []
        for y_b in (0.05, 0.04 - noise, 0.04 + noise, 0.04 - noise, 0.04 + noise, 0.04 - noise):
            plan = optimize(inputs(u, book, {"a": 0.04, "b": y_b}, trade_cost_multiple=k))
            book = {v: e for v, e in plan.target_eth.items() if e > 1e-6}
            where.append(max(book, key=lambda v: book[v]))
        return where

    assert 0.003 < round_trip_per_year < 0.006 < 2 * round_trip_per_year
    assert path(0.003, 1.0) == ["b"] * 6
    assert path(0.006, 2.0) == ["b"] * 6
    assert path(0.006, 1.0) == ["b", "a", "b", "a", "b", "a"]


def test_band_hold_reason_names_the_band() -> None:
    """A hold caused by the band says so, with k."""
    u = two_venues((QUEUE14,), (QUEUE14,))
    plan = optimize(inputs(u, {"a": 1000.0}, {"a": 0.034, "b": 0.04}, trade_cost_multiple=2.0))
    assert plan.status == "hold"
    assert "no-trade band" in plan.reason and "2× its round-trip cost" in plan.reason


@pytest.mark.parametrize("lam", [0.0, 0.01, 0.05])
def test_tail_weight_is_lambda_over_the_tail_mass(lam: float) -> None:
    """κ = λ / (1 − β): the same plan either way; a dumped Limits round-trips."""
    kappa = lam / 0.01
    a = Limits(risk_aversion=lam)
    b = Limits(tail_weight=kappa)
    assert b.lam == pytest.approx(lam) and a.kappa == pytest.approx(kappa)
    assert Limits.model_validate_json(b.model_dump_json()) == b
    with pytest.raises(ValueError, match="tail_weight"):
        Limits(tail_weight=kappa, risk_aversion=lam + 0.1)


def test_the_documented_tail_weight_range_changes_decisions_monotonically() -> None:
    """Over κ = 0…20 (λ 0…0.2) the plan's CVaR never rises and its yield never rises as κ grows, and the range
    spans different books; κ = 100 (the old default λ = 1) scores every staked book below idle ETH."""
    u = Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(
                id="lst", parent="eth", kind=VenueKind.LIQUID_STAKING, components=(BASE,), risk_nodes=("lst",)
            ),
            Venue(
                id="lrt",
                parent="eth",
                kind=VenueKind.LIQUID_RESTAKING,
                components=(BASE,),
                risk_nodes=("lrt",),
                max_share=0.5,
            ),
            Venue(
                id="lrt2",
                parent="eth",
                kind=VenueKind.LIQUID_RESTAKING,
                components=(BASE,),
                risk_nodes=("lrt2",),
                max_share=0.5,
            ),
        ),
        nodes=(
            RiskNode(id="lst", p=0.003, lgd=0.1),
            RiskNode(id="lrt", p=0.008, lgd=0.3),
            RiskNode(id="lrt2", p=0.006, lgd=0.5),
        ),
    )
    yields = {"lst": {"base": 0.03}, "lrt": {"base": 0.034}, "lrt2": {"base": 0.04}}
    books, cvars, ys = [], [], []
    for kappa in (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 100.0):
        plan = optimize(
            OptimizationInputs(
                universe=u,
                limits=Limits(tail_weight=kappa),
                portfolio_eth=1.0,
                holdings_eth={"eth": 1.0},
                yields=yields,
            )
        )
        books.append(tuple(round(plan.target_weights[v], 6) for v in ("eth", "lst", "lrt", "lrt2")))
        cvars.append(plan.after.cvar)
        ys.append(plan.after.net_yield)
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(cvars))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(ys))
    assert len(set(books[:6])) >= 3  # the documented range 0–20 moves the decision
    assert books[-1] == (1.0, 0.0, 0.0, 0.0)  # κ = 100 (λ = 1): idle ETH beats every staked book


def two_lst_universe() -> Universe:
    def lst(name: str) -> Venue:
        return Venue(
            id=name,
            parent="eth",
            kind=VenueKind.LIQUID_STAKING,
            components=(BASE,),
            risk_nodes=(name,),
            exit_routes=(ExitRoute(kind=ExitRouteKind.QUEUE, days=3),),
        )

    return Universe(
        venues=(Venue(id="eth", kind=VenueKind.IDLE), lst("a"), lst("b")),
        nodes=(RiskNode(id="a", p=0.005, lgd=0.1), RiskNode(id="b", p=0.005, lgd=0.1)),
    )


def test_a_book_a_hair_past_its_budget_may_rotate_within_it() -> None:
    """Yield accrual puts a book at its CVaR budget a hair over it (here 1e-6). That is inside the drift band, so the
    limits are taken at today's level: the plan may hold, or rotate a → b (b pays twice as much, the same risk)
    through a's 3-day queue, since b is bought only once a's exit has landed: the target's CVaR is no further past
    the budget, and no state in between holds both. (When capital in transit counted at both ends, the swap was
    refused.)"""
    u = two_lst_universe()
    yields = {"a": {"base": 0.02}, "b": {"base": 0.04}}
    held = {"eth": 100.0, "a": 900.0}

    def inputs(budget: float, band: float) -> OptimizationInputs:
        return OptimizationInputs(
            universe=u,
            limits=Limits(risk_aversion=0.0, cvar_budget=budget, drift_band=band),
            portfolio_eth=1000.0,
            holdings_eth=held,
            yields=yields,
        )

    now = optimize(inputs(1.0, 0.0)).before.cvar
    plan = optimize(inputs(now - 1e-6, 0.0025))
    check_invariants(plan)
    assert not any("already breaks a limit" in h for h in plan.heuristics)
    assert any("drift band" in h for h in plan.heuristics)
    target = np.array([plan.target_weights[v] for v in plan.problem.venue_order])
    assert plan_cvar(plan, target) <= now + 1e-7  # no further past the budget
    assert plan.status == "rebalance"
    assert plan.target_weights["b"] > 0.1
    assert [(m.action, m.venue) for m in plan.moves] == [("withdraw", "a"), ("deposit", "b")]
    assert plan.problem.objective == pytest.approx(rebuild_objective(plan), abs=1e-6)


def test_a_share_past_its_max_is_sold_down_and_the_proceeds_bought_within_the_budget() -> None:
    """90 % in a with a max share of 50 %: the plan sells a down (here all of it: b pays twice as much at the same
    risk) and buys b with what the CVaR budget allows on the target; b is bought once a's exit has landed, so the book never holds both (the replay's 4.5 % CVaR day
    on 2024-06-25 came from buying at once while the exit was queued)."""
    capped = two_lst_universe()
    capped = capped.model_copy(
        update={
            "venues": tuple(
                v.model_copy(update={"max_share": 0.5}) if v.id == "a" else v for v in capped.venues
            )
        }
    )

    def inputs(budget: float) -> OptimizationInputs:
        return OptimizationInputs(
            universe=capped,
            limits=Limits(risk_aversion=0.0, cvar_budget=budget, drift_band=0.0025),
            portfolio_eth=1000.0,
            holdings_eth={"eth": 100.0, "a": 900.0},
            yields={"a": {"base": 0.02}, "b": {"base": 0.04}},
        )

    now = optimize(inputs(1.0)).before.cvar
    plan = optimize(inputs(now))
    check_invariants(plan)
    assert not any("already breaks a limit" in h for h in plan.heuristics)
    assert plan.target_weights["a"] <= 0.5 + 1e-9
    assert plan.target_weights["b"] > 0.5  # b pays twice as much at the same risk: a is sold for it
    target = np.array([plan.target_weights[v] for v in plan.problem.venue_order])
    assert plan_cvar(plan, target) <= now + 1e-7
