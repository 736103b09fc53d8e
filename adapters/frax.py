"""Frax sfrxETH, `GET {base_url}/v2/frxeth/summary/latest` → `sfrxethApr` (percent) at `intervalTimestamp`
(docs/sources.md §2). The APR is in frxETH, which can trade off its ETH peg."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, StrictFloat, StrictInt

from adapters.base import SourceSettings
from adapters.simple import PERCENT, HttpSourceSettings, SingleEndpoint


class FraxSettings(HttpSourceSettings):
    adapter: Literal["frax"]
    base_url: str = "https://api.frax.finance"


class _Doc(BaseModel):
    intervalTimestamp: AwareDatetime  # noqa: N815
    sfrxethApr: StrictFloat | StrictInt  # noqa: N815


class FraxAdapter(SingleEndpoint):
    settings_model: ClassVar[type[SourceSettings]] = FraxSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"sfrxeth"})
    path: ClassVar[str] = "/v2/frxeth/summary/latest"
    model: ClassVar[type[BaseModel]] = _Doc
    unit: ClassVar[float] = PERCENT
    label: ClassVar[str] = "Frax sfrxETH sfrxethApr"

    @staticmethod
    def read(doc: _Doc) -> tuple[float, datetime | None]:
        return float(doc.sfrxethApr), doc.intervalTimestamp
