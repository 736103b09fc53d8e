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

    def payload(self) -> Any:
        return json.loads((FIXTURES / self.fixture).read_text())


LIDO_TS = datetime(2026, 9, 14, 12, tzinfo=UTC)
HTTP_CASES = [
    Case(
        "lido",
        "apr_last",
        0.02235,
        "/v1/protocol/steth/apr/last",
        "lido/apr_last.json",
        ("data", "apr"),
        observed=LIDO_TS,
        timestamp_path=("data", "timeUnix"),
    ),
    Case("rocketpool", "apr", 0.0217, "/api/apr", "rocketpool/apr.json", ("yearlyAPR",), string_valued=True),
    Case(
        "coinbase",
        "apy",
        0.0235,
        "/wrapped-assets/CBETH/",
        "coinbase/cbeth.json",
        ("apy",),
        unit="fraction",
        string_valued=True,
    ),
    Case(
        "binance",
        "apr",
        0.0314,
        "/bapi/earn/v1/public/pos/cftoken/project/getPurchasableProject",
        "binance/project.json",
        ("data", "annualInterestRate"),
        unit="fraction",
    ),
    Case(
        "frax",
        "sfrxeth",
        0.0299,
        "/v2/frxeth/summary/latest",
        "frax/latest.json",
        ("sfrxethApr",),
        observed=datetime(2025, 3, 22, tzinfo=UTC),
        timestamp_path=("intervalTimestamp",),
    ),
    Case(
        "etherfi",
        "7_day_restaking_apr",
        0.01305,
        "/api/protocol/protocol-detail",
        "etherfi/protocol-detail.json",
        ("7_day_restaking_apr",),
    ),
    Case("renzo", "apr", 0.0128, "/api/apr", "renzo/apr.json", ("apr",)),
    Case("kelp", "apy", 0.0355, "/rseth/apy", "kelp/apy.json", ("value",)),
    Case("swell", "sweth", 0.0296, "/api/tokens/sweth/apr", "swell/sweth_apr.json", ()),
    Case(
        "defillama",
        "747c1d2a-c668-4682-b9f9-296708a3dd90",
        0.02235,
        "/pools",
        "defillama/pools.json",
        ("data", 0, "apyBase"),
    ),
]


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
