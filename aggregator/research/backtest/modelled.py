"""Modelled LST yields from ETH.STORE, the network's daily staking APR: named *modelled*, never mixed up with an
observation.

An LST earns the network's staking yield minus its fee and its idle-buffer drag, so its yield is about a constant
share of ETH.STORE. `fit_*` measures that share on the days where the LST's own series and ETH.STORE overlap;
`modelled` multiplies ETH.STORE by it, so a history can reach back to 2020-12 where no LST series is bundled.
`check_points` compares the modelled growth with independently read exchange-rate points (wstETH `stEthPerToken`)
and gives the error, so the model's quality is a printed number, not a claim.

Growth conventions: an APR accrues `apr / 365` a day, an APY `(1 + apy) ** (1 / 365) − 1` a day.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from aggregator.core.errors import ConfigError

Series = dict[date, float]


@dataclass(frozen=True)
class Fit:
    """The share of ETH.STORE an LST earned on the overlap of the two series."""

    ratio: float
    first: date
    last: date
    days: int  # days of ETH.STORE the ratio was measured over


@dataclass(frozen=True)
class PointCheck:
    """Modelled against observed growth between two exchange-rate points; errors in percentage points a year."""

    start: date
    end: date
    observed_apr: float
    modelled_apr: float

    @property
    def error(self) -> float:
        return self.modelled_apr - self.observed_apr


def read_dated(path: Path, column: str, *, scale: float = 1.0) -> Series:
    """A CSV's `column` by date (`date` column, ISO day or timestamp); ConfigError naming the file otherwise."""
    out: Series = {}
    try:
        with path.open(newline="") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                try:
                    out[date.fromisoformat(row["date"][:10])] = float(row[column]) * scale
                except (KeyError, ValueError, TypeError) as exc:
                    raise ConfigError(f"{path}:{n}: needs a date and a number in {column!r} ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    return out


def log_growth(apr: Mapping[date, float], start: date, end: date) -> float | None:
    """Σ log(1 + apr/365) over the days [start, end), or None when a day is missing."""
    total = 0.0
    day = start
    while day < end:
        if day not in apr:
            return None
        total += math.log1p(apr[day] / 365.0)
        day += timedelta(days=1)
    return total


def fit_rate(rates: Mapping[date, float], eth_store: Mapping[date, float]) -> Fit:
    """The ratio from an exchange-rate series (ETH per token): its log growth over the overlap divided by
    ETH.STORE's over the same days."""
    days = sorted(d for d in rates if d in eth_store)
    if len(days) < 2:
        raise ValueError("no overlap between the rate series and ETH.STORE")
    first, last = days[0], days[-1]
    network = log_growth(eth_store, first, last)
    if not network:
        raise ValueError(f"ETH.STORE has gaps between {first} and {last}")
    return Fit(math.log(rates[last] / rates[first]) / network, first, last, (last - first).days)


def fit_apy(apy: Mapping[date, float], eth_store: Mapping[date, float]) -> Fit:
    """The ratio from a daily APY series (fractions): the days' summed log growth over ETH.STORE's on the same days."""
    days = sorted(d for d in apy if d in eth_store)
    if not days:
        raise ValueError("no overlap between the APY series and ETH.STORE")
    own = sum(math.log1p(apy[d]) / 365.0 for d in days)
    network = sum(math.log1p(eth_store[d] / 365.0) for d in days)
    return Fit(own / network, days[0], days[-1], len(days))


def modelled(eth_store: Mapping[date, float], ratio: float) -> Series:
    """The modelled APR: ETH.STORE × the ratio, day by day (a model: name it so wherever it is shown)."""
    return {d: v * ratio for d, v in eth_store.items()}


def check_points(
    points: Iterable[tuple[date, float]], eth_store: Mapping[date, float], ratio: float
) -> tuple[list[PointCheck], list[tuple[date, date]]]:
    """Each pair of consecutive rate points ETH.STORE covers: observed and modelled APR between them; and the
    pairs it does not cover."""
    ordered = sorted(points)
    checks: list[PointCheck] = []
    uncovered: list[tuple[date, date]] = []
    for (d0, r0), (d1, r1) in itertools.pairwise(ordered):
        network = log_growth(eth_store, d0, d1)
        if network is None or d1 <= d0:
            uncovered.append((d0, d1))
            continue
        years = (d1 - d0).days / 365.0
        observed = math.log(r1 / r0) / years
        checks.append(PointCheck(d0, d1, observed, ratio * network / years))
    return checks, uncovered


def steth_points(path: Path) -> list[tuple[date, float]]:
    """The wstETH `stEthPerToken` readings of the bundled events file."""
    out: list[tuple[date, float]] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["what"].startswith("wstETH.stEthPerToken"):
                out.append((date.fromisoformat(row["when_utc"][:10]), float(row["value"])))
    return out
