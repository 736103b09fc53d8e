"""Coinbase cbETH, `GET https://api.exchange.coinbase.com/wrapped-assets/CBETH/` → `apy`, a **fraction** as a string.

Coinbase's documentation shows `apy` in the wrapped-assets OpenAPI example (`"apy": "0.0384"`) but not in the
single-asset body of its prose ("circulating_supply", "total_supply", "conversion_rate" only), so `apy` may be
absent. No other field of that body is a yield (`conversion_rate` is a level, not a rate of change), so a body
without `apy` rejects the quote, saying so; the other sources of cbETH still count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from adapters.base import SourceSettings
from adapters.endpoints import Endpoint, EndpointSettings, Path, Reading
from adapters.simple import FRACTION


class CoinbaseSettings(EndpointSettings):
    adapter: Literal["coinbase"]


ABSENT = (
    "field apy is missing from the answer (Coinbase documents it as optional for /wrapped-assets/CBETH/; the "
    "body's conversion_rate is not a yield)"
)


class CoinbaseAdapter(Endpoint):
    settings_model: ClassVar[type[SourceSettings]] = CoinbaseSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apy"})
    urls: ClassVar[tuple[str, ...]] = ("https://api.exchange.coinbase.com/wrapped-assets/CBETH/",)
    fields: ClassVar[dict[str, Path]] = {"apy": ("apy",)}
    unit: ClassVar[float] = FRACTION
    label: ClassVar[str] = "Coinbase cbETH"
    origin: ClassVar[str] = "coinbase-api"

    @classmethod
    def extract(cls, doc: Any, keys: Sequence[str]) -> dict[str, Reading | str]:
        out = super().extract(doc, keys)
        if "apy" in out and isinstance(doc, dict) and "apy" not in doc:
            out["apy"] = ABSENT
        return out
