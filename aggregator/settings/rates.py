"""`[rates]` in the config: cross-check tolerances, plausible bounds, and how decisions read yields (the window,
the estimator, the entry minimum). The schema only; `aggregator.rates` applies it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

Estimator = Literal["median", "trimmed_mean"]
YieldBound = Annotated[float, Field(ge=-1.0, le=10.0, allow_inf_nan=False)]
Bounds = tuple[YieldBound, YieldBound]


@dataclass(frozen=True)
class InputRule:
    """How decisions read yields: the window, the estimator, and how many values an entry needs.

    `window_days` = 0 means no window: the estimate is the latest value, and with nothing to count the
    observation minimum does not apply (staleness still blocks entries)."""

    window_days: float = 0.0
    estimator: Estimator = "median"
    trim: float = 0.25
    min_observations: int = 1
    entry_quantile: float = (
        0.5  # an entry counts on this quantile of the window (0.5: the median, no discount)
    )
    shrink: float = (
        0.0  # each token's staking yield pulled this share of the way to the tokens' median (0: none)
    )


class CrossCheckSettings(BaseModel):
    """`[rates]` in the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    disagreement_tolerance: float = Field(
        default=0.005, gt=0, le=1, description="fraction per year (0.005 = 50 bp)"
    )
    jump_threshold: float = Field(default=0.01, gt=0, le=1, description="fraction per year (0.01 = 100 bp)")
    confirm_after_minutes: float = Field(
        default=30.0, ge=0, le=10_080, description="a repeat this much later confirms"
    )
    window_days: float = Field(
        default=14.0,
        ge=0,
        le=365,
        validation_alias=AliasChoices("window_days", "smoothing_days"),
        description="decisions see a robust estimate of each yield over this many days of stored values; 0: the "
        "latest value alone (`smoothing_days` is the old name)",
    )
    estimator: Literal["median", "trimmed_mean"] = Field(
        default="median",
        description="median (default: ignores anything under half the window) or trimmed_mean",
    )
    trim: float = Field(
        default=0.25, ge=0, lt=0.5, description="trimmed_mean: share of the window dropped at each end"
    )
    min_observations: int = Field(
        default=7,
        ge=1,
        le=100_000,
        description="a venue may be entered only when each yield along its path rests on at least this many "
        "values in the window (collections in the daemon, days in the backtest); exits are always allowed",
    )

    entry_quantile: float = Field(
        default=0.25,
        ge=0,
        le=0.5,
        description="an entry counts on the window's lower quantile of each yield, not its median: the spread "
        "between them is charged on capital entering a venue (noise cannot buy, and a held venue is valued at the "
        "median, so selling it needs the median to fall: hysteresis on the input); 0.5 charges nothing",
    )

    shrink: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="decisions see each liquid (re)staking token's yield components pulled this share of the way "
        "toward the median of the same component across the tokens that have one (0: each token's own estimate; "
        "1: all tokens alike): a shrinkage estimator of expected yields, since every token earns the network's "
        "staking yield less its fees and their estimated differences are mostly noise",
    )

    plausible_staking: Bounds = Field(
        default=(0.005, 0.15),
        description="the `base` component of a liquid_staking or liquid_restaking venue: its staking yield",
    )
    plausible_other: Bounds = Field(
        default=(0.0, 0.30), description="every other component (restaking rewards, incentives)"
    )

    @field_validator("plausible_staking", "plausible_other", mode="before")
    @classmethod
    def _bounds(cls, value: object) -> object:
        return check_bounds_early(value)

    def rule(self) -> InputRule:
        """The window, estimator and entry minimum, as the estimator module takes them."""
        return InputRule(
            self.window_days,
            self.estimator,
            self.trim,
            self.min_observations,
            self.entry_quantile,
            self.shrink,
        )


def check_bounds_early(value: object) -> object:
    """`check_bounds` on the raw pair, before each number's own range is checked, so the message says what a valid
    pair is; what is not a pair of numbers is left to the type check."""
    try:
        low, high = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return value
    check_bounds((low, high))
    return value


def check_bounds(value: Bounds) -> Bounds:
    """A (low, high) pair of finite fractions per year with low < high, or a ValueError saying what is valid."""
    low, high = value
    if not (math.isfinite(low) and math.isfinite(high) and -1.0 <= low < high <= 10.0):
        raise ValueError(
            f"plausible bounds must be [low, high] fractions per year with -1 <= low < high <= 10, "
            f"got [{low:g}, {high:g}] (0.05 = 5 %/yr)"
        )
    return value
