"""Renzo ezETH, `GET {base_url}/api/apr` → `{"apr": <percent>}` (docs/sources.md §2)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, StrictFloat, StrictInt

from adapters.base import SourceSettings
from adapters.simple import PERCENT, HttpSourceSettings, SingleEndpoint


class RenzoSettings(HttpSourceSettings):
    adapter: Literal["renzo"]
    base_url: str = "https://app.renzoprotocol.com"


class _Doc(BaseModel):
    apr: StrictFloat | StrictInt


class RenzoAdapter(SingleEndpoint):
    settings_model: ClassVar[type[SourceSettings]] = RenzoSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})
    path: ClassVar[str] = "/api/apr"
    model: ClassVar[type[BaseModel]] = _Doc
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Renzo ezETH apr"

    @staticmethod
    def read(doc: _Doc) -> tuple[float, datetime | None]:
        return float(doc.apr), None
