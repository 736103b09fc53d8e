"""The `[backtest]` section of the operator's config: the period, the history series and the baselines.

Units as everywhere: yields are fractions per year once loaded (a series in percent says so with `unit`), amounts
in ETH, times in days. Paths are relative to the config file.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SeriesSettings(_Section):
    """One history series for one yield component (`venue.component`).

    - `format = "csv"`: a CSV file with a `date` column (YYYY-MM-DD) and a value `column`; `unit` says whether it
      is a yield in percent or a fraction, or an exchange `rate` (ETH per token), which becomes a yield the way
      the `onchain` adapter makes one: APR (or APY) of the rate's growth over `window_days`. `where` keeps only
      the rows whose columns equal the given values (e.g. `{ token = "weETH" }`).
    - `format = "defillama"`: DefiLlama `/chart/{pool}` for a pool configID, read from the cache folder;
      `aggregator backtest --download` fetches it there first. `field` is the percent field to read.
    - `format = "static"`: an assumption, not data: `value` (a fraction per year; default the config's `static`
      quote for the component) between `from` and `until` (inclusive, either open), and 0 outside them: e.g.
      EigenLayer rewards, which began with EIGEN incentives on 2024-08-15.
    - `format = "modelled"`: a model, not data: ETH.STORE's APR (`path`, `column`) × `ratio`, the LST's share of it
      fitted on the overlap (`aggregator.research.backtest.modelled`), on the days inside `from`/`until` where no
      observed series of the component has a value (observed always wins); every such value is marked modelled.
    Values outside [min_yield, max_yield] are rejected (counted and logged), as a live source's would be: that
    filter applies to what DECISIONS see. What a strategy EARNS is what happened (`aggregator.research.backtest.earned`):
    a rate series earns its realised growth, a series of trailing-window APRs (`window_column` names each row's
    window in days) earns each value over the days it measured, a daily value earns that day as APR or APY
    (`compounding`), negative values included. `from`/`until` bound any series in time.
    """

    component: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*\.[A-Za-z0-9_-]+$")
    format: Literal["csv", "defillama", "static", "modelled"] = "csv"
    path: str | None = None
    column: str | None = None
    unit: Literal["percent", "fraction", "rate"] = "percent"
    where: dict[str, str] = Field(default_factory=dict)
    window_days: int = Field(default=7, ge=1, le=365)
    compounding: Literal["apr", "apy"] | None = Field(
        default=None,
        description="rate series: the yield decisions see is this rate's APR or APY; percent/fraction series: "
        "what the values are (they accrue as such); default apr, apy for DefiLlama",
    )
    window_column: str | None = Field(
        default=None, description="trailing-window series: the column with each row's window in days"
    )
    mean_days: int | None = Field(
        default=None,
        ge=2,
        le=365,
        description="percent/fraction series of ONE-DAY realised returns paid in lumps (a weekly reward day among "
        "days near 0): decisions see each day's trailing mean over the last `mean_days` calendar days (at least "
        "half of them with a value), the realised APR of those days, as an exchange rate's growth over that window "
        "gives it (the `onchain` adapter); a median of the daily values would see the days between rewards. What "
        "is earned is unchanged: each daily value",
    )
    value: float | None = Field(default=None, ge=-1.0, le=10.0, allow_inf_nan=False)
    from_: date | None = Field(default=None, alias="from")
    until: date | None = None
    pool: str | None = None
    ratio: float | None = Field(
        default=None,
        gt=0.0,
        le=2.0,
        allow_inf_nan=False,
        description="format 'modelled': the share of ETH.STORE the LST earned where both series overlap "
        "(scripts/modelled_history.py prints it)",
    )
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
        if self.format == "modelled" and (self.path is None or self.column is None or self.ratio is None):
            raise ValueError(
                f"series {self.component}: format 'modelled' needs `path` and `column` (the ETH.STORE CSV and its "
                "APR column) and `ratio` (the LST's fitted share of it, scripts/modelled_history.py)"
            )
        if self.format != "modelled" and self.ratio is not None:
            raise ValueError(f"series {self.component}: `ratio` is only for format 'modelled'")
        if self.format != "static" and self.value is not None:
            raise ValueError(f"series {self.component}: `value` is only for format 'static'")
        if self.window_column is not None and self.unit == "rate":
            raise ValueError(
                f"series {self.component}: `window_column` is for APR series, not exchange rates"
            )
        if self.mean_days is not None and (self.unit == "rate" or self.window_column is not None):
            raise ValueError(
                f"series {self.component}: `mean_days` is for series of daily returns in percent or fraction, not "
                "exchange rates or trailing-window APRs (they already measure a window)"
            )
        if self.from_ is not None and self.until is not None and self.until < self.from_:
            raise ValueError(f"series {self.component}: until {self.until} is before from {self.from_}")
        if self.min_yield >= self.max_yield:
            raise ValueError(f"series {self.component}: min_yield must be below max_yield")
        return self

    @property
    def compounds(self) -> Literal["apr", "apy"]:
        if self.compounding is not None:
            return self.compounding
        return "apy" if self.format == "defillama" else "apr"

    def in_time(self, day: date) -> bool:
        return (self.from_ is None or day >= self.from_) and (self.until is None or day <= self.until)

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


class OptimizerVariant(_Section):
    """One more optimizer to compare: the config's `[limits]` with these fields replaced (e.g.
    `{ risk_aversion = 0.05 }`, or any other `[limits]` field such as a no-trade band). Limits are still CHECKED
    against the config's own `[limits]`: a variant changes how the optimizer decides, not what counts as a breach."""

    name: str = Field(min_length=1, max_length=60)
    limits: dict[str, Any] = Field(default_factory=dict)


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
    risk_aversions: tuple[Annotated[float, Field(ge=0.0, le=1000.0)], ...] = Field(
        default=(),
        max_length=16,
        description="the optimizers compared, one per λ; default: the config's λ alone (none if `optimizers`)",
    )
    optimizers: tuple[OptimizerVariant, ...] = ()
    fixed: dict[str, dict[str, Fraction]] = Field(default_factory=dict)
    series: tuple[SeriesSettings, ...] = ()
    stress: tuple[StressEvent, ...] = ()
    eth_store: str | None = Field(
        default=None,
        description="ETH.STORE's daily APR CSV (`date`, `apr` as a fraction): drawn as the benchmark line",
    )
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
        names = [o.name for o in self.optimizers]
        if len(set(names)) != len(names):
            raise ValueError(f"backtest.optimizers: names must differ, got {names}")
        return self
