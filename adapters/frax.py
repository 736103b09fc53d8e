"""Frax sfrxETH, `GET https://api.frax.finance/v2/frxeth/summary/latest` → `sfrxethApr` (percent) at
`intervalTimestamp` (ISO 8601) (docs/sources.md §2). The APR is in frxETH, which can trade off its ETH peg."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from adapters.base import SourceSettings
from adapters.endpoints import Endpoint, EndpointSettings, Path
from adapters.simple import PERCENT


class FraxSettings(EndpointSettings):
    adapter: Literal["frax"]


class FraxAdapter(Endpoint):
    settings_model: ClassVar[type[SourceSettings]] = FraxSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"sfrxeth"})
    urls: ClassVar[tuple[str, ...]] = ("https://api.frax.finance/v2/frxeth/summary/latest",)
    fields: ClassVar[dict[str, Path]] = {"sfrxeth": ("sfrxethApr",)}
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Frax sfrxETH sfrxethApr"
    origin: ClassVar[str] = "frax-api"

    @classmethod
    def observed(cls, doc: Any) -> datetime | str | None:
        """`intervalTimestamp` is required: a value without its time cannot be checked for staleness."""
        raw = doc.get("intervalTimestamp")
        if not isinstance(raw, str):
            return (
                f"field intervalTimestamp is {'missing' if raw is None else 'not a string'}: an ISO 8601 time"
            )
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            return f"field intervalTimestamp is not an ISO 8601 time: {raw[:60]!r}"
        if when.utcoffset() is None:
            return f"field intervalTimestamp has no time zone: {raw[:60]!r}"
        return when
