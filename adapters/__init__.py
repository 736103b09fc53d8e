"""Data sources: one module per source, one async contract (`adapters.base.Adapter`), an explicit registry."""

from __future__ import annotations

from adapters.base import Adapter, Quote, SourceSettings
from adapters.defillama import DefiLlamaAdapter, DefiLlamaSettings
from adapters.errors import SourceDataError, SourceError, TemporarySourceError
from adapters.snapshot import SnapshotAdapter, SnapshotSettings
from adapters.static import StaticAdapter, StaticSettings

REGISTRY: dict[str, Adapter] = {
    "defillama": DefiLlamaAdapter(),
    "snapshot": SnapshotAdapter(),
    "static": StaticAdapter(),
}
"""Adapter name (the `adapter` key of a `[sources.NAME]` table) → adapter."""

AnySourceSettings = DefiLlamaSettings | SnapshotSettings | StaticSettings

__all__ = [
    "REGISTRY",
    "Adapter",
    "AnySourceSettings",
    "DefiLlamaSettings",
    "Quote",
    "SnapshotSettings",
    "SourceDataError",
    "SourceError",
    "SourceSettings",
    "StaticSettings",
    "TemporarySourceError",
]
