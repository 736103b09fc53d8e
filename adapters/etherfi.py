"""ether.fi weETH → `7_day_apr` (staking) and `7_day_restaking_apr` (EIGEN rewards), both percent numbers.

URLs, in order: `https://www.ether.fi/api/dapp/protocol/protocol-detail` (where integrators moved in late 2025 and
2026, e.g. Balancer's backend configs), then `https://app.ether.fi/api/protocol/protocol-detail` (the older one,
quoted with a 2025 body by seamless-protocol's frontend); the fields are the same. ether.fi is the only quote for
EigenLayer's restaking component in config/production.toml, so the fallback keeps that venue priced."""

from __future__ import annotations

from typing import ClassVar, Literal

from adapters.base import SourceSettings
from adapters.endpoints import Endpoint, EndpointSettings, Path
from adapters.simple import PERCENT


class EtherfiSettings(EndpointSettings):
    adapter: Literal["etherfi"]


class EtherfiAdapter(Endpoint):
    settings_model: ClassVar[type[SourceSettings]] = EtherfiSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"7_day_apr", "7_day_restaking_apr"})
    urls: ClassVar[tuple[str, ...]] = (
        "https://www.ether.fi/api/dapp/protocol/protocol-detail",
        "https://app.ether.fi/api/protocol/protocol-detail",
    )
    fields: ClassVar[dict[str, Path]] = {
        "7_day_apr": ("7_day_apr",),
        "7_day_restaking_apr": ("7_day_restaking_apr",),
    }
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "ether.fi"
    origin: ClassVar[str] = "etherfi-api"
