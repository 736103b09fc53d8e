"""The results table as strings, shared by the terminal and the HTML report."""

from __future__ import annotations

from aggregator.backtest.run import Backtest


def pct(v: float, digits: int = 2) -> str:
    return f"{v * 100:.{digits}f}%"


TABLE_HEAD = (
    "strategy",
    "net yield/yr",
    "final ETH",
    "turnover",
    "costs ETH",
    "max drawdown",
    "in limits",
    "CVaR in budget",
    "CVaR mean/max",
    "stress ETH",
)


def rows(b: Backtest) -> list[tuple[str, ...]]:
    return [
        (
            r.name,
            pct(r.net_yield),
            f"{r.final_eth:,.2f}",
            f"{r.turnover * 100:.0f}%",
            f"{r.costs_eth:,.2f}",
            pct(r.worst_drawdown),
            pct(r.within_limits, 1),
            pct(r.cvar_within_budget, 1),
            f"{pct(r.cvar_mean)}/{pct(r.cvar_max)}",
            f"{r.stress_loss_eth:,.2f}",
        )
        for r in b.results
    ]
