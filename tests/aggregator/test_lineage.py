"""Lineage in the cross-check: quotes deriving from the same origin are one observation for the median, the
disagreement spread and jump confirmation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters import Quote
from aggregator.rates.crosscheck import RateMemory, check_component
from aggregator.rates.lineage import independent_of, lineage, observations
from aggregator.settings.rates import CrossCheckSettings

T = datetime(2026, 11, 24, 12, tzinfo=UTC)
C = ("lido-steth", "base")
S = CrossCheckSettings()


def q(source: str, value: float, origin: str = "") -> Quote:
    return Quote(source=source, key="k", value=value, observed_at=T, fetched_at=T, origin=origin)


def test_defillama_and_lido_are_one_observation_of_lidos_api() -> None:
    """stETH three ways: DefiLlama's number is Lido's API, so the median is over two observations (Lido's API, the
    chain), not three: mean(2.20 %, 2.26 %) = 2.23 % and the chain's 2.60 % give 2.415 %, where a three-way median
    would have taken 2.26 %."""
    quotes = [
        q("defillama", 0.0220, "lido-api"),
        q("lido", 0.0226, "lido-api"),
        q("onchain", 0.0260, "chain:steth"),
    ]
    out = check_component(C, quotes, RateMemory(), S, T)
    assert len(out.observations) == 2
    assert out.value == pytest.approx((0.0223 + 0.0260) / 2)
    assert out.spread == pytest.approx(0.0260 - 0.0223)  # between observations, not between all quotes
    assert independent_of(len(out.observations), len(quotes)) == "2 independent of 3"
    assert [o.describe() for o in out.observations] == ["lido-api: defillama, lido", "chain:steth: onchain"]


def test_quotes_without_origin_stand_alone() -> None:
    out = check_component(C, [q("a", 0.022), q("b", 0.030), q("c", 0.023)], RateMemory(), S, T)
    assert out.value == pytest.approx(0.023) and len(out.observations) == 3
    assert lineage(q("a", 0.01)) == "a:k"


def test_a_jump_is_not_confirmed_by_a_quote_of_the_same_origin() -> None:
    """DefiLlama repeating Lido's jumped number is not a second opinion: the jump stays quarantined."""
    mem = RateMemory()
    check_component(C, [q("lido", 0.022, "lido-api"), q("defillama", 0.022, "lido-api")], mem, S, T)
    out = check_component(C, [q("lido", 0.05, "lido-api"), q("defillama", 0.05, "lido-api")], mem, S, T)
    assert out.value is None and len(out.quarantined) == 2


def test_a_jump_is_confirmed_by_an_independent_quote() -> None:
    mem = RateMemory()
    check_component(C, [q("lido", 0.022, "lido-api"), q("onchain", 0.022, "chain:steth")], mem, S, T)
    out = check_component(C, [q("lido", 0.05, "lido-api"), q("onchain", 0.0498, "chain:steth")], mem, S, T)
    assert out.value == pytest.approx(0.0499)


def test_observations_take_the_median_within_an_origin() -> None:
    obs = observations([q("a", 0.01, "x"), q("b", 0.02, "x"), q("c", 0.09, "x")])
    assert [(o.origin, o.value) for o in obs] == [("x", 0.02)]
