"""What mapping v1 is calibrated on, as checks anyone can re-run (`aggregator risk` prints them, a test pins them).

Each claim names its evidence (docs/risk.md, E1–E11 and B1–B6) and is computed from the priors the scorecard gives,
so a scorecard or mapping change that breaks a claim shows up at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aggregator.risk.scorecard import Prior

REALISED_DEFI_LOSS = 0.0003 * (1 - 0.20)
"""B3: realised loss of DeFi lending, ≈ 0.03 % of TVL a year, ≈ 20 % of it recovered."""
INSURANCE_CEILING = 0.03
"""B6: cover for major protocols priced at 1–3 % a year, an upper bound on p × lgd."""
POISSON_90_ONE_EVENT = (0.0513, 4.744)
"""The exact two-sided 90 % interval of a Poisson mean when one event was observed."""
RSETH_UNBACKED = 0.18
"""E9: 116,500 rsETH, ≈ 18 % of supply, released unbacked."""
LRT_NODES = ("etherfi", "renzo", "kelp")
"""The liquid restaking tokens whose record E9 (one loss of backing) is counted over."""


@dataclass(frozen=True)
class Claim:
    """One calibration claim: what it says, its evidence, the figure computed, and whether it holds."""

    name: str
    evidence: str
    figure: str
    holds: bool


def _scored(priors: dict[str, Prior], grade: str) -> list[Prior]:
    return [p for p in priors.values() if p.score is not None and p.score.grade == grade and not p.overridden]


def claims(priors: dict[str, Prior]) -> list[Claim]:
    """The claims of mapping v1 evaluated on these priors (nodes missing from the scorecard are skipped)."""
    out: list[Claim] = []
    grade_a = _scored(priors, "A")
    if grade_a:
        expected = sum(p.p * (p.age_years or 0.0) for p in grade_a)
        out.append(
            Claim(
                "grade A: no loss of backing in its node-years",
                "E1, E4, E11, B1 (A-grade protocols had no defaults)",
                f"{len(grade_a)} nodes, {sum(p.age_years or 0 for p in grade_a):.1f} node-years, expected events "
                f"{expected:.3f}, P(none) = {math.exp(-expected):.2f}",
                math.exp(-expected) >= 0.9,
            )
        )
        mean_p = sum(p.p for p in grade_a) / len(grade_a)
        out.append(
            Claim(
                "grade A: mean p within the size effect of the grade's 0.4 %/yr",
                "B4 (ten times the TVL, 10–13 % more hacks)",
                f"mean p {mean_p * 100:.3f} %/yr",
                abs(mean_p / 0.004 - 1.0) <= 0.2,
            )
        )
        contract = [p for p in grade_a if p.card.custody == "contract"]
        if contract:
            ratios = [p.p * p.lgd / REALISED_DEFI_LOSS for p in contract]
            out.append(
                Claim(
                    "grade A contracts: expected loss 1–3 × the realised DeFi loss rate",
                    "B3 (0.03 % of TVL a year, 20 % recovered: 0.024 %)",
                    "p × lgd / 0.024 % = " + ", ".join(f"{r:.2f}" for r in ratios),
                    all(1.0 <= r <= 3.0 for r in ratios),
                )
            )
    worst = max(priors.values(), key=lambda p: p.p * p.lgd)
    out.append(
        Claim(
            "every node: p × lgd below the insurance price ceiling",
            "B6 (cover at 1–3 %/yr bounds p × lgd)",
            f"largest {worst.node} {worst.p * worst.lgd * 100:.3f} %/yr",
            worst.p * worst.lgd <= INSURANCE_CEILING,
        )
    )
    lrts = [priors[n] for n in LRT_NODES if n in priors]
    if lrts:
        expected = sum(p.p * (p.age_years or 0.0) for p in lrts)
        low, high = POISSON_90_ONE_EVENT
        out.append(
            Claim(
                "LRTs: one loss of backing (rsETH 2026) in their node-years",
                "E9; exact Poisson 90 % interval for one event: 0.051–4.74",
                f"{sum(p.age_years or 0 for p in lrts):.1f} node-years, expected events {expected:.3f}",
                low <= expected <= high,
            )
        )
    bridged = [p for p in priors.values() if p.card.custody == "bridge" and "lgd" not in p.overridden]
    if bridged:
        out.append(
            Claim(
                "bridge custody: lgd is the rsETH loss",
                "E9 (≈ 18 % of supply unbacked)",
                ", ".join(f"{p.node} {p.lgd * 100:.0f} %" for p in bridged),
                all(abs(p.lgd - RSETH_UNBACKED) < 1e-9 for p in bridged),
            )
        )
    return out
