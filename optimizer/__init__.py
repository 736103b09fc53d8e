"""The allocation model: a pure function from typed inputs to an explained plan (no I/O, no clock, no logging).

plan = optimize(OptimizationInputs(universe=..., limits=..., portfolio_eth=..., holdings_eth=..., yields=...))
"""

from __future__ import annotations

from optimizer.inputs import (
    ExitRoute,
    ExitRouteKind,
    InFlight,
    LadderRung,
    Limits,
    OptimizationInputs,
    RiskNode,
    StressScenario,
    Universe,
    Venue,
    VenueKind,
    YieldComponent,
)
from optimizer.optimize import ModelCache, optimize
from optimizer.plan import BindingLimit, Diagnosis, Metrics, Move, Plan, RecordedProblem
from optimizer.problem import DEFAULT_SOLVERS, AllocationModel, ModelShape
from optimizer.scenarios import weighted_cvar

__all__ = [
    "DEFAULT_SOLVERS",
    "AllocationModel",
    "BindingLimit",
    "Diagnosis",
    "ExitRoute",
    "ExitRouteKind",
    "InFlight",
    "LadderRung",
    "Limits",
    "Metrics",
    "ModelCache",
    "ModelShape",
    "Move",
    "OptimizationInputs",
    "Plan",
    "RecordedProblem",
    "RiskNode",
    "StressScenario",
    "Universe",
    "Venue",
    "VenueKind",
    "YieldComponent",
    "optimize",
    "weighted_cvar",
]
