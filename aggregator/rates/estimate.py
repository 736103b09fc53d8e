"""What a decision may believe about a yield: a robust estimate over a window, and whether it may justify an entry.

Pure (no I/O, no clock). The daemon (`aggregator.service.cycle`, over the store's window of component yields) and the
backtest (`aggregator.research.backtest.history`, over the history rows a decision may see) call the same functions, so the
replay tests exactly what the daemon would have done.

Why the median (the default) and not the mean: a yield series is a slow level with prints that are occasionally far
off it (a one-day 9.91 % stETH value, a weekly reward distribution showing up as one high day of ezETH). A mean moves
by spike/N however large the spike, and moves twice, when it enters and when it leaves the window: the optimizer
bought and sold on both edges. The median of N values does not depend on how large an outlier is, and it ignores
anything up to just under half the window (7 of 14 days), so a spike neither enters nor leaves it. Its costs: it
uses the order of the values rather than their size (less efficient on well-behaved noise) and it follows a real
level change about half a window late, a week on the default 14 days. For a position held for months whose round
trip costs more than a month of its yield, a week's lag is cheap. `trimmed_mean` (drop `trim` of the values at each
end, average the rest) is offered for operators who want a smoother estimate; with `trim` ≥ 1/N it also ignores a
single spike, but it breaks down at `trim` of the window instead of half.

Values may carry weights (how many times a value was seen): the daemon's store returns each distinct value of the
window once with its count, so a cycle reads a few rows per component, not every collection of two weeks.

Entries: a venue may be entered only on a yield observed this cycle (fresh), resting on at least
`min_observations` values of the window. A value that is only carried (the backtest keeps the last one up to
`max_gap_days`) or stale (the daemon has no fresh quote this cycle, the estimate is the stored window's) values a
venue already held, so it can be sold, but never buys more of it. An entry counts on the window's `entry_quantile`
(lower than the median, so a few high values do not buy) or this cycle's value if that is lower: a series falling
through its window (rsETH in May 2024: 13 % and 10 % windows, then 0.8 %) still has a high median and quartile for
days, and the optimizer bought on them and sold within a week as the median caught up. Holdings are valued at the
estimate, so neither rule sells anything.

Warm-up: a deployment does not commit capital to a venue while a better-looking venue is only waiting for its entry
gate. A component is NEW when the caller never observed it before the window (a series that just started, a source
just added; the caller passes them in `new`); a venue closed to entries only because a new component along its path
has too few observations yet is WARMING UP. While one is, every venue open to entries whose estimated path yield
is lower than the warming venue's is closed too ("waiting for …"): idle ETH stays idle, and capital is not rotated
into a second-best venue that a week later would need a round trip to leave. The wait is bounded: once the new
component has `min_observations` values, or its first value has left the window (then it is no longer new), the
gate opens by itself. The comparison is on yield estimates alone (a warming venue's risk is priced by the
optimizer once it opens); holdings keep earning and may be sold, so the rule costs at most a window of idle yield
on capital not yet deployed. Without it a replay whose best series began the day before (stETH in the bundled
history) deployed idle ETH into rETH and weETH and then kept or churned that book (20-52 bp/yr behind the
hindsight book).

Shrinkage (`shrink`, default 0 in the schema, 0.5 in the shipped configs): after the gates, each liquid
(re)staking token's component is pulled that share of the way toward the median of the same component over the
tokens that have one (`shrink_toward_median`). The tokens all earn the network's staking yield less a fee; what
separates their windowed estimates on a given day is mostly noise, and under a binding CVaR budget the LP spends
the whole budget on whichever looked best that day. `DecisionYields.shrunk` keeps each own estimate and target.

A component with no value in its window at all is one of two things. Never observed (a new store warming up, a
series that has not started, a daemon back from a long stop): its venue is held at its weight, because nothing
says the position is worse than when it was bought. Observed before and gone (`expired`: values stopped arriving
while the caller was watching): its venue is exit-only, counted at 0 for that component (nothing verifiable says
it still earns), never bought, and may be sold down to 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from aggregator.settings.rates import Estimator, InputRule
from optimizer.inputs import TOKEN_KINDS, Universe

Freshness = Literal["fresh", "stale", "carried"]
EXPIRED_REASON = (
    "expired: observed before, no value in the window; counted at 0 yield, may be sold, not bought"
)

STALE: Freshness = "stale"
CARRIED: Freshness = "carried"


@dataclass(frozen=True)
class Estimate:
    """One component's robust yield and what it rests on."""

    value: float
    observations: int
    freshness: Freshness
    entry_value: float | None = (
        None  # what an entry counts on: the window's `entry_quantile` or the latest value
    )
    # if lower (None: `value`)

    @property
    def entry_spread(self) -> float:
        """How much less than the estimate an entry counts on (≥ 0)."""
        return 0.0 if self.entry_value is None else max(0.0, self.value - self.entry_value)

    def entry_block(self, rule: InputRule) -> str | None:
        """Why this value may not justify an entry, or None."""
        if self.freshness == "stale":
            return "stale: no fresh quote this cycle; valued at the window's last robust estimate"
        if self.freshness == "carried":
            return "carried: no new value since an earlier day; valued at the window's robust estimate"
        if rule.window_days > 0 and self.observations < rule.min_observations:
            return f"too few observations: {self.observations} of the {rule.min_observations} needed"
        return None


