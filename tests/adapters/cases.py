"""One case per adapter: its recorded payload, where it is served, the key asked for and the value expected."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIXTURES.parent.parent


@dataclass(frozen=True)
class Case:
    adapter: str
    key: str
    expected: float  # fraction per year
    path: str = ""  # URL path served ("" for adapters that make no request)
    fixture: str = ""
    value_path: tuple[str | int, ...] = ()  # where the quoted number sits in the payload
    unit: str = "percent"  # the unit of the number in the payload
    string_valued: bool = False  # the API documents the number as a string
    observed: datetime | None = None  # the observation time the payload carries, if any
    timestamp_path: tuple[str | int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    fallback_path: str = ""  # the URL path the adapter tries next when `path` fails

    def payload(self) -> Any:
        return json.loads((FIXTURES / self.fixture).read_text())


LIDO_TS = datetime(2026, 9, 14, 12, tzinfo=UTC)
HTTP_CASES = [
    Case(
        "lido",
        "apr_last",
        0.02235,
        "/v1/protocol/steth/apr/last",
        "lido/apr_last.reconstructed.json",
        ("data", "apr"),
        observed=LIDO_TS,
        timestamp_path=("data", "timeUnix"),
    ),
    Case(
        "rocketpool",
        "apr",
        0.021,
        "/mainnet/reth/apr",
        "rocketpool/reth_apr.json",
        ("yearlyAPR",),
        string_valued=True,
        fallback_path="/api/apr",
    ),
    Case(
        "coinbase",
        "apy",
        0.0384,
        "/wrapped-assets/CBETH/",
        "coinbase/cbeth.docs-example.json",
        ("apy",),
        unit="fraction",
        string_valued=True,
    ),
    Case(
        "binance",
        "apr",
        0.0314,
        "/bapi/earn/v1/public/pos/cftoken/project/getPurchasableProject",
        "binance/project.reconstructed.json",
        ("data", "annualInterestRate"),
        unit="fraction",
    ),
    Case(
        "frax",
        "sfrxeth",
        0.0299,
        "/v2/frxeth/summary/latest",
        "frax/latest.reconstructed.json",
        ("sfrxethApr",),
        observed=datetime(2025, 3, 22, tzinfo=UTC),
        timestamp_path=("intervalTimestamp",),
    ),
    Case(
        "etherfi",
        "7_day_restaking_apr",
        0.013050994875671165,
        "/api/dapp/protocol/protocol-detail",
        "etherfi/protocol-detail.json",
        ("7_day_restaking_apr",),
        fallback_path="/api/protocol/protocol-detail",
    ),
    Case("renzo", "apr", 0.0128, "/api/apr", "renzo/apr.reconstructed.json", ("apr",)),
    Case("kelp", "apy", 0.0355, "/rseth/apy", "kelp/apy.reconstructed.json", ("value",)),
    Case("swell", "sweth", 0.0296, "/api/tokens/sweth/apr", "swell/sweth_apr.reconstructed.json", ()),
    Case(
        "defillama",
        "747c1d2a-c668-4682-b9f9-296708a3dd90",
        0.02235,
        "/pools",
        "defillama/pools.partly-reconstructed.json",
        ("data", 0, "apyBase"),
    ),
]
"""One case per HTTP adapter: the body the fault-injection tests (here, tests/reliability, benchmarks/soak.py)
derive their variants from: the adapter's real recording where one was found (tests/fixtures/PROVENANCE.toml),
else a body reconstructed from recorded values, so named."""


def one_source_settings(source: dict[str, Any], key: str) -> Settings:
    """Settings with idle ETH and one venue whose yield is quoted by `source` under `key` (named "src")."""
    return Settings.model_validate(
        {
            "portfolio": {"holdings_eth": {"eth": 1.0}},
            "venues": [
                {"id": "eth", "kind": "idle"},
                {
                    "id": "v",
                    "parent": "eth",
                    "kind": "liquid_staking",
                    "components": [{"name": "base", "quotes": [{"source": "src", "key": key}]}],
                },
            ],
            "sources": {"src": source},
        }
    )
