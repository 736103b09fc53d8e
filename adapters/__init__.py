"""Data sources: one module per source, one async contract (`adapters.base.Adapter`), an explicit registry."""

from __future__ import annotations

from adapters.base import Adapter, Quote, SourceSettings
from adapters.binance import BinanceAdapter, BinanceSettings
from adapters.coinbase import CoinbaseAdapter, CoinbaseSettings
from adapters.defillama import DefiLlamaAdapter, DefiLlamaSettings
from adapters.errors import SourceDataError, SourceError, TemporarySourceError
from adapters.etherfi import EtherfiAdapter, EtherfiSettings
from adapters.frax import FraxAdapter, FraxSettings
from adapters.kelp import KelpAdapter, KelpSettings
from adapters.lido import LidoAdapter, LidoSettings
from adapters.onchain import OnchainAdapter, OnchainSettings
from adapters.renzo import RenzoAdapter, RenzoSettings
from adapters.rocketpool import RocketpoolAdapter, RocketpoolSettings
from adapters.snapshot import SnapshotAdapter, SnapshotSettings
from adapters.static import StaticAdapter, StaticSettings
from adapters.swell import SwellAdapter, SwellSettings

REGISTRY: dict[str, Adapter] = {
    "binance": BinanceAdapter(),
    "coinbase": CoinbaseAdapter(),
    "defillama": DefiLlamaAdapter(),
    "etherfi": EtherfiAdapter(),
    "frax": FraxAdapter(),
    "kelp": KelpAdapter(),
    "lido": LidoAdapter(),
    "onchain": OnchainAdapter(),
    "renzo": RenzoAdapter(),
    "rocketpool": RocketpoolAdapter(),
    "snapshot": SnapshotAdapter(),
    "static": StaticAdapter(),
    "swell": SwellAdapter(),
}
"""Adapter name (the `adapter` key of a `[sources.NAME]` table) → adapter."""

AnySourceSettings = (
    BinanceSettings
    | CoinbaseSettings
    | DefiLlamaSettings
    | EtherfiSettings
    | FraxSettings
    | KelpSettings
    | LidoSettings
    | OnchainSettings
    | RenzoSettings
    | RocketpoolSettings
    | SnapshotSettings
    | StaticSettings
    | SwellSettings
)

__all__ = [
    "REGISTRY",
    "Adapter",
    "AnySourceSettings",
    "Quote",
    "SourceDataError",
    "SourceError",
    "SourceSettings",
    "TemporarySourceError",
]
