"""The allocation model: a pure function from typed inputs to an explained plan (no I/O, no clock, no logging).

plan = optimize(OptimizationInputs(universe=..., limits=..., portfolio_eth=..., holdings_eth=..., yields=...))

`optimize` is imported from `optimizer.optimize` (not from this package): the package loads the solver side
(cvxpy) only when one of its names is first used, and a lazy name cannot share its name with a submodule.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from optimizer.plan import BindingLimit, Diagnosis, Hold, Metrics, Move, Plan, RecordedProblem

if TYPE_CHECKING:
    from optimizer.optimize import ModelCache
    from optimizer.problem import DEFAULT_SOLVERS, AllocationModel, ModelShape
    from optimizer.scenarios import weighted_cvar

# The solver side (cvxpy, scipy) loads on first use: reading a config or a stored plan, or `aggregator health`,
# needs the typed inputs and plans above, not the model.
_LAZY = {
    "ModelCache": "optimizer.optimize",
    "DEFAULT_SOLVERS": "optimizer.problem",
    "AllocationModel": "optimizer.problem",
    "ModelShape": "optimizer.problem",
    "weighted_cvar": "optimizer.scenarios",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_SOLVERS",
    "AllocationModel",
    "BindingLimit",
    "Diagnosis",
    "ExitRoute",
    "ExitRouteKind",
    "Hold",
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
    "weighted_cvar",
]
