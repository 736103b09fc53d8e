"""CVaR by cutting planes: the LP without its scenario rows, kept in HiGHS between cycles, plus the cuts it needs.

The Rockafellar–Uryasev LP carries one row and one variable per scenario (≈20,000 for 200 risk nodes). By LP
duality the same CVaR is a maximum over tail weightings of the scenarios (Künzi-Bay & Mayer 2006):

    CVaR_β(x) = max { Σ_s q_s L_s x : Σ_s q_s = 1, 0 ≤ q_s ≤ π_s / (1 − β) }

The maximising q, for a given x, puts the whole allowed weight on the worst scenarios until the weights reach one.
Each such q gives a valid linear cut η ≥ g_qᵀx with g_q = Σ_s q_s L_s, whatever the yields. So the master problem is
the allocation LP with one variable η in place of CVaR, and a loop: solve, find the worst tail at the solution, and
stop when η already covers its CVaR (to `TOLERANCE`); otherwise add the cut and solve again. There are finitely many
tail weightings, so the loop ends, at the optimum of the full LP: the master is a relaxation of it whose solution is
feasible for it.

Why it is fast: the master has a few thousand rows instead of ~30,000, HiGHS keeps its basis and the cuts between
cycles (cuts do not depend on yields or holdings, so later cycles mostly need none or a few), and finding the worst
tail is a sparse product and a sort. The cvxpy problem stays the single description of the model: its compiled
data (parameters applied, `get_problem_data`) is what HiGHS gets, and the solution is unpacked back through cvxpy, so
variable values and constraint duals read as after any `problem.solve`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import cvxpy as cp
import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optimizer.cvxpy_private import Internals, internals
from optimizer.scenarios import ScenarioLosses, tail_weights
from optimizer.structure import FloatArray

TOLERANCE = 1e-8
"""Stop when the master's η is within this of the CVaR of its solution (fraction of the portfolio). Above HiGHS's
feasibility tolerance (1e-9), so a cut already in the model is never found violated again by rounding; below the
1e-7 to which every plan is re-checked."""

MAX_ROUNDS = 500
"""Give up (and let the caller fall back to the full LP) after this many cuts in one solve."""

MAX_IDLE = 3
"""A cut kept in HiGHS goes after this many solves in a row in which it was slack: dense cut rows slow every
simplex iteration, and a dropped cut that is needed again costs one round to find."""

_INF = highspy.kHighsInf


@dataclass
class TailOracle:
    """The worst-tail CVaR bound of a weight vector and the cut it gives, from the factored scenario losses.

    CVaR_β(x) ≤ (worst-tail mean over the enumerated and stress scenarios) + bᵀx/(1 − β), b the residual's exact
    expected loss per venue (`optimizer.scenarios`); the cut is that bound's gradient, so it is valid for every x.
    Scenario losses are H (D x): the single-node terms of H are gathered by initiator (`ScenarioLosses.split`),
    the joint terms are a sparse product.
    """

    singles: tuple[
        npt.NDArray[np.int32], ...
    ]  # per initiator position: the term of that single node, per scenario
    joint: sp.csr_matrix  # the rest of H[s, J] over the weighted scenarios
    incidence: sp.csr_matrix  # D[J, n]
    incidence_t: sp.csr_matrix
    tail_weights: FloatArray  # π_s / (1 − β)
    residual: FloatArray  # b / (1 − β)
    _hint: float | None = None

    @classmethod
    def of(cls, losses: ScenarioLosses, beta: float) -> TailOracle:
        weighted = np.asarray(losses.weighted, dtype=np.int64)
        singles, joint = losses.split
        if weighted.size != joint.shape[0]:
            joint = joint[weighted, :]
            singles = tuple(np.ascontiguousarray(c[weighted]) for c in singles)
        return cls(
            singles=singles,
            joint=sp.csr_matrix(joint),
            incidence=losses.term_incidence.tocsr(),
            incidence_t=losses.term_incidence.T.tocsr(),
            tail_weights=losses.probabilities[weighted] / (1.0 - beta),
            residual=losses.residual.expected_loss / (1.0 - beta),
        )

    def losses(self, x: FloatArray) -> FloatArray:
        """Loss of every weighted scenario at x."""
        m = np.asarray(self.incidence @ x).ravel()
        out: FloatArray = np.asarray(self.joint @ m).ravel()
        if self.singles:
            padded = np.append(m, 0.0)
            for col in self.singles:
                out += padded[col]
        return out

    def cut(self, x: FloatArray) -> tuple[FloatArray, float]:
        """(g, CVaR_β bound at x) with bound(y) ≥ gᵀy for every y and equality at x."""
        if self.tail_weights.size == 0:
            return self.residual.copy(), float(self.residual @ x)
        loss = self.losses(x)
        tail, q, var = tail_weights(loss, self.tail_weights, self._hint)
        self._hint = var
        if tail.size == 0:
            return self.residual.copy(), float(self.residual @ x)
        n_terms = self.joint.shape[1]
        if tail.size * 8 < self.joint.shape[0]:
            per_term = np.asarray(self.joint[tail].T @ q).ravel()
        else:
            full = np.zeros(self.joint.shape[0])
            full[tail] = q
            per_term = np.asarray(self.joint.T @ full).ravel()
        for col in self.singles:
            per_term += np.bincount(col[tail], weights=q, minlength=n_terms + 1)[:n_terms]
        g: FloatArray = np.asarray(self.incidence_t @ per_term).ravel() + self.residual
        return g, float(q @ loss[tail]) + float(self.residual @ x)


@dataclass
class CutStats:
    """What the last solve took."""

    rounds: int = 0
    cuts_added: int = 0
    cuts_kept: int = 0
    iterations: int = 0


@dataclass
class CutLoop:
    """A cvxpy master problem (CVaR replaced by `eta`) solved by HiGHS with cuts, warm between calls."""

    problem: cp.Problem
    x: cp.Variable
    eta: cp.Variable
    oracle: TailOracle
    options: dict[str, object]
    stats: CutStats = field(default_factory=CutStats)
    cuts_added_total: int = 0  # over every solve of this loop
    _highs: highspy.Highs | None = None
    _matrix: sp.csc_matrix | None = None
    _rows: int = 0
    _cuts: list[FloatArray] = field(default_factory=list)
    _idle: list[int] = field(default_factory=list)

    def solve(self) -> str:
        """Solve at the problem's current parameter values; returns a cvxpy status. On an optimal status the
        problem's variables and constraint duals are set, as after `problem.solve`."""
        start = time.perf_counter()
        cv = internals()
        data, chain, inverse = self.problem.get_problem_data(cp.HIGHS)
        first = self._load(cv, data)
        h = self._highs
        assert h is not None
        self.stats = CutStats()
        x_col = cv.column(data, self.x)
        eta_col = cv.column(data, self.eta)
        if first:
            for g in self._cuts:
                self._add_row(h, g, x_col, eta_col)
        for _ in range(MAX_ROUNDS):
            h.run()
            self.stats.rounds += 1
            self.stats.iterations += int(h.getInfo().simplex_iteration_count)
            status = cv.status(h.getModelStatus().name)
            if status not in cv.solution_present:
                return status
            col = np.asarray(h.getSolution().col_value)
            x = col[x_col : x_col + self.x.size]
            g, cvar = self.oracle.cut(x)
            if cvar <= col[eta_col] + TOLERANCE:
                break
            self._cuts.append(g)
            self._idle.append(0)
            self._add_row(h, g, x_col, eta_col)
            self.stats.cuts_added += 1
            self.cuts_added_total += 1
        else:
            return f"no convergence after {MAX_ROUNDS} cuts"
        solution = h.getSolution()
        results = {
            "solution": SimpleNamespace(
                col_value=solution.col_value, row_dual=np.asarray(solution.row_dual)[: self._rows]
            ),
            "info": h.getInfo(),
            "model_status": h.getModelStatus().name,
            "run_time": time.perf_counter() - start,
        }
        self.problem.unpack_results(results, chain, inverse)
        self._prune(h, np.asarray(solution.row_value)[self._rows :])
        self.stats.cuts_kept = len(self._cuts)
        return str(self.problem.status)

    def reset(self, oracle: TailOracle) -> None:
        """New scenario losses (the priors changed): the kept cuts bounded the old ones, so they go with the HiGHS
        model; the next solve loads the master afresh."""
        self.oracle = oracle
        self._highs, self._matrix, self._rows = None, None, 0
        self._cuts, self._idle = [], []

    @property
    def nonzeros(self) -> int:
        """Constraint non-zeros HiGHS holds now: the master's and the kept cuts'."""
        return 0 if self._highs is None else int(self._highs.getNumNz())

    def _load(self, cv: Internals, data: dict[str, object]) -> bool:
        """Give HiGHS this cycle's costs and bounds; a new model (and the kept cuts) only when the matrix changed.
        Returns whether the model is new."""
        a = data[cv.a]
        assert isinstance(a, sp.spmatrix | sp.sparray)
        matrix = sp.csc_matrix(a)
        c = np.asarray(data[cv.c], dtype=float)
        b = np.asarray(data[cv.b], dtype=float)
        eq = cv.eq_rows(data)
        lower = np.concatenate([b[:eq], np.full(b.size - eq, -_INF)])
        same = (
            self._highs is not None
            and self._matrix is not None
            and self._matrix.shape == matrix.shape
            and np.array_equal(self._matrix.indptr, matrix.indptr)
            and np.array_equal(self._matrix.indices, matrix.indices)
            and np.array_equal(self._matrix.data, matrix.data)
        )
        if same:
            assert self._highs is not None
            cols = np.arange(c.size, dtype=np.int32)
            rows = np.arange(b.size, dtype=np.int32)
            self._highs.changeColsCost(c.size, cols, c)
            self._highs.changeRowsBounds(b.size, rows, lower, b)
            self._set_col_bounds(cv, self._highs, data, c.size)
            return False
        h = highspy.Highs()
        for name, value in self.options.items():
            h.setOptionValue(name, value)
        model = highspy.HighsModel()
        lp = model.lp_
        lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
        lp.col_cost_ = c
        lp.row_lower_ = lower
        lp.row_upper_ = b
        lp.col_lower_ = np.full(c.size, -_INF)
        lp.col_upper_ = np.full(c.size, _INF)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        h.passModel(model)
        self._set_col_bounds(cv, h, data, c.size)
        self._highs, self._matrix, self._rows = h, matrix, b.size
        return True

    @staticmethod
    def _set_col_bounds(cv: Internals, h: highspy.Highs, data: dict[str, object], n: int) -> None:
        lb, ub = data[cv.lower_bounds], data[cv.upper_bounds]
        lower = np.full(n, -_INF) if lb is None else np.asarray(lb, dtype=float)
        upper = np.full(n, _INF) if ub is None else np.asarray(ub, dtype=float)
        h.changeColsBounds(n, np.arange(n, dtype=np.int32), lower, upper)

    @staticmethod
    def _add_row(h: highspy.Highs, g: FloatArray, x_col: int, eta_col: int) -> None:
        """η − gᵀx ≥ 0."""
        nz = np.flatnonzero(g)
        idx = np.concatenate([[eta_col], x_col + nz]).astype(np.int32)
        val = np.concatenate([[1.0], -g[nz]])
        h.addRow(0.0, _INF, idx.size, idx, val)

    def _prune(self, h: highspy.Highs, cut_values: FloatArray) -> None:
        """Drop the cuts slack for more than MAX_IDLE solves in a row. Their rows are basic, so the basis stays
        valid."""
        active = cut_values <= 1e-9
        self._idle = [0 if a else i + 1 for a, i in zip(active, self._idle, strict=True)]
        drop = np.flatnonzero(np.array(self._idle) > MAX_IDLE)
        if drop.size == 0:
            return
        h.deleteRows(drop.size, (self._rows + drop).astype(np.int32))
        gone = set(drop.tolist())
        self._cuts = [g for i, g in enumerate(self._cuts) if i not in gone]
        self._idle = [a for i, a in enumerate(self._idle) if i not in gone]
