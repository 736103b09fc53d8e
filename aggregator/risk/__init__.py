"""Risk priors an operator can defend: the scorecard (`scorecard`), the versioned mapping from a score to `p` and
`lgd` (`mapping`), its calibration on the evidence (`calibration`), how the priors reach the config (`apply`), and
how much a plan depends on them (`sensitivity`)."""

from __future__ import annotations

from aggregator.risk.apply import RiskSettings, apply_scorecard
from aggregator.risk.mapping import MAPPINGS, SCALES, SCORED, Mapping, Score
from aggregator.risk.scorecard import NodeCard, Override, Prior, Scorecard, derive, load_scorecard

__all__ = [
    "MAPPINGS",
    "SCALES",
    "SCORED",
    "Mapping",
    "NodeCard",
    "Override",
    "Prior",
    "RiskSettings",
    "Score",
    "Scorecard",
    "apply_scorecard",
    "derive",
    "load_scorecard",
]