def robust(
    values: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    estimator: Estimator = "median",
    trim: float = 0.25,
) -> float:
    """The weighted median (the mean of the two middle values when the weight splits evenly), or the mean of what
    is left after dropping `trim` of the total weight at each end. Raises ValueError on no values, a non-finite
    value or a non-positive weight."""
    v = np.asarray(values, dtype=float)
    w = np.ones(v.size) if weights is None else np.asarray(weights, dtype=float)
    if v.size == 0:
        raise ValueError("a robust estimate needs at least one value")
    if w.shape != v.shape:
        raise ValueError(f"{v.size} values but {w.size} weights")
    if not (np.isfinite(v).all() and np.isfinite(w).all() and (w > 0).all()):
        raise ValueError("values must be finite and weights positive")
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    upper = np.cumsum(w)  # cumulative weight at the top of each value
    total = float(upper[-1])
    if estimator == "median":
        half = total / 2.0
        k = int(np.searchsorted(upper, half, side="left"))  # first value whose cumulative weight reaches half
        k = min(k, v.size - 1)
        if k + 1 < v.size and math.isclose(upper[k], half, rel_tol=1e-12, abs_tol=1e-12):
            return float((v[k] + v[k + 1]) / 2.0)  # an even split: between the two middle values
        return float(v[k])
    lower = upper - w
    lo, hi = trim * total, (1.0 - trim) * total
    inside = np.clip(np.minimum(upper, hi) - np.maximum(lower, lo), 0.0, None)  # each value's weight kept
    return float(inside @ v / inside.sum())


