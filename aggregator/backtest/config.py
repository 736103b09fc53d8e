"""The `[backtest]` section of the operator's config: the period, the history series and the baselines.

Units as everywhere: yields are fractions per year once loaded (a series in percent says so with `unit`), amounts
in ETH, times in days. Paths are relative to the config file.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SeriesSettings(_Section):
    """One history series for one yield component (`venue.component`).

    - `format = "csv"`: a CSV file with a `date` column (YYYY-MM-DD) and a value `column`; `unit` says whether it
      is a yield in percent or a fraction, or an exchange `rate` (ETH per token), which becomes a yield the way
      the `onchain` adapter makes one: APR (or APY) of the rate's growth over `window_days`. `where` keeps only
      the rows whose columns equal the given values (e.g. `{ token = "weETH" }`).
    - `format = "defillama"`: DefiLlama `/chart/{pool}` for a pool configID, read from the cache folder;
      `aggregator backtest --download` fetches it there first. `field` is the percent field to read.
    Values outside [min_yield, max_yield] are rejected (counted and logged), as a live source's would be.
    """

    component: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*\.[A-Za-z0-9_-]+$")
    format: Literal["csv", "defillama"] = "csv"
    path: str | None = None
    column: str | None = None
    unit: Literal["percent", "fraction", "rate"] = "percent"
    where: dict[str, str] = Field(default_factory=dict)
    window_days: int = Field(default=7, ge=1, le=365)
    compounding: Literal["apr", "apy"] = "apr"
    pool: str | None = None
    field: Literal["apy", "apyBase"] = "apyBase"
    min_yield: float = Field(default=0.0, ge=-1.0, le=1.0)
    max_yield: float = Field(default=0.5, gt=0.0, le=10.0)
    note: str = ""

    @model_validator(mode="after")
    def _complete(self) -> SeriesSettings:
        if self.format == "csv" and (self.path is None or self.column is None):
            raise ValueError(f"series {self.component}: format 'csv' needs `path` and `column`")
        if self.format == "defillama" and self.pool is None:
            raise ValueError(f"series {self.component}: format 'defillama' needs `pool` (a configID UUID)")
        if self.min_yield >= self.max_yield:
            raise ValueError(f"series {self.component}: min_yield must be below max_yield")
        return self

    @property
    def venue(self) -> str:
        return self.component.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.component.split(".", 1)[1]


class StressEvent(_Section):
    """A risk node fails on a date: every position exposed to it (or to a node failing with it) loses `loss`
    (default: the node's lgd)."""

    node: str
    on: date
    loss: Fraction | None = None


class BacktestSettings(_Section):
    start: date
    end: date
    rebalance_every_days: int = Field(default=1, ge=1, le=365)
    max_gap_days: int = Field(
        default=7, ge=0, le=365, description="carry a value this long, then unavailable"
    )
    min_observations: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="days of observed values a venue needs before an entry; default: [rates] min_observations "
        "(which counts collections, every few minutes in the daemon, where history counts days)",
    )
    start_from: Literal["eth", "holdings"] = "eth"
    risk_aversions: tuple[float, ...] = Field(default=(), description="default: the config's λ and 4× it")
    fixed: dict[str, dict[str, Fraction]] = Field(default_factory=dict)
    series: tuple[SeriesSettings, ...] = ()
    stress: tuple[StressEvent, ...] = ()
    cache_dir: str = "../var/history"
    defillama_url: str = "https://yields.llama.fi"
    output_dir: str = "../var/backtest"

    @model_validator(mode="after")
    def _ordered(self) -> BacktestSettings:
        if self.end <= self.start:
            raise ValueError(f"backtest.end {self.end} must be after backtest.start {self.start}")
        for name, weights in self.fixed.items():
            total = sum(weights.values())
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"backtest.fixed[{name!r}]: weights sum to {total:g}, they must sum to 1")
        if any(lam < 0 for lam in self.risk_aversions):
            raise ValueError("backtest.risk_aversions must be ≥ 0")
        return self
