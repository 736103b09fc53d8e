"""Renzo ezETH, `GET https://app.renzoprotocol.com/api/apr` → `{"apr": <percent>}` (docs/sources.md §2)."""

from __future__ import annotations

from typing import ClassVar, Literal

from adapters.base import SourceSettings
from adapters.endpoints import Endpoint, EndpointSettings, Path
from adapters.simple import PERCENT


class RenzoSettings(EndpointSettings):
    adapter: Literal["renzo"]


class RenzoAdapter(Endpoint):
    settings_model: ClassVar[type[SourceSettings]] = RenzoSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})
    urls: ClassVar[tuple[str, ...]] = ("https://app.renzoprotocol.com/api/apr",)
    fields: ClassVar[dict[str, Path]] = {"apr": ("apr",)}
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Renzo ezETH"
    origin: ClassVar[str] = "renzo-api"