def quantile(values: Sequence[float], weights: Sequence[float], q: float) -> float:
    """The weighted `q`-quantile: the smallest value whose cumulative weight reaches q of the total."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cum = np.cumsum(w)
    k = int(np.searchsorted(cum, q * float(cum[-1]) - 1e-12, side="left"))
    return float(v[min(k, v.size - 1)])


def estimate(
    window: Mapping[float, float],
    latest: float | None,
    rule: InputRule,
    *,
    freshness: Freshness = "fresh",
) -> Estimate | None:
    """A component's estimate from its window (value → how many times it was seen, the latest value excluded)
    and this cycle's value `latest` (None when there is none). Without a fresh value the estimate rests on the
    window alone and is marked stale (or `freshness` as given); with neither there is no estimate."""
    values = list(window)
    weights = [float(window[v]) for v in values]
    if latest is not None:
        values.append(latest)
        weights.append(1.0)
        freshness_ = freshness
    else:
        freshness_ = STALE if freshness == "fresh" else freshness
    if not values:
        return None
    n = round(sum(weights))
    if rule.window_days <= 0 and latest is not None:
        return Estimate(latest, n, freshness_)
    value = robust(values, weights, estimator=rule.estimator, trim=rule.trim)
    low = quantile(values, weights, rule.entry_quantile) if rule.entry_quantile < 0.5 else None
    if low is not None and latest is not None:
        low = min(
            low, latest
        )  # a falling series: an entry counts on neither the window's past nor its median
    return Estimate(value, n, freshness_, low)


def blocked_venues(universe: Universe, reasons: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """Venue → why it may not be entered, from component-level reasons ((venue, component) → reason): a venue is
    closed to entries when any component along its path is (its value rests on that component)."""
    by_id = {v.id: v for v in universe.venues}
    out: dict[str, str] = {}
    for venue in universe.venues:
        why: list[str] = []
        node: str | None = venue.id
        while node is not None:
            for comp in by_id[node].components:
                reason = reasons.get((node, comp.name))
                if reason is not None:
                    why.append(f"{node}.{comp.name} {reason}")
            node = by_id[node].parent
        if why:
            out[venue.id] = "; ".join(why)
    return out


def counts(values: Iterable[float]) -> dict[float, float]:
    """Each distinct value with how many times it occurs (the form `estimate` takes)."""
    out: dict[float, float] = {}
    for v in values:
        out[v] = out.get(v, 0.0) + 1.0
    return out


@dataclass(frozen=True)
class DecisionYields:
    """What one decision sees: venue → component → robust yield, every estimate, and why venues are closed."""

    yields: dict[str, dict[str, float]]
    estimates: dict[tuple[str, str], Estimate]
    entry_blocked: dict[str, str]
    exit_only: dict[str, str] = field(default_factory=dict)  # venue → why: an expired component on its path
    # venue → yearly yield an entry does not count on: its own components' spread between estimate and the window's
    # entry quantile, after haircuts
    entry_discount: dict[str, float] = field(default_factory=dict)
    # (venue, component) → (own estimate, the tokens' median it was pulled toward): the shrinkage applied
    shrunk: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)


def decision_yields(
    universe: Universe,
    latest: Mapping[str, Mapping[str, float]],
    window: Mapping[tuple[str, str], Mapping[float, float]],
    rule: InputRule,
    *,
    carried: frozenset[tuple[str, str]] = frozenset(),
    expired: frozenset[tuple[str, str]] = frozenset(),
    new: frozenset[tuple[str, str]] = frozenset(),
) -> DecisionYields:
    """Every component's estimate from this cycle's values (`latest`, venue → component → value) and its window
    (the earlier values with their counts). A component without a latest value is stale and estimated from its
    window; one listed in `carried` has a latest value that is only carried; one with neither value nor window has
    no yield: its venue is held, unless the component is listed in `expired` (observed before, gone while the
    caller watched) and every component missing along the venue's path is: then the venue is exit-only (counted
    at 0 for what is missing, closed to entries, may be sold to 0). A venue is closed to entries when any
    component along its path is stale, carried, expired or rests on fewer than `min_observations` values; and
    while a venue is warming up (`new`: components never observed before the window; module doc), every open
    venue whose estimated path yield is below the warming venue's is closed to entries as well."""
    yields: dict[str, dict[str, float]] = {}
    estimates: dict[tuple[str, str], Estimate] = {}
    reasons: dict[tuple[str, str], str] = {}
    for venue in universe.venues:
        for comp in venue.components:
            key = (venue.id, comp.name)
            value = latest.get(venue.id, {}).get(comp.name)
            est = estimate(window.get(key, {}), value, rule, freshness=CARRIED if key in carried else "fresh")
            if est is None:
                if key in expired:
                    reasons[key] = EXPIRED_REASON
                continue
            estimates[key] = est
            yields.setdefault(venue.id, {})[comp.name] = est.value
            why = est.entry_block(rule)
            if why is not None:
                reasons[key] = why
    blocked = blocked_venues(universe, reasons)
    blocked.update(
        waiting_for_warm_up(
            universe,
            yields=yields,
            estimates=estimates,
            reasons=reasons,
            blocked=blocked,
            rule=rule,
            new=new,
        )
    )
    discount: dict[str, float] = {}
    for venue in universe.venues:
        spread = sum(
            (1.0 - c.haircut) * estimates[(venue.id, c.name)].entry_spread
            for c in venue.components
            if (venue.id, c.name) in estimates
        )
        if spread > 0.0:
            discount[venue.id] = spread
    exit_only = _exit_only(universe, yields, reasons, blocked)
    shrunk = shrink_toward_median(universe, yields, rule.shrink)
    return DecisionYields(yields, estimates, blocked, exit_only, discount, shrunk)


