"""What research reads from the operator's config, built at the edge (`aggregator.interfaces.research_inputs`).

The backtest and the sweep take a `BacktestInputs`, never the whole `Settings`: the optimizer's universe and limits,
the starting book, how decisions read yields, and per component its plausible range and static assumption. The
schema sections research reads as they are (`[backtest]`, the `[rates]` rule) are the types of
`aggregator.settings.backtest` and `aggregator.settings.rates`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.settings.backtest import BacktestSettings
from aggregator.settings.rates import InputRule
from optimizer import Limits, Universe


@dataclass(frozen=True)
class BacktestInputs:
    universe: Universe  # the venues and risk nodes replayed
    limits: Limits  # the config's [limits] (its own pydantic type: a variant or a sweep cell validates as it)
    holdings_eth: Mapping[str, float]  # the config's book, by venue (start_from = "holdings")
    rule: InputRule  # the daemon's [rates] rule (window, estimator, entry minimum)
    components: tuple[str, ...]  # "venue.component", in the config's order: the history's columns
    plausible: Mapping[str, tuple[float, float]]  # per component, the range the daemon accepts for its quotes
    static: Mapping[str, float]  # per component whose every quote is `static`: that value, per year
    backtest: BacktestSettings | None  # the config's [backtest] section, if any

    @property
    def portfolio_eth(self) -> float:
        return sum(self.holdings_eth.values())

    @property
    def window_days(self) -> float:
        return self.rule.window_days

    @property
    def risk_node_ids(self) -> frozenset[str]:
        return frozenset(n.id for n in self.universe.nodes)

    def plausible_for(self, component: str) -> tuple[float, float]:
        """The daemon's range for a component's quotes; unbounded for a component the config does not name."""
        return self.plausible.get(component, (-math.inf, math.inf))
