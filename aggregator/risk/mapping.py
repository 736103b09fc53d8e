"""The versioned mapping from a node's scorecard to its prior: annual event probability `p` and loss given event `lgd`.

Version v1 (docs/risk.md explains every number and what it rests on):

    points  = age + audits + incidents + admin + oracle + withdrawal + custody + slashing      (0 best, 18 worst)
    grade   = A 0–3 · B 4–6 · C 7–9 · D 10–12 · E 13–18
    p       = GRADE_P[grade] × 1.115 ** log10(TVL / $1 bn)    (TVL factor 1 when TVL is not recorded; clamped)
    lgd     = max(CUSTODY_LGD[custody], max_slashable if slashing is live)

The grade odds double from one grade to the next, anchored at A = 0.4 %/yr; the TVL factor is the one measured
effect of size on hack frequency (ten times the TVL, 10–13 % more hacks: 11.5 %). A new mapping is a new entry in
`MAPPINGS`; a scorecard names the version it was scored for, so a plan's priors never change silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Literal

Custody = Literal["contract", "exchange", "bridge", "none"]
Grade = Literal["A", "B", "C", "D", "E"]

SCORED = ("since", "audits", "incidents", "admin", "oracle", "withdrawal", "custody", "slashing_live")
"""The attributes a scored node must give (with a source each); `tvl_usd`, `max_slashable`, `worst_depeg` are
optional facts."""


@dataclass(frozen=True)
class Scale:
    """An operator-scored attribute: integer points from 0 (best) to `high`, each level described."""

    high: int
    levels: tuple[str, ...]

    def describe(self) -> str:
        return "; ".join(f"{i} = {text}" for i, text in enumerate(self.levels))


SCALES: MappingProxyType[str, Scale] = MappingProxyType(
    {
        "audits": Scale(
            2,
            (
                "several independent audits and a live bug bounty",
                "audited, with a small or no bug bounty",
                "unaudited, or not known",
            ),
        ),
        "incidents": Scale(
            3,
            (
                "none recorded",
                "a depeg of 5–10 %, or an operational loss the protocol compensated",
                "a depeg of 10 % or more, or a loss of backing made good by a third party",
                "a loss of backing borne by holders",
            ),
        ),
        "admin": Scale(
            2,
            (
                "immutable, or upgrades behind a timelock of 7 days or more",
                "upgradeable by a DAO or multisig behind a shorter timelock, or a pause key",
                "upgradeable at once by a multisig or a company",
            ),
        ),
        "oracle": Scale(
            2,
            (
                "no oracle: the rate follows from on-chain accounting",
                "a committee or DAO oracle reports balances",
                "one operator reports the rate",
            ),
        ),
        "withdrawal": Scale(
            2,
            (
                "a permissionless queue of 7 days or less",
                "permissionless but longer (the 14-day EigenLayer delay) or per-vault epochs",
                "redemption at an operator's discretion, or none",
            ),
        ),
    }
)


@dataclass(frozen=True)
class Mapping:
    """One version of the score → (p, lgd) mapping."""

    version: str
    age_points: tuple[
        tuple[float, int], ...
    ]  # (at least this many years, points), best first; else the last + 1
    custody_points: MappingProxyType[str, int]
    custody_lgd: MappingProxyType[str, float]
    slashing_points: int
    grade_bounds: tuple[tuple[int, Grade], ...]  # (at most this many points, grade)
    grade_p: MappingProxyType[str, float]
    tvl_step: float  # p multiplier per ten times the TVL
    tvl_factor_bounds: tuple[float, float]

    def age_score(self, years: float) -> int:
        for at_least, points in self.age_points:
            if years >= at_least:
                return points
        return self.age_points[-1][1] + 1

    def grade(self, points: int) -> Grade:
        return next(g for bound, g in self.grade_bounds if points <= bound)

    def tvl_factor(self, tvl_usd: float | None) -> float:
        if tvl_usd is None:
            return 1.0
        low, high = self.tvl_factor_bounds
        factor = float(self.tvl_step ** math.log10(max(tvl_usd, 1.0) / 1e9))
        return min(high, max(low, factor))


V1 = Mapping(
    version="v1",
    age_points=((5.0, 0), (3.0, 1), (1.5, 2)),
    custody_points=MappingProxyType({"contract": 0, "none": 0, "exchange": 1, "bridge": 3}),
    custody_lgd=MappingProxyType({"contract": 0.10, "none": 0.0, "exchange": 0.25, "bridge": 0.18}),
    slashing_points=1,
    grade_bounds=((3, "A"), (6, "B"), (9, "C"), (12, "D"), (18, "E")),
    grade_p=MappingProxyType({"A": 0.004, "B": 0.008, "C": 0.016, "D": 0.032, "E": 0.064}),
    tvl_step=1.115,
    tvl_factor_bounds=(0.75, 1.35),
)

MAPPINGS: MappingProxyType[str, Mapping] = MappingProxyType({V1.version: V1})


@dataclass(frozen=True)
class Score:
    """A node's points per attribute, grade and the (p, lgd) the mapping gives them (before any override)."""

    points: MappingProxyType[str, int]
    total: int
    grade: Grade
    tvl_factor: float
    p: float
    lgd: float


def years_between(since: date, as_of: date) -> float:
    return (as_of - since).days / 365.25


def score(
    mapping: Mapping,
    *,
    age_years: float,
    audits: int,
    incidents: int,
    admin: int,
    oracle: int,
    withdrawal: int,
    custody: Custody,
    slashing_live: bool,
    max_slashable: float,
    tvl_usd: float | None,
) -> Score:
    """The mapping applied to one node's attributes (already checked against their scales)."""
    points = {
        "age": mapping.age_score(age_years),
        "audits": audits,
        "incidents": incidents,
        "admin": admin,
        "oracle": oracle,
        "withdrawal": withdrawal,
        "custody": mapping.custody_points[custody],
        "slashing": mapping.slashing_points if slashing_live else 0,
    }
    total = sum(points.values())
    grade = mapping.grade(total)
    factor = mapping.tvl_factor(tvl_usd)
    lgd = max(mapping.custody_lgd[custody], max_slashable if slashing_live else 0.0)
    return Score(
        points=MappingProxyType(points),
        total=total,
        grade=grade,
        tvl_factor=factor,
        p=round(mapping.grade_p[grade] * factor, 5),
        lgd=round(lgd, 4),
    )
