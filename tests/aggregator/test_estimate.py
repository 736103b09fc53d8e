"""The robust estimate decisions see: a single print of any size cannot move it; the entry gate and its reasons."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aggregator.rates.estimate import blocked_venues, counts, decision_yields, estimate, robust
from aggregator.settings.rates import CrossCheckSettings, InputRule
from optimizer import Universe, Venue, VenueKind, YieldComponent

MIN_WINDOW = 5
yields = st.floats(min_value=-0.05, max_value=0.5, allow_nan=False)
spikes = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(
    window=st.lists(yields, min_size=MIN_WINDOW, max_size=60),
    spike=spikes,
    spot=st.integers(min_value=0),
    estimator=st.sampled_from(["median", "trimmed_mean"]),
)
def test_a_single_spike_of_any_size_cannot_move_the_estimate_past_its_neighbours(
    window: list[float], spike: float, spot: int, estimator: str
) -> None:
    """Replace any one value of a window of ≥ 5 by anything from −1e6 to 1e6: the estimate stays between the
    order statistics that bracket the clean estimate (the mean of the same window moves by spike / N)."""
    i = spot % len(window)
    spiked = [*window[:i], spike, *window[i + 1 :]]
    others = sorted(window[:i] + window[i + 1 :])
    got = robust(spiked, estimator=estimator)  # type: ignore[arg-type]
    assert others[0] - 1e-12 <= got <= others[-1] + 1e-12
    if estimator == "median":
        n = len(window)  # the median of n values, one of them anything: between these two of the other n − 1
        lo, hi = others[max((n - 1) // 2 - 1, 0)], others[min(n // 2, len(others) - 1)]
        assert lo - 1e-12 <= got <= hi + 1e-12


@given(level=yields, n=st.integers(min_value=3, max_value=60), spike=spikes, big=spikes)
def test_a_flat_window_with_one_spike_is_the_level_whatever_the_spike(
    level: float, n: int, spike: float, big: float
) -> None:
    """A steady yield with one wild print (the 9.91 % stETH day) is estimated at the steady yield exactly, by
    both estimators, and a spike a million times larger gives the same answer."""
    for estimator in ("median", "trimmed_mean"):
        a = robust([level] * n + [spike], estimator=estimator)
        b = robust([level] * n + [big], estimator=estimator)
        assert a == pytest.approx(level, abs=1e-12) and b == pytest.approx(level, abs=1e-12)


@given(st.lists(yields, min_size=1, max_size=40))
def test_weighted_values_give_what_the_repeated_values_give(values: list[float]) -> None:
    """The store hands each distinct value once with its count: the estimate is the one over every value."""
    c = counts(values)
    assert robust(list(c), list(c.values())) == pytest.approx(statistics.median(values), abs=1e-12)
    assert robust(list(c), list(c.values()), estimator="trimmed_mean") == pytest.approx(
        robust(values, estimator="trimmed_mean"), abs=1e-12
    )


def test_bad_estimator_input_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        robust([])
    with pytest.raises(ValueError, match="finite"):
        robust([0.03, float("nan")])
    with pytest.raises(ValueError, match="trim"):
        robust([0.03], estimator="trimmed_mean", trim=0.5)


def test_freshness_and_observations_decide_the_entry_gate() -> None:
    rule = InputRule(window_days=14, min_observations=7)
    thin = estimate({0.21: 1}, 0.21, rule)  # rsETH on its second print
    assert thin is not None and thin.entry_block(rule) == "too few observations: 2 of the 7 needed"
    enough = estimate({0.03: 5, 0.031: 1}, 0.032, rule)
    assert enough is not None and enough.entry_block(rule) is None and enough.value == 0.03
    stale = estimate({0.03: 9}, None, rule)
    assert stale is not None and stale.freshness == "stale" and stale.value == 0.03
    assert stale.entry_block(rule) is not None and stale.entry_block(rule).startswith("stale")  # type: ignore[union-attr]
    carried = estimate({0.03: 9}, None, rule, freshness="carried")
    assert carried is not None and carried.entry_block(rule).startswith("carried")  # type: ignore[union-attr]
    assert estimate({}, None, rule) is None
    latest_only = InputRule(window_days=0, min_observations=7)  # no window: nothing to count
    only = estimate({}, 0.05, latest_only)
    assert only is not None and only.value == 0.05 and only.entry_block(latest_only) is None


def _tree() -> Universe:
    comp = (YieldComponent(name="base"),)
    return Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(id="steth", parent="eth", kind=VenueKind.LIQUID_STAKING, components=comp),
            Venue(
                id="restaked",
                parent="steth",
                kind=VenueKind.RESTAKING,
                components=(YieldComponent(name="rewards"),),
            ),
            Venue(id="reth", parent="eth", kind=VenueKind.LIQUID_STAKING, components=comp),
        )
    )


def test_a_closed_component_closes_every_venue_whose_yield_rests_on_it() -> None:
    """stETH stale: stETH and the venue restaking it are closed; rETH is not."""
    assert blocked_venues(_tree(), {("steth", "base"): "stale"}) == {
        "steth": "steth.base stale",
        "restaked": "steth.base stale",
    }


def test_decision_yields_value_stale_and_carried_components_and_close_them() -> None:
    rule = InputRule(window_days=14, min_observations=3)
    seen = decision_yields(
        _tree(),
        latest={"reth": {"base": 0.031}, "restaked": {"rewards": 0.012}},
        window={
            ("steth", "base"): {0.03: 10},
            ("reth", "base"): {0.029: 2},
            ("restaked", "rewards"): {0.01: 5},
        },
        rule=rule,
        carried=frozenset({("restaked", "rewards")}),
    )
    assert seen.yields == {"steth": {"base": 0.03}, "reth": {"base": 0.029}, "restaked": {"rewards": 0.01}}
    assert set(seen.entry_blocked) == {"steth", "restaked"}
    assert "steth.base stale" in seen.entry_blocked["restaked"]
    assert "restaked.rewards carried" in seen.entry_blocked["restaked"]
    assert seen.estimates[("reth", "base")].observations == 3


def test_a_component_gone_past_its_window_makes_its_venue_exit_only_one_never_seen_leaves_it_held() -> None:
    """steth.base expired (seen before the window, nothing since): steth and the venue restaking it may only be
    sold; reth.base never observed: reth is neither exit-only nor closed by it (the optimizer holds it)."""
    seen = decision_yields(
        _tree(),
        latest={"restaked": {"rewards": 0.01}},
        window={("restaked", "rewards"): {0.01: 14}},
        rule=InputRule(window_days=14, min_observations=3),
        expired=frozenset({("steth", "base")}),
    )
    assert "steth" not in seen.yields and "reth" not in seen.yields
    assert set(seen.exit_only) == {"steth", "restaked"}
    assert seen.exit_only["restaked"].startswith("steth.base expired")
    assert set(seen.entry_blocked) == {"steth", "restaked"}
    # a venue missing one expired and one never-observed component is held, not sold
    mixed = decision_yields(
        _tree(), latest={}, window={}, rule=InputRule(window_days=14), expired=frozenset({("steth", "base")})
    )
    assert set(mixed.exit_only) == {"steth"}  # restaked.rewards was never observed


def test_an_entry_counts_on_the_windows_lower_quantile_a_holding_on_the_estimate() -> None:
    """A noisy reward: the median of the window is 5 %, its lower quartile 2 %. With entry_quantile 0.25 the venue
    is valued at 5 % but an entry is charged the 3 % spread, halved by the component's 50 % haircut; at 0.5 (the
    median) nothing is charged."""
    window = {0.01: 1.0, 0.02: 2.0, 0.05: 3.0, 0.09: 1.0, 0.12: 1.0}
    rule = InputRule(window_days=14, entry_quantile=0.25)
    est = estimate(window, None, rule)
    assert est is not None and est.value == pytest.approx(0.05) and est.entry_value == pytest.approx(0.02)
    assert est.entry_spread == pytest.approx(0.03)
    tree = Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            Venue(
                id="lrt",
                parent="eth",
                kind=VenueKind.LIQUID_RESTAKING,
                components=(YieldComponent(name="base", haircut=0.5),),
            ),
        )
    )
    seen = decision_yields(tree, {"lrt": {"base": 0.05}}, {("lrt", "base"): window}, rule)
    assert seen.entry_discount == {"lrt": pytest.approx(0.5 * (0.05 - 0.02))}
    median_only = decision_yields(
        tree, {"lrt": {"base": 0.05}}, {("lrt", "base"): window}, InputRule(window_days=14)
    )
    assert median_only.entry_discount == {}


def test_a_venue_warming_up_with_a_better_estimate_keeps_worse_venues_closed_until_its_gate_opens() -> None:
    """stETH's series began three days ago (new, 3 of 5 observations, 3.2 %); rETH has a full window at 2.9 %. The
    old gate closed stETH only, so idle ETH went into rETH, the second-best venue, and a round trip later into
    stETH: now rETH waits too, and the venue restaking stETH (its path rests on the new component) is warming,
    not waiting. Once stETH has its 5 observations, or if it is not new (observed before the window), rETH opens;
    a venue with a better estimate than the warming one never waits."""
    rule = InputRule(window_days=14, min_observations=5)
    latest = {"steth": {"base": 0.032}, "reth": {"base": 0.029}, "restaked": {"rewards": 0.0}}
    window = {
        ("steth", "base"): {0.032: 2},
        ("reth", "base"): {0.029: 13},
        ("restaked", "rewards"): {0.0: 13},
    }
    new = frozenset({("steth", "base")})
    seen = decision_yields(_tree(), latest, window, rule, new=new)
    assert set(seen.entry_blocked) == {"steth", "restaked", "reth"}
    assert seen.entry_blocked["reth"].startswith("waiting for steth to warm up (3 of the 5 needed")
    assert "too few observations" in seen.entry_blocked["restaked"]  # warming with steth, not waiting
    old = decision_yields(_tree(), latest, window, rule)  # not known to be new: only the gate
    assert set(old.entry_blocked) == {"steth", "restaked"}
    warmed = decision_yields(_tree(), latest, {**window, ("steth", "base"): {0.032: 4}}, rule, new=new)
    assert set(warmed.entry_blocked) == set()
    better = {**window, ("reth", "base"): {0.04: 13}}
    assert "reth" not in decision_yields(_tree(), latest, better, rule, new=new).entry_blocked


def test_an_entry_into_a_falling_series_counts_on_its_latest_value() -> None:
    """rsETH in May 2024: a window of 13 %, 10 %, 9.8 %, 5.3 % windows, then a fresh 0.78 %. The median (9.8 %) and
    the lower quartile (5.3 %) still rest on the past, and the optimizer bought rsETH on them and sold it six days
    later as the median caught up: an entry now counts on the lower of the quartile and the latest value. A holding
    is still valued at the median (noise does not sell), and a latest value above the quartile changes nothing."""
    window = {0.1304: 1.0, 0.104: 1.0, 0.0983: 2.0, 0.0531: 1.0}
    rule = InputRule(window_days=14, entry_quantile=0.25)
    est = estimate(window, 0.0078, rule)
    assert est is not None and est.value == pytest.approx(0.0983)
    assert est.entry_value == pytest.approx(0.0078) and est.entry_spread == pytest.approx(0.0983 - 0.0078)
    rising = estimate(window, 0.11, rule)
    assert rising is not None and rising.entry_value == pytest.approx(0.0983)  # the quartile of the 6 values


def _tokens() -> Universe:
    comp = (YieldComponent(name="base"),)
    return Universe(
        venues=(
            Venue(id="eth", kind=VenueKind.IDLE),
            *(
                Venue(id=v, parent="eth", kind=VenueKind.LIQUID_STAKING, components=comp)
                for v in ("steth", "reth", "cbeth")
            ),
            Venue(
                id="restaked",
                parent="steth",
                kind=VenueKind.RESTAKING,
                components=(YieldComponent(name="base"),),  # same name, not a token: never shrunk
            ),
        )
    )


def _seen_tokens(shrink: float) -> dict[str, dict[str, float]]:
    latest = {
        "steth": {"base": 0.034},
        "reth": {"base": 0.028},
        "cbeth": {"base": 0.030},
        "restaked": {"base": 0.02},
    }
    window = {(v, c): {x: 1.0} for v, comps in latest.items() for c, x in comps.items()}
    rule = InputRule(window_days=14, min_observations=1, shrink=shrink)
    return decision_yields(_tokens(), latest, window, rule).yields


def test_shrink_pulls_each_tokens_estimate_toward_the_tokens_median_and_keeps_the_ranking() -> None:
    own = _seen_tokens(0.0)
    assert own["steth"]["base"] == pytest.approx(0.034)  # 0: each token's own estimate
    half = _seen_tokens(0.5)
    assert half["steth"]["base"] == pytest.approx(0.032)  # halfway to the median 0.030
    assert half["reth"]["base"] == pytest.approx(0.029)
    assert half["cbeth"]["base"] == pytest.approx(0.030)
    assert half["restaked"]["base"] == pytest.approx(0.02)  # a restaking venue's component is left alone
    assert half["steth"]["base"] > half["cbeth"]["base"] > half["reth"]["base"]
    full = _seen_tokens(1.0)
    assert [full[v]["base"] for v in ("steth", "reth", "cbeth")] == pytest.approx([0.030] * 3)


def test_shrink_records_what_it_changed_and_leaves_a_lone_token_alone() -> None:
    rule = InputRule(window_days=14, min_observations=1, shrink=0.5)
    seen = decision_yields(_tokens(), {"steth": {"base": 0.034}}, {("steth", "base"): {0.034: 1.0}}, rule)
    assert seen.yields["steth"]["base"] == pytest.approx(0.034)  # no group of two: nothing to shrink toward
    assert seen.shrunk == {}
    both = decision_yields(
        _tokens(),
        {"steth": {"base": 0.034}, "reth": {"base": 0.028}},
        {("steth", "base"): {0.034: 1.0}, ("reth", "base"): {0.028: 1.0}},
        rule,
    )
    assert both.shrunk[("steth", "base")] == pytest.approx((0.034, 0.031))
    assert both.estimates[("steth", "base")].value == pytest.approx(0.034)  # the estimate itself is kept


@given(
    st.lists(st.floats(min_value=0.005, max_value=0.15), min_size=3, max_size=3),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_shrink_never_moves_an_estimate_past_the_median(values: list[float], weight: float) -> None:
    latest = {v: {"base": x} for v, x in zip(("steth", "reth", "cbeth"), values, strict=True)}
    window = {(v, "base"): {x: 1.0} for v, x in zip(("steth", "reth", "cbeth"), values, strict=True)}
    seen = decision_yields(_tokens(), latest, window, InputRule(window_days=14, shrink=weight))
    target = statistics.median(values)
    for v, x in zip(("steth", "reth", "cbeth"), values, strict=True):
        got = seen.yields[v]["base"]
        assert min(x, target) - 1e-15 <= got <= max(x, target) + 1e-15
        assert abs(got - target) == pytest.approx(abs(x - target) * (1.0 - weight), abs=1e-15)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_shrink_outside_0_to_1_is_refused_naming_the_key(bad: float) -> None:
    with pytest.raises(ValidationError, match="shrink"):
        CrossCheckSettings(shrink=bad)
    assert CrossCheckSettings(shrink=0.5).rule().shrink == 0.5
