"""Build data/snapshots/demo-2026-09-14.json from the real values bundled in data/source and data/history.

    .venv/bin/python scripts/build_demo_snapshot.py

Each quote keeps the date it was really observed and says where it comes from (data/PROVENANCE.md). Venues with
a 2026-09-14 DefiLlama value use it; the others use the latest real value in the bundled files, which is older.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-09-14T23:00:00Z"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def main() -> None:
    quotes = []
    dl = {r["symbol"]: r for r in _rows(ROOT / "data/source/defillama_eth_lst_2026-09-14.csv")}
    lido = dl["stETH"]
    quotes.append(
        {
            "key": "lido-steth.base",
            "value": 0.02235,
            "observed_at": AS_OF,
            "origin": f"DefiLlama /pools lido STETH apyBase 2.235 % (pool {lido['pool_id']}), "
            "data/source/defillama_eth_lst_2026-09-14.csv",
        }
    )
    for sym, key in (
        ("rETH", "rocketpool-reth.base"),
        ("cbETH", "coinbase-cbeth.base"),
        ("weETH", "etherfi-weeth.base"),
    ):
        row = dl[sym]
        quotes.append(
            {
                "key": key,
                "value": round(float(row["apy_pct"]) / 100, 6),
                "observed_at": AS_OF,
                "origin": f"DefiLlama /pools {row['project']} {sym} apy {row['apy_pct']} % (pool "
                f"{row['pool_id']}; rounded in the source), "
                "data/source/defillama_eth_lst_2026-09-14.csv",
            }
        )
    ls = [
        r
        for r in _rows(ROOT / "data/source/defillama_liquid_staking_2025-03-22_and_2025-04-04.csv")
        if r["project"] == "binance-staked-eth" and r["chain"] == "Ethereum" and r["snapshot"]
    ]
    wb = ls[-1]
    quotes.append(
        {
            "key": "binance-wbeth.base",
            "value": round(float(wb["apy_base_pct"]) / 100, 6),
            "observed_at": "2025-04-04T13:10:45Z",
            "origin": f"DefiLlama liquid staking table, binance-staked-eth WBETH apyBase {wb['apy_base_pct']} %"
            ", data/source/defillama_liquid_staking_2025-03-22_and_2025-04-04.csv",
        }
    )
    windows = _rows(ROOT / "data/history/lst_lrt_onchain_apr_windows.csv")
    for token, key in (("ezETH", "renzo-ezeth.base"), ("rsETH", "kelp-rseth.base")):
        last = [r for r in windows if r["token"] == token][-1]
        quotes.append(
            {
                "key": key,
                "value": round(float(last["apr_pct"]) / 100, 6),
                "observed_at": f"{last['date']}T00:00:00Z",
                "origin": f"{last['window_days']}-day exchange-rate APR {last['apr_pct']} % on {last['date']}"
                " (Aave CAPO report), data/history/lst_lrt_onchain_apr_windows.csv",
            }
        )
    out = {
        "as_of": AS_OF,
        "description": "Demo snapshot of real yields (fractions per year). LST values are DefiLlama's of "
        "2026-09-14; wBETH, ezETH and rsETH have no value that day in the bundled data, so their "
        "latest real value is used with its own date. See data/PROVENANCE.md.",
        "quotes": quotes,
    }
    path = ROOT / "data/snapshots/demo-2026-09-14.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path} with {len(quotes)} quotes")


if __name__ == "__main__":
    main()
