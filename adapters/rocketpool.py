"""Rocket Pool rETH, `GET {base_url}/api/apr` → `{"yearlyAPR": "<percent as a string>"}` (docs/sources.md §2)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel

from adapters.base import SourceSettings
from adapters.simple import PERCENT, HttpSourceSettings, NumericString, SingleEndpoint


class RocketpoolSettings(HttpSourceSettings):
    adapter: Literal["rocketpool"]
    base_url: str = "https://api.rocketpool.net"


class _Doc(BaseModel):
    yearlyAPR: NumericString  # noqa: N815 - the API names it so; a string by design


class RocketpoolAdapter(SingleEndpoint):
    settings_model: ClassVar[type[SourceSettings]] = RocketpoolSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})
    path: ClassVar[str] = "/api/apr"
    model: ClassVar[type[BaseModel]] = _Doc
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Rocket Pool rETH yearlyAPR"

    @staticmethod
    def read(doc: _Doc) -> tuple[float, datetime | None]:
        return float(doc.yearlyAPR), None
