"""Cross-checking: median, disagreement, and the jump quarantine with its two ways of confirmation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters import Quote
from aggregator.rates.crosscheck import RateMemory, check_component
from aggregator.settings.rates import CrossCheckSettings

T = datetime(2026, 9, 14, tzinfo=UTC)
S = CrossCheckSettings(disagreement_tolerance=0.005, jump_threshold=0.01)
C = ("lido-steth", "base")


def q(source: str, value: float) -> Quote:
    return Quote(source=source, key="k", value=value, observed_at=T, fetched_at=T)


def test_median_of_sources_and_disagreement_spread() -> None:
    """Three sources: the median is used and the spread reported."""
    out = check_component(C, [q("a", 0.022), q("b", 0.030), q("c", 0.023)], RateMemory(), S, T)
    assert out.value == pytest.approx(0.023) and out.spread == pytest.approx(0.008)


def test_single_source_jump_is_quarantined_then_confirmed_by_a_later_cycle() -> None:
    """2.2 % then 5 % from one source: held back; a re-fetch a minute later confirms nothing; 30 min later it does."""
    mem = RateMemory()
    assert check_component(C, [q("a", 0.022)], mem, S, T).value == pytest.approx(0.022)
    jumped = check_component(C, [q("a", 0.05)], mem, S, T)
    assert jumped.value is None and jumped.quarantined[0][1] == pytest.approx(0.022)
    assert check_component(C, [q("a", 0.05)], mem, S, T + timedelta(minutes=1)).value is None
    confirmed = check_component(C, [q("a", 0.0505)], mem, S, T + timedelta(minutes=30))
    assert confirmed.value == pytest.approx(0.0505)
    assert confirmed.change == pytest.approx(0.0505 - 0.022)


def test_a_one_off_spike_never_reaches_the_optimizer() -> None:
    """A spike that reverts next cycle is never used; the old level carries on."""
    mem = RateMemory()
    check_component(C, [q("a", 0.022)], mem, S, T)
    assert check_component(C, [q("a", 0.118)], mem, S, T).value is None  # an 11.8 % oracle artefact
    assert check_component(C, [q("a", 0.0225)], mem, S, T).value == pytest.approx(0.0225)


def test_a_jump_seen_by_two_sources_is_accepted_at_once() -> None:
    """When another source agrees with the new level, the jump is confirmed immediately."""
    mem = RateMemory()
    check_component(C, [q("a", 0.022), q("b", 0.022)], mem, S, T)
    out = check_component(C, [q("a", 0.05), q("b", 0.049)], mem, S, T)
    assert out.value == pytest.approx(0.0495) and not out.quarantined


def test_one_source_jumping_alone_is_dropped_from_the_median() -> None:
    """Of two sources, the one that jumped alone is quarantined; the other carries the component."""
    mem = RateMemory()
    check_component(C, [q("a", 0.022), q("b", 0.023)], mem, S, T)
    out = check_component(C, [q("a", 0.09), q("b", 0.0232)], mem, S, T)
    assert out.value == pytest.approx(0.0232) and [x.source for x, _ in out.quarantined] == ["a"]
