"""The failure scenarios and each venue's loss in them.

Nodes fail independently with their annual probability `p`; a failure propagates to the nodes below (an LRT
fails with the layer it restakes into). The set is exact up to pairs: no failure, every single failure, every pair.
The mass of three or more failures is not dropped: it is one more scenario in which *every* node fails, an upper
bound on the loss of any such combination (loss only grows with the set of failed nodes), so expected loss and CVaR
are never understated. Named stress scenarios from the operator join with their own probability; the enumerated
scenarios share the remaining mass.

Venue n's loss in scenario s is `L[s, n] = 1 − Π_{j ∈ F_s ∩ S_n} (1 − lgd_j)` (F_s: failed nodes, S_n: nodes the
venue is exposed to). The factored form writes the same numbers exactly through joint node exposures: by
inclusion–exclusion `L[s, :] x = Σ_T c_s(T) m_T(x)` over node sets T ⊆ F_s, with
`c_s(T) = (−1)^{|T|+1} Π_{i∈T} lgd_i` and `m_T(x) = Σ_{n: T ⊆ S_n} x_n`, the share exposed to every node of T.
Only sets some venue is exposed to carry weight, and a single or pair failure touches at most a handful of them, so
the scenario rows are short whatever the number of venues.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from optimizer.inputs import StressScenario
from optimizer.structure import FloatArray, Structure

RESIDUAL_NAME = "3+ failures (bounded: all nodes fail)"


@dataclass(frozen=True)
class Scenario:
    """One failure scenario: the nodes that fail (after propagation) with their loss given event."""

    name: str
    probability: float
    failed: frozenset[int]
    lgd: tuple[tuple[int, float], ...]
    stress_max_loss: float | None = None

    @property
    def lgd_map(self) -> dict[int, float]:
        return dict(self.lgd)


def enumerate_scenarios(
    structure: Structure, stress: tuple[StressScenario, ...] = (), include_pairs: bool = True
) -> tuple[Scenario, ...]:
    """No failure, every single and (optionally) pair failure, the residual mass, then the stress scenarios."""
    p = structure.node_p
    lgd = structure.node_lgd
    names = structure.node_ids
    closure = structure.failure_closure
    stress_mass = sum(s.probability for s in stress)
    scale = 1.0 - stress_mass
    q = 1.0 - p
    with np.errstate(divide="ignore"):
        all_survive = float(np.prod(q))

    def failed_set(initiators: tuple[int, ...]) -> frozenset[int]:
        out: set[int] = set()
        for j in initiators:
            out |= closure[j]
        return frozenset(out)

    def lgd_of(
        failed: frozenset[int], overrides: dict[int, float] | None = None
    ) -> tuple[tuple[int, float], ...]:
        return tuple((j, (overrides or {}).get(j, float(lgd[j]))) for j in sorted(failed))

    def prob(initiators: tuple[int, ...]) -> float:
        # P(exactly these fail) = Π_{i in set} p_i Π_{others} (1 − p_i), computed without dividing by 1 − p.
        rest = np.delete(q, list(initiators))
        return float(np.prod(p[list(initiators)]) * np.prod(rest))

    out: list[Scenario] = [Scenario("no failure", all_survive * scale, frozenset(), ())]
    total = all_survive
    for j in range(structure.n_nodes):
        pr = prob((j,))
        if pr > 0.0:
            f = failed_set((j,))
            out.append(Scenario(f"{names[j]} fails", pr * scale, f, lgd_of(f)))
            total += pr
    if include_pairs:
        for j, k in itertools.combinations(range(structure.n_nodes), 2):
            pr = prob((j, k))
            if pr > 0.0:
                f = failed_set((j, k))
                out.append(Scenario(f"{names[j]} + {names[k]} fail", pr * scale, f, lgd_of(f)))
                total += pr
    residual = max(0.0, 1.0 - total)
    if residual > 0.0 and structure.n_nodes:
        f = frozenset(range(structure.n_nodes))
        out.append(Scenario(RESIDUAL_NAME, residual * scale, f, lgd_of(f)))
    elif residual > 0.0:
        out[0] = Scenario(out[0].name, out[0].probability + residual * scale, frozenset(), ())
    idx = structure.node_index
    for s in stress:
        overrides = {idx[k]: v for k, v in s.lgd.items()}
        f = failed_set(tuple(idx[n] for n in s.nodes))
        out.append(Scenario(f"stress: {s.name}", s.probability, f, lgd_of(f, overrides), s.max_loss))
    return tuple(out)


@dataclass(frozen=True)
class ScenarioLosses:
    """Loss matrices of a scenario set on a structure, dense and factored (equal numbers)."""

    structure: Structure
    scenarios: tuple[Scenario, ...]

    @cached_property
    def probabilities(self) -> FloatArray:
        return np.array([s.probability for s in self.scenarios])

    @cached_property
    def weighted(self) -> tuple[int, ...]:
        """Scenarios that enter expected loss and CVaR (probability > 0)."""
        return tuple(i for i, s in enumerate(self.scenarios) if s.probability > 0.0)

    @cached_property
    def stress_limited(self) -> tuple[int, ...]:
        """Scenarios whose loss is a hard limit."""
        return tuple(i for i, s in enumerate(self.scenarios) if s.stress_max_loss is not None)

    @cached_property
    def dense(self) -> FloatArray:
        """L[s, n]: the textbook scenario-by-venue loss matrix."""
        st = self.structure
        n_s, n_j = len(self.scenarios), st.n_nodes
        log_keep = np.zeros((n_s, n_j))
        wiped = np.zeros((n_s, n_j))
        for s, sc in enumerate(self.scenarios):
            for j, g in sc.lgd:
                if g >= 1.0:
                    wiped[s, j] = 1.0
                else:
                    log_keep[s, j] = np.log1p(-g)
        keep = np.exp(log_keep @ st.exposure) * ((wiped @ st.exposure) == 0)
        out: FloatArray = 1.0 - keep
        out[np.abs(out) < 1e-15] = 0.0
        return out

    @cached_property
    def _factored(self) -> tuple[tuple[frozenset[int], ...], sp.csr_matrix, sp.csr_matrix]:
        st = self.structure
        profiles: dict[frozenset[int], list[int]] = {}
        for n, nodes in enumerate(st.venue_exposure_sets):
            if nodes:
                profiles.setdefault(nodes, []).append(n)
        by_node: dict[int, list[frozenset[int]]] = {}
        for prof in profiles:
            for j in prof:
                by_node.setdefault(j, []).append(prof)
        term_index: dict[frozenset[int], int] = {}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for s, sc in enumerate(self.scenarios):
            lg = sc.lgd_map
            row_terms: set[frozenset[int]] = set()
            touched = {prof for j in sc.failed for prof in by_node.get(j, ())}
            for prof in touched:
                hit = sorted(sc.failed & prof)
                for r in range(1, len(hit) + 1):
                    row_terms.update(frozenset(c) for c in itertools.combinations(hit, r))
            for term in row_terms:
                col = term_index.setdefault(term, len(term_index))
                coef = float(np.prod([lg[i] for i in term])) * (1.0 if len(term) % 2 else -1.0)
                if coef != 0.0:
                    rows.append(s)
                    cols.append(col)
                    vals.append(coef)
        # Every single node is a term (first n_nodes columns, in node order) so node caps read off the same vector.
        ordered = [frozenset({j}) for j in range(st.n_nodes)]
        ordered += sorted((t for t in term_index if len(t) > 1), key=lambda t: (len(t), sorted(t)))
        remap = np.array([0] * len(term_index), dtype=int)
        position = {t: i for i, t in enumerate(ordered)}
        for t, old in term_index.items():
            remap[old] = position[t]
        coef = sp.csr_matrix(
            (vals, (rows, remap[cols] if cols else cols)), shape=(len(self.scenarios), len(ordered))
        )
        t_rows: list[int] = []
        t_cols: list[int] = []
        for i, term in enumerate(ordered):
            for n, nodes in enumerate(st.venue_exposure_sets):
                if term <= nodes:
                    t_rows.append(i)
                    t_cols.append(n)
        incidence = sp.csr_matrix((np.ones(len(t_rows)), (t_rows, t_cols)), shape=(len(ordered), st.n_venues))
        return tuple(ordered), coef, incidence

    @property
    def terms(self) -> tuple[frozenset[int], ...]:
        """The node sets T of the joint exposures m_T; the first n_nodes are the single nodes in order."""
        return self._factored[0]

    @property
    def term_coefficients(self) -> sp.csr_matrix:
        """H[s, T] = c_s(T): scenario losses are `H @ m` with m the joint exposures."""
        return self._factored[1]

    @property
    def term_incidence(self) -> sp.csr_matrix:
        """A[T, n] = 1 when venue n is exposed to every node of T: `m = A @ x`."""
        return self._factored[2]

    @cached_property
    def expected_loss(self) -> FloatArray:
        """Expected annual loss per venue, Σ_s π_s L[s, n]."""
        pi = self.probabilities
        out: FloatArray = np.asarray(self.term_incidence.T @ (self.term_coefficients.T @ pi)).ravel()
        return out

    def losses(self, x: FloatArray) -> FloatArray:
        """Portfolio loss in every scenario for weights x."""
        out: FloatArray = np.asarray(self.term_coefficients @ (self.term_incidence @ x)).ravel()
        return out


def weighted_cvar(losses: FloatArray, probabilities: FloatArray, beta: float) -> float:
    """CVaR_β of a discrete loss distribution: the mean loss in the worst (1 − β) of probability mass.

    Evaluates Rockafellar–Uryasev's ζ + E[(L − ζ)+]/(1 − β) at ζ = VaR_β, where it is minimal.
    """
    mask = probabilities > 0
    loss, prob = losses[mask], probabilities[mask]
    if loss.size == 0:
        return 0.0
    order = np.argsort(loss)
    loss, prob = loss[order], prob[order]
    cum = np.cumsum(prob)
    var_idx = int(np.searchsorted(cum, beta * cum[-1] - 1e-15))
    zeta = float(loss[min(var_idx, loss.size - 1)])
    tail = np.maximum(loss - zeta, 0.0)
    return zeta + float(prob @ tail) / (1.0 - beta)
