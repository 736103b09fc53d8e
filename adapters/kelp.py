"""Kelp rsETH, `GET {base_url}/rseth/apy` → `{"value": <percent>}` (docs/sources.md §2)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, StrictFloat, StrictInt

from adapters.base import SourceSettings
from adapters.simple import PERCENT, HttpSourceSettings, SingleEndpoint


class KelpSettings(HttpSourceSettings):
    adapter: Literal["kelp"]
    base_url: str = "https://universe.kelpdao.xyz"


class _Doc(BaseModel):
    value: StrictFloat | StrictInt


class KelpAdapter(SingleEndpoint):
    settings_model: ClassVar[type[SourceSettings]] = KelpSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apy"})
    path: ClassVar[str] = "/rseth/apy"
    model: ClassVar[type[BaseModel]] = _Doc
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Kelp rsETH apy"

    @staticmethod
    def read(doc: _Doc) -> tuple[float, datetime | None]:
        return float(doc.value), None
