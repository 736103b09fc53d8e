"""Binance wBETH, `getPurchasableProject` → `data.annualInterestRate`, a **fraction** (docs/sources.md §2), sent as a
JSON number or a numeric string (DefiLlama's and PancakeSwap's readers accept both)."""

from __future__ import annotations

from typing import ClassVar, Literal

from adapters.base import SourceSettings
from adapters.endpoints import Endpoint, EndpointSettings, Path
from adapters.simple import FRACTION


class BinanceSettings(EndpointSettings):
    adapter: Literal["binance"]


class BinanceAdapter(Endpoint):
    settings_model: ClassVar[type[SourceSettings]] = BinanceSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})
    urls: ClassVar[tuple[str, ...]] = (
        "https://www.binance.com/bapi/earn/v1/public/pos/cftoken/project/getPurchasableProject",
    )
    fields: ClassVar[dict[str, Path]] = {"apr": ("data", "annualInterestRate")}
    unit: ClassVar[float] = FRACTION
    label: ClassVar[str] = "Binance wBETH annualInterestRate"
    origin: ClassVar[str] = "binance-api"
