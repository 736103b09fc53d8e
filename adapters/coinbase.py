"""Coinbase cbETH, `GET {base_url}/wrapped-assets/CBETH/` → `apy` as a string **fraction** (docs/sources.md §2)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel

from adapters.base import SourceSettings
from adapters.simple import FRACTION, HttpSourceSettings, NumericString, SingleEndpoint


class CoinbaseSettings(HttpSourceSettings):
    adapter: Literal["coinbase"]
    base_url: str = "https://api.exchange.coinbase.com"


class _Doc(BaseModel):
    apy: NumericString


class CoinbaseAdapter(SingleEndpoint):
    settings_model: ClassVar[type[SourceSettings]] = CoinbaseSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apy"})
    path: ClassVar[str] = "/wrapped-assets/CBETH/"
    model: ClassVar[type[BaseModel]] = _Doc
    unit: ClassVar[float] = FRACTION
    label: ClassVar[str] = "Coinbase cbETH apy"

    @staticmethod
    def read(doc: _Doc) -> tuple[float, datetime | None]:
        return float(doc.apy), None
