"""Source lineage: which quotes of a component are independent observations.

Every quote says what its number derives from (`Quote.origin`, declared by its adapter): `lido-api` for Lido's own
API, `chain:reth` for rETH's exchange rate read on chain, and so on. DefiLlama's pools declare the origin of the
protocol API or exchange rate their adaptor computes from (`adapters.defillama.DERIVED_FROM`): its stETH number is
Lido's API, its rETH number Rocket Pool's. Quotes that share an origin are one observation: they are combined
(their median) before the component's median is taken, the disagreement spread is measured between
observations, and a jump is confirmed only by a quote of another origin. A quote without an origin stands alone.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from adapters import Quote


def lineage(quote: Quote) -> str:
    """What the quote's number derives from; a quote without a declared origin is its own."""
    return quote.origin or f"{quote.source}:{quote.key}"


@dataclass(frozen=True)
class Observation:
    """The quotes of one origin, as one value."""

    origin: str
    value: float
    quotes: tuple[Quote, ...]

    def describe(self) -> str:
        """`lido-api: defillama, lido` — the origin and the sources that reported it."""
        return f"{self.origin}: {', '.join(sorted({q.source for q in self.quotes}))}"


def observations(quotes: list[Quote] | tuple[Quote, ...]) -> list[Observation]:
    """The independent observations among `quotes`, in order of first appearance."""
    groups: dict[str, list[Quote]] = {}
    for q in quotes:
        groups.setdefault(lineage(q), []).append(q)
    return [
        Observation(origin, statistics.median(q.value for q in group), tuple(group))
        for origin, group in groups.items()
    ]


def independent_of(count: int, total: int) -> str:
    """`2 independent of 3` (or `1 source` / `3 independent` when nothing is shared)."""
    if total == 1:
        return "1 source"
    return f"{count} independent" if count == total else f"{count} independent of {total}"
