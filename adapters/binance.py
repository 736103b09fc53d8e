"""Binance wBETH, `getPurchasableProject` → `data.annualInterestRate`, a **fraction** (docs/sources.md §2)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, StrictFloat, StrictInt

from adapters.base import SourceSettings
from adapters.simple import FRACTION, HttpSourceSettings, SingleEndpoint


class BinanceSettings(HttpSourceSettings):
    adapter: Literal["binance"]
    base_url: str = "https://www.binance.com"


class _Data(BaseModel):
    annualInterestRate: StrictFloat | StrictInt  # noqa: N815


class _Doc(BaseModel):
    data: _Data


class BinanceAdapter(SingleEndpoint):
    settings_model: ClassVar[type[SourceSettings]] = BinanceSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})
    path: ClassVar[str] = "/bapi/earn/v1/public/pos/cftoken/project/getPurchasableProject"
    model: ClassVar[type[BaseModel]] = _Doc
    unit: ClassVar[float] = FRACTION
    label: ClassVar[str] = "Binance wBETH annualInterestRate"

    @staticmethod
    def read(doc: _Doc) -> tuple[float, datetime | None]:
        return float(doc.data.annualInterestRate), None
