"""The results table as strings, shared by the terminal and the HTML report."""

from __future__ import annotations

from aggregator.research.backtest.longrun import modelled_shares
from aggregator.research.backtest.run import Backtest


def pct(v: float, digits: int = 2) -> str:
    return f"{v * 100:.{digits}f}%"


TABLE_HEAD = (
    "strategy",
    "net yield/yr",
    "turnover",
    "legs (reversed)",
    "costs ETH",
    "costs bp/yr",
    "max drawdown",
    "in limits",
    "CVaR in budget",
    "CVaR mean/max",
    "stress ETH",
)


def rows(b: Backtest) -> list[tuple[str, ...]]:
    shares = modelled_shares(b.replay, b.history, b.universe)
    return [
        (
            r.name + (f" (modelled {shares[r.name] * 100:.0f}%)" if shares.get(r.name, 0.0) > 0.0 else ""),
            pct(r.net_yield),
            f"{r.turnover * 100:.0f}%",
            f"{r.trades} ({r.reversed})",
            f"{r.costs_eth:,.2f}",
            f"{r.costs_bps:.1f}",
            pct(r.worst_drawdown),
            pct(r.within_limits, 1),
            pct(r.cvar_within_budget, 1),
            f"{r.cvar_mean * 100:.2f}/{pct(r.cvar_max)}",
            f"{r.stress_loss_eth:,.2f}",
        )
        for r in b.results
    ]
