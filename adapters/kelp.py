"""Kelp rsETH, `GET https://universe.kelpdao.xyz/rseth/apy` → `{"value": <percent>}` (docs/sources.md §2), a JSON number
or a numeric string (other integrators' readers accept both)."""

from __future__ import annotations

from typing import ClassVar, Literal

from adapters.base import SourceSettings
from adapters.endpoints import Endpoint, EndpointSettings, Path
from adapters.simple import PERCENT


class KelpSettings(EndpointSettings):
    adapter: Literal["kelp"]


class KelpAdapter(Endpoint):
    settings_model: ClassVar[type[SourceSettings]] = KelpSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apy"})
    urls: ClassVar[tuple[str, ...]] = ("https://universe.kelpdao.xyz/rseth/apy",)
    fields: ClassVar[dict[str, Path]] = {"apy": ("value",)}
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Kelp rsETH"
    origin: ClassVar[str] = "kelp-api"
