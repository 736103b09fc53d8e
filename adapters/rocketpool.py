"""Rocket Pool rETH → `{"yearlyAPR": "<percent>"}`, a numeric string (seen with ~100 decimals) or a number.

URLs, in order: `https://api.rocketpool.net/mainnet/reth/apr` (read by Balancer since 2024-10 and by 2026
consumers), then `https://api.rocketpool.net/api/apr` (still read by DefiLlama's yield adaptor); same field."""

from __future__ import annotations

from typing import ClassVar, Literal

from adapters.base import SourceSettings
from adapters.endpoints import Endpoint, EndpointSettings, Path
from adapters.simple import PERCENT


class RocketpoolSettings(EndpointSettings):
    adapter: Literal["rocketpool"]


class RocketpoolAdapter(Endpoint):
    settings_model: ClassVar[type[SourceSettings]] = RocketpoolSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})
    urls: ClassVar[tuple[str, ...]] = (
        "https://api.rocketpool.net/mainnet/reth/apr",
        "https://api.rocketpool.net/api/apr",
    )
    fields: ClassVar[dict[str, Path]] = {"apr": ("yearlyAPR",)}
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Rocket Pool rETH yearlyAPR"
    origin: ClassVar[str] = "rocketpool-api"
