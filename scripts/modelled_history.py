"""Fit the modelled LST series on ETH.STORE and check the modelled stETH growth against the wstETH points.

    .venv/bin/python scripts/modelled_history.py

Prints each ratio (the share of ETH.STORE the LST earned on the overlap) and, for each pair of `stEthPerToken`
readings ETH.STORE covers, the observed and modelled APR and the error. Numbers quoted in docs come from here.
"""

from __future__ import annotations

from pathlib import Path

from aggregator.research.backtest.modelled import check_points, fit_apy, fit_rate, read_dated, steth_points

DATA = Path(__file__).resolve().parent.parent / "data"


def main() -> None:
    eth_store = read_dated(DATA / "history" / "eth_store_apr_daily.csv", "apr")
    reth = fit_rate(read_dated(DATA / "history" / "reth_eth_rate_daily.csv", "reth_eth_rate"), eth_store)
    steth = fit_apy(read_dated(DATA / "history" / "steth_apy_daily.csv", "apy_pct", scale=0.01), eth_store)
    print(f"ETH.STORE {min(eth_store)} → {max(eth_store)}, {len(eth_store)} days")
    for name, fit in (("rETH (exchange rate)", reth), ("stETH (DefiLlama APY)", steth)):
        print(f"{name}: ratio {fit.ratio:.4f} over {fit.first} → {fit.last} ({fit.days} days)")
    points = steth_points(DATA / "events" / "steth_rate_and_june2022_depeg.csv")
    checks, uncovered = check_points(points, eth_store, steth.ratio)
    print(f"modelled stETH (ETH.STORE × {steth.ratio:.4f}) against wstETH stEthPerToken:")
    for c in checks:
        print(
            f"  {c.start} → {c.end}: observed {c.observed_apr * 100:.3f} %/yr, modelled {c.modelled_apr * 100:.3f} "
            f"%/yr, error {c.error * 100:+.3f} pp/yr"
        )
    for start, end in uncovered:
        print(f"  {start} → {end}: not covered by ETH.STORE (ends {max(eth_store)})")
    worst = max(checks, key=lambda c: abs(c.error))
    print(f"largest error {worst.error * 100:+.3f} pp/yr ({worst.start} → {worst.end})")


if __name__ == "__main__":
    main()
