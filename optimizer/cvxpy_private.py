"""The private cvxpy API the cut loop (`optimizer.cuts`) stands on, in one place.

The cut loop hands cvxpy's compiled problem data to HiGHS itself and unpacks HiGHS's answer back through cvxpy, so
it reads names cvxpy does not promise to keep: the keys of `get_problem_data`'s dictionary (`cvxpy.settings`), the
parametrised problem's `var_id_to_col`, `dims_to_solver_dict`, and the HiGHS interface's `STATUS_MAP` and result
layout. An upgrade that moves any of them makes `internals()` (or the cut loop) raise; `AllocationModel.solve`
catches whatever the cut loop raises and solves the factored form instead, so a plan still comes out, and
`tests/optimizer/test_cvxpy_private.py` (the canary) fails and names what moved.

Everything is imported on first use, not at import time, so a moved module cannot stop `optimizer` from loading.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp


@dataclass(frozen=True)
class Internals:
    """cvxpy's private names the cut loop reads, resolved once."""

    param_prob: str
    a: str
    c: str
    b: str
    dims: str
    eq_dim: str
    lower_bounds: str
    upper_bounds: str
    unknown: str
    solution_present: frozenset[str]
    status_map: Mapping[str, str]
    dims_to_solver_dict: Callable[[Any], Mapping[str, Any]]

    def eq_rows(self, data: Mapping[str, Any]) -> int:
        """How many of the compiled rows are equalities (they come first)."""
        return int(self.dims_to_solver_dict(data[self.dims])[self.eq_dim])

    def column(self, data: Mapping[str, Any], variable: cp.Variable) -> int:
        """The first column of `variable` in the compiled problem."""
        return int(data[self.param_prob].var_id_to_col[variable.id])

    def status(self, highs_model_status: str) -> str:
        """cvxpy's status for a HiGHS model status name."""
        return str(self.status_map.get(highs_model_status, self.unknown))


@functools.cache
def internals() -> Internals:
    """Resolve the private names (ImportError or AttributeError when an upgrade moved one)."""
    import cvxpy.settings as s  # noqa: PLC0415 - on first use, see the module docstring
    from cvxpy.reductions.solvers.conic_solvers.conic_solver import (  # noqa: PLC0415
        dims_to_solver_dict,
    )
    from cvxpy.reductions.solvers.conic_solvers.highs_conif import HIGHS  # noqa: PLC0415

    return Internals(
        param_prob=s.PARAM_PROB,
        a=s.A,
        c=s.C,
        b=s.B,
        dims=s.DIMS,
        eq_dim=s.EQ_DIM,
        lower_bounds=s.LOWER_BOUNDS,
        upper_bounds=s.UPPER_BOUNDS,
        unknown=s.UNKNOWN,
        solution_present=frozenset(s.SOLUTION_PRESENT),
        status_map=dict(HIGHS.STATUS_MAP),
        dims_to_solver_dict=dims_to_solver_dict,
    )


__all__ = ["Internals", "internals"]