def shrink_toward_median(
    universe: Universe, yields: dict[str, dict[str, float]], weight: float
) -> dict[tuple[str, str], tuple[float, float]]:
    """Pull each token venue's estimate of a component `weight` of the way toward the median of that component
    over the token venues that have an estimate of it (at least two), in place; returns what it changed.

    Every liquid (re)staking token earns the network's staking yield less its fee and drag, so their true yields
    differ by tens of basis points while their windowed estimates differ by that much from week to week: with a
    CVaR budget binding, the LP turns those estimated differences into concentration (the whole budget in the
    token that looked best on the day it decided), and the book then needs round trips to diversify. Shrinking
    toward the group (James-Stein; skfolio's `ShrunkMu`) keeps the ranking and halves (at 0.5) the differences
    the plan can be fooled by. Only token venues' own components: restaking rewards are not the same yield.
    Called after the entry gates, which look at each venue's own estimate."""
    if weight <= 0.0:
        return {}
    groups: dict[str, list[str]] = {}
    for venue in universe.venues:
        if venue.kind not in TOKEN_KINDS:
            continue
        for c in venue.components:
            if c.name in yields.get(venue.id, {}):
                groups.setdefault(c.name, []).append(venue.id)
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for name, venues in groups.items():
        if len(venues) < 2:
            continue
        target = float(np.median([yields[v][name] for v in venues]))
        for v in venues:
            own = yields[v][name]
            yields[v][name] = (1.0 - weight) * own + weight * target
            out[(v, name)] = (own, target)
    return out


def path_yields(universe: Universe, yields: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each venue's estimated yield along its path after haircuts; venues missing a component on it are left out."""
    by_id = {v.id: v for v in universe.venues}
    out: dict[str, float] = {}
    for venue in universe.venues:
        total = 0.0
        node: str | None = venue.id
        complete = True
        while node is not None:
            for c in by_id[node].components:
                value = yields.get(node, {}).get(c.name)
                if value is None:
                    complete = False
                else:
                    total += (1.0 - c.haircut) * value
            node = by_id[node].parent
        if complete:
            out[venue.id] = total
    return out


def waiting_for_warm_up(
    universe: Universe,
    *,
    yields: Mapping[str, Mapping[str, float]],
    estimates: Mapping[tuple[str, str], Estimate],
    reasons: Mapping[tuple[str, str], str],
    blocked: Mapping[str, str],
    rule: InputRule,
    new: frozenset[tuple[str, str]],
) -> dict[str, str]:
    """Open venues to close while a better-looking venue warms up (module doc): venue → why."""
    if not new or rule.window_days <= 0 or rule.min_observations <= 1:
        return {}
    by_id = {v.id: v for v in universe.venues}
    gated = {
        k
        for k, why in reasons.items()
        if why.startswith("too few observations") and k in new and k in estimates
    }
    if not gated:
        return {}
    path = path_yields(universe, yields)
    warming: list[tuple[str, float, str]] = []
    for venue in universe.venues:
        if venue.id not in blocked or venue.id not in path:
            continue
        keys: list[tuple[str, str]] = []
        node: str | None = venue.id
        while node is not None:
            keys += [(node, c.name) for c in by_id[node].components if (node, c.name) in reasons]
            node = by_id[node].parent
        if keys and all(k in gated for k in keys):
            least = min(estimates[k].observations for k in keys)
            warming.append((venue.id, path[venue.id], f"{least} of the {rule.min_observations} needed"))
    if not warming:
        return {}
    best, best_yield, count = max(warming, key=lambda w: w[1])
    return {
        venue.id: (
            f"waiting for {best} to warm up ({count} observations; its estimate "
            f"{best_yield * 100:.2f} % beats this venue's {path[venue.id] * 100:.2f} %)"
        )
        for venue in universe.venues
        if venue.id not in blocked
        and venue.id in path
        and venue.parent is not None
        and path[venue.id] < best_yield
    }


def _exit_only(
    universe: Universe,
    yields: Mapping[str, Mapping[str, float]],
    reasons: Mapping[tuple[str, str], str],
    blocked: Mapping[str, str],
) -> dict[str, str]:
    """Venues some of whose path components have no value, every one of them expired (none never observed)."""
    by_id = {v.id: v for v in universe.venues}
    out: dict[str, str] = {}
    for venue in universe.venues:
        missing: list[tuple[str, str]] = []
        node: str | None = venue.id
        while node is not None:
            missing += [(node, c.name) for c in by_id[node].components if c.name not in yields.get(node, {})]
            node = by_id[node].parent
        if missing and all(reasons.get(k) == EXPIRED_REASON for k in missing):
            out[venue.id] = blocked[venue.id]
    return out
