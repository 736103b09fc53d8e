"""The edge between the config and research: `BacktestInputs` built from `Settings` (the backtest and the sweep
never import `Settings`; the CLI, the benchmarks and the tests build their inputs here)."""

from __future__ import annotations

from adapters.static import StaticSettings
from aggregator.rates.crosscheck import plausible_range
from aggregator.research.backtest.inputs import BacktestInputs
from aggregator.settings import Settings


def static_assumptions(settings: Settings) -> dict[str, float]:
    """Components whose every quote is a `static` value: the value (first quote), constant over the period."""
    out: dict[str, float] = {}
    for v in settings.venues:
        for c in v.components:
            sources = [settings.sources[q.source] for q in c.quotes]
            if all(isinstance(s, StaticSettings) for s in sources):
                first = sources[0]
                assert isinstance(first, StaticSettings)
                out[f"{v.id}.{c.name}"] = first.values[c.quotes[0].key].value
    return out


def plausible_ranges(settings: Settings) -> dict[str, tuple[float, float]]:
    """The range the daemon accepts for each component's quotes (`[rates] plausible_*` or the component's own): the
    replay's decisions see what the daemon would, so a value the daemon rejects is not seen either."""
    out: dict[str, tuple[float, float]] = {}
    for venue in settings.venues:
        for comp in venue.components:
            bounds, _ = plausible_range(settings.rates, venue.kind, comp.name, comp.plausible)
            out.setdefault(f"{venue.id}.{comp.name}", (float(bounds[0]), float(bounds[1])))
    return out


def inputs_from_settings(settings: Settings) -> BacktestInputs:
    """What the backtest and the sweep read from the config."""
    return BacktestInputs(
        universe=settings.universe(),
        limits=settings.limits,
        holdings_eth=dict(settings.portfolio.holdings_eth),
        rule=settings.rates.rule(),
        components=tuple(f"{v.id}.{c.name}" for v in settings.venues for c in v.components),
        plausible=plausible_ranges(settings),
        static=static_assumptions(settings),
        backtest=settings.backtest,
    )
