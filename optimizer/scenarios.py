"""The failure scenarios, each venue's loss in them, and an exact account of the combinations left out.

Nodes *initiate* failures independently with their annual probability `p`; a failure propagates to the nodes below
(an LRT fails with the layer it restakes into). Venue n's loss when the initiators are I is
`L_n(I) = 1 − Π_{j ∈ F(I) ∩ S_n} (1 − lgd_j)`, with F(I) the failed nodes and S_n the nodes the venue is exposed to.

**Enumeration.** Every combination of up to `depth` initiators is a scenario with its exact probability: no failure,
every single, pair and triple at least, deeper while the mass of the combinations left out is above
`tolerance × (1 − β)` (a millionth of the CVaR tail by default) and the count stays within `max_scenarios`. Only
nodes that can initiate (p > 0) are combined; a node with p = 1 initiates in every scenario.

**The residual.** The combinations of more than `depth` initiators have mass `r = P(|I| > depth)` (a
Poisson-binomial tail, computed exactly) and are not scenarios. No single loss vector can stand for them tightly: the
set of *all* nodes is one of them, and loss only grows with the failed set, so the worst loss among them is, venue by
venue, "every node fails". Instead the model uses their exact expected loss per venue,
`b_n = E[L_n(I); |I| > depth]` (a sum over the subsets of S_n, a handful of nodes, times the tail of the other
nodes), in two places:

- expected loss is exact: `ℓ_n = E[L_n(I)]`, enumerated and residual together, never approximated;
- CVaR_β(x) ≤ CVaR_β^E(x) + bᵀx / (1 − β), where CVaR^E is the tail mean over the enumerated scenarios (tail weights
  `q_s ≤ π_s/(1−β)`, `Σ q ≤ 1`). Proof: in the dual form CVaR = max{Σ q_s L_s x : Σ q = 1, 0 ≤ q ≤ π/(1−β)} the
  enumerated part of any feasible q is feasible for CVaR^E, and the residual part is at most Σ_{I ∈ R} π_I L_I x /
  (1 − β) = bᵀx/(1 − β) because losses are non-negative. The bound counts the residual as entirely in the tail, with
  its whole expected loss, so it overstates CVaR by at most `bᵀx/(1−β) ≤ r/(1−β) · max loss`, which the plan states.

Named stress scenarios from the operator join with their own probability; the independent model keeps the rest.

**Factored losses.** A venue's loss depends only on the initiators inside S_n (S_n holds every ancestor of its
nodes), so by Möbius inversion over those subsets `L_n(I) = Σ_{J ⊆ I ∩ S_n} Δ_n(J)`. Writing D[J, n] = Δ_n(J) and
H[s, J] = 1 when J ⊆ I_s, every scenario's portfolio loss is `H (D x)`: H has at most 2^|I| − 1 ones a row (7 for a
triple) whatever the number of venues, and D has a row per set of nodes some venue is exposed to together. Stress
scenarios, which may override loss given event, are one D row each.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optimizer.inputs import TAIL_TOLERANCE, StressScenario
from optimizer.structure import FloatArray, Structure

IntArray = npt.NDArray[np.int64]

MIN_DEPTH = 3
"""Combinations of up to this many initiating failures are always enumerated (fewer only when there are fewer
nodes, or when `max_scenarios` cannot hold them)."""

DEFAULT_TAIL_TOLERANCE = TAIL_TOLERANCE
"""Enumerate deeper while the mass left out exceeds this share of the CVaR tail mass 1 − β."""

DEFAULT_MAX_SCENARIOS = 2_000_000
"""Never enumerate more scenarios than this (≈ 200 nodes with every triple: 1.33 M); the residual then stays above
the tolerance, is bounded as above, and the plan says so."""

RESIDUAL_NAME = "residual: more simultaneous failures than enumerated"


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


@dataclass(frozen=True)
class Residual:
    """What the enumeration leaves out: combinations of more than `depth` initiating failures."""

    depth: int
    mass: float
    expected_loss: FloatArray  # b_n = E[L_n; more than depth initiators] per venue (stress scaling applied)
    tolerance: float  # the mass the enumeration aimed to get below (tolerance share × (1 − β))
    capped: bool  # stopped by max_scenarios with the mass still above the tolerance


@dataclass(frozen=True)
class _Profiles:
    """The distinct exposure sets of the venues, with their Möbius coefficients and exact expected losses."""

    sets: tuple[tuple[int, ...], ...]
    venue_profile: IntArray  # profile index per venue, −1 for a venue exposed to nothing
    loss: tuple[FloatArray, ...]  # L_P(J) for every subset J of P (bit i: P[i] initiates)
    moebius: tuple[dict[tuple[int, ...], float], ...]  # Δ_P(J) for J ⊆ P (sorted node tuples), nonzero ones


class ScenarioSet(Sequence[Scenario]):
    """Enumerated scenarios (as arrays, built into `Scenario` objects only when looked at), then stress scenarios.

    Row i < `enumerated` has initiators `initiators[i]` (−1 padded, certain nodes first); rows after it are
    `stress[i − enumerated]`.
    """

    def __init__(
        self,
        structure: Structure,
        *,
        initiators: IntArray,
        probabilities: FloatArray,
        stress: tuple[Scenario, ...],
        residual: Residual,
        scale: float,
        profiles: _Profiles,
        profile_expected_loss: FloatArray,
    ) -> None:
        self.structure = structure
        self.profiles = profiles
        self.profile_expected_loss = profile_expected_loss  # exact E[L] per profile, stress scaling applied
        self.initiators = initiators
        self.enumerated_probabilities = probabilities
        self.stress = stress
        self.residual = residual
        self.scale = scale  # mass of the independent model: 1 − the stress scenarios' probability

    @property
    def enumerated(self) -> int:
        return int(self.initiators.shape[0])

    @property
    def depth(self) -> int:
        return self.residual.depth

    def __len__(self) -> int:
        return self.enumerated + len(self.stress)

    @overload
    def __getitem__(self, index: int) -> Scenario: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Scenario]: ...

    def __getitem__(self, index: int | slice) -> Scenario | Sequence[Scenario]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index >= self.enumerated:
            return self.stress[index - self.enumerated]
        st = self.structure
        init = [int(j) for j in self.initiators[index] if j >= 0]
        failed: set[int] = set()
        for j in init:
            failed |= st.failure_closure[j]
        names = [st.node_ids[j] for j in init]
        if not names:
            name = "no failure"
        elif len(names) == 1:
            name = f"{names[0]} fails"
        else:
            name = " + ".join(names) + " fail"
        lgd = tuple((j, float(st.node_lgd[j])) for j in sorted(failed))
        return Scenario(name, float(self.enumerated_probabilities[index]), frozenset(failed), lgd)

    def __iter__(self) -> Iterator[Scenario]:
        for i in range(len(self)):
            yield self[i]

    @cached_property
    def probabilities(self) -> FloatArray:
        return np.concatenate([self.enumerated_probabilities, [s.probability for s in self.stress]])


def _combinations(n: int, k: int) -> IntArray:
    """Every k-subset of range(n), one sorted row each, in lexicographic order (vectorised)."""
    if k == 0:
        return np.zeros((1, 0), dtype=np.int64)
    rows = np.arange(n, dtype=np.int64).reshape(-1, 1)
    for _ in range(k - 1):
        last = rows[:, -1]
        counts = n - 1 - last
        rep = np.repeat(np.arange(rows.shape[0]), counts)
        # within each repeated group, the new element runs last+1 … n−1
        starts = np.cumsum(counts) - counts
        offset = np.arange(rep.size) - np.repeat(starts, counts)
        rows = np.column_stack([rows[rep], last[rep] + 1 + offset])
    return rows


def _count_at_most(n: int, k: int) -> int:
    return sum(math.comb(n, i) for i in range(k + 1))


def _count_distribution(p: FloatArray, top: int, mask: npt.NDArray[np.bool_] | None = None) -> FloatArray:
    """P(count = 0 … top−1) and P(count ≥ top) of independent Bernoulli(p), one row per mask row (True: counted).

    Every update adds non-negative terms, so tails as small as 1e-300 keep full relative precision.
    """
    masks = np.ones((1, p.size), dtype=bool) if mask is None else mask
    f = np.zeros((masks.shape[0], top + 1))
    f[:, 0] = 1.0
    for j, pj in enumerate(p):
        pm = (masks[:, j] * pj)[:, None]
        moved = f * pm
        f -= moved
        f[:, 1:] += moved[:, :-1]
        f[:, -1] += moved[:, -1]  # the last bin absorbs: count ≥ top stays there
    return f


def _subset_bits(k: int) -> npt.NDArray[np.bool_]:
    """Row `mask` says which of k positions are in the subset `mask`."""
    return ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(bool)


def _profiles(structure: Structure) -> _Profiles:
    st = structure
    closure = st.failure_closure
    lgd = st.node_lgd
    index: dict[tuple[int, ...], int] = {}
    venue_profile = np.full(st.n_venues, -1, dtype=np.int64)
    for n, nodes in enumerate(st.venue_exposure_sets):
        if nodes:
            venue_profile[n] = index.setdefault(tuple(sorted(nodes)), len(index))
    sets = tuple(index)
    moebius: list[dict[tuple[int, ...], float]] = []
    losses: list[FloatArray] = []
    for prof in sets:
        k = len(prof)
        sel = _subset_bits(k)
        # spread[i, c] = 1 when prof[c] fails with prof[i] (its closure, inside the profile)
        spread = np.array([[prof[c] in closure[prof[i]] for c in range(k)] for i in range(k)], dtype=float)
        failed = (sel.astype(float) @ spread) > 0
        loss = 1.0 - np.prod(np.where(failed, 1.0 - lgd[list(prof)], 1.0), axis=1)
        losses.append(loss)
        delta = loss.copy()
        for i in range(k):  # Möbius transform over the subset lattice: subtract the subsets without bit i
            view = delta.reshape(-1, 2, 1 << i)
            view[:, 1, :] -= view[:, 0, :]
        nz = np.flatnonzero(np.abs(delta) > 1e-15)
        moebius.append({tuple(prof[i] for i in np.flatnonzero(sel[m])): float(delta[m]) for m in nz})
    return _Profiles(sets=sets, venue_profile=venue_profile, loss=tuple(losses), moebius=tuple(moebius))


def _profile_expectations(
    structure: Structure, profiles: _Profiles, depth: int, uncertain: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """Per profile: E[loss] and E[loss; more than `depth` uncertain initiators], both exact.

    Conditioning on which of the profile's own nodes initiate (J), the rest of the nodes matter only through how
    many of them initiate: E[L; |I| > d] = Σ_J P(I ∩ P = J) L(J) P(|I ∖ P| > d − |J|).
    """
    st = structure
    p = st.node_p
    n_prof = len(profiles.sets)
    outside = np.ones((n_prof, st.n_nodes), dtype=bool)
    for i, prof in enumerate(profiles.sets):
        outside[i, list(prof)] = False
    outside &= uncertain[None, :]
    tail_dist = _count_distribution(p, depth + 1, outside)  # bins 0 … depth, then ≥ depth + 1
    suffix = np.cumsum(tail_dist[:, ::-1], axis=1)[:, ::-1]  # suffix[:, t] = P(outside count ≥ t)
    suffix = np.column_stack([suffix, np.zeros(n_prof)])
    exact = np.zeros(n_prof)
    residual = np.zeros(n_prof)
    for i, prof in enumerate(profiles.sets):
        sel = _subset_bits(len(prof))
        pk = p[list(prof)]
        prob = np.prod(np.where(sel, pk, 1.0 - pk), axis=1)
        weighted = prob * profiles.loss[i]
        need = depth + 1 - (sel & uncertain[list(prof)]).sum(axis=1)  # the outside nodes must add this many
        outside_tail = np.where(need <= 0, 1.0, suffix[i, np.clip(need, 0, depth + 2)])
        exact[i] = float(weighted.sum())
        residual[i] = float(weighted @ outside_tail)
    return exact, residual


def choose_depth(
    n_uncertain: int, tail: FloatArray, limit: float, max_scenarios: int, depth: int | None
) -> tuple[int, bool]:
    """(depth, capped): the least depth ≥ MIN_DEPTH whose left-out mass `tail[d]` is within `limit`, or the deepest
    that `max_scenarios` holds; a fixed `depth` is taken as given (within the node count)."""
    if depth is not None:
        d = min(depth, n_uncertain)
        return d, bool(tail[d] > limit)
    d = min(MIN_DEPTH, n_uncertain)
    while d > 1 and _count_at_most(n_uncertain, d) > max_scenarios:
        d -= 1
    while d < n_uncertain and tail[d] > limit and _count_at_most(n_uncertain, d + 1) <= max_scenarios:
        d += 1
    return d, bool(tail[d] > limit)


def enumerate_scenarios(
    structure: Structure,
    stress: tuple[StressScenario, ...] = (),
    *,
    beta: float = 0.99,
    tolerance: float = DEFAULT_TAIL_TOLERANCE,
    max_scenarios: int = DEFAULT_MAX_SCENARIOS,
    depth: int | None = None,
) -> ScenarioSet:
    """Every combination of up to `depth` initiating failures (chosen as described above unless given), then the
    stress scenarios; the residual's mass and exact expected loss ride along."""
    st = structure
    p = st.node_p
    possible = p > 0.0
    certain = np.flatnonzero(p >= 1.0)
    uncertain_mask = possible & (p < 1.0)
    uncertain = np.flatnonzero(uncertain_mask)
    u = uncertain.size
    stress_mass = sum(s.probability for s in stress)
    scale = 1.0 - stress_mass
    dist = _count_distribution(p[uncertain], u + 1)[0]  # P(count = 0 … u), then P(count ≥ u + 1) = 0
    tail = np.cumsum(dist[::-1])[::-1][1:]  # tail[d] = P(more than d uncertain initiators), d = 0 … u
    limit = tolerance * (1.0 - beta)
    d, _ = choose_depth(u, tail * scale, limit, max_scenarios, depth)
    q = 1.0 - p[uncertain]
    base = float(np.prod(q)) * float(np.prod(p[certain]))
    odds = p[uncertain] / q
    blocks: list[IntArray] = []
    probs: list[FloatArray] = []
    for k in range(d + 1):
        combos = _combinations(u, k)
        probs.append(base * np.prod(odds[combos], axis=1) if k else np.array([base]))
        rows = uncertain[combos] if k else combos
        pad = np.full((rows.shape[0], d - k), -1, dtype=np.int64)
        lead = np.broadcast_to(certain, (rows.shape[0], certain.size))
        blocks.append(np.hstack([lead, rows, pad]).astype(np.int64))
    initiators = np.vstack(blocks) if blocks else np.zeros((0, d), dtype=np.int64)
    probabilities = np.concatenate(probs) * scale
    profiles = _profiles(st)
    exact, res = _profile_expectations(st, profiles, d, uncertain_mask)
    b = np.zeros(st.n_venues)
    has = profiles.venue_profile >= 0
    b[has] = res[profiles.venue_profile[has]] * scale
    residual = Residual(
        depth=d,
        mass=float(tail[d] * scale),
        expected_loss=b,
        tolerance=limit,
        capped=bool(tail[d] * scale > limit),
    )
    idx = st.node_index
    explicit: list[Scenario] = []
    for s in stress:
        overrides = {idx[k]: v for k, v in s.lgd.items()}
        failed: set[int] = set()
        for n in s.nodes:
            failed |= st.failure_closure[idx[n]]
        lgd = tuple((j, overrides.get(j, float(st.node_lgd[j]))) for j in sorted(failed))
        explicit.append(Scenario(f"stress: {s.name}", s.probability, frozenset(failed), lgd, s.max_loss))
    return ScenarioSet(
        st,
        initiators=initiators,
        probabilities=probabilities,
        stress=tuple(explicit),
        residual=residual,
        scale=scale,
        profiles=profiles,
        profile_expected_loss=exact * scale,
    )


def _explicit_rows(structure: Structure, scenarios: Sequence[Scenario]) -> sp.csr_matrix:
    """Loss vectors (scenario × venue) of scenarios given by their failed nodes and loss given event."""
    st = structure
    n_s, n_j = len(scenarios), st.n_nodes
    log_keep = np.zeros((n_s, n_j))
    wiped = np.zeros((n_s, n_j))
    for s, sc in enumerate(scenarios):
        for j, g in sc.lgd:
            if g >= 1.0:
                wiped[s, j] = 1.0
            else:
                log_keep[s, j] = np.log1p(-g)
    keep = np.exp(log_keep @ st.exposure) * ((wiped @ st.exposure) == 0)
    out = 1.0 - keep
    out[np.abs(out) < 1e-15] = 0.0
    return sp.csr_matrix(out)


@dataclass(frozen=True)
class ScenarioLosses:
    """Loss matrices of a scenario set on a structure: factored (`H`, `D`), with the residual's exact share.

    `scenarios` is a `ScenarioSet` from `enumerate_scenarios`, or any sequence of explicit `Scenario`s (then there
    is no residual and expected loss is the scenarios' own).
    """

    structure: Structure
    scenarios: Sequence[Scenario]

    @cached_property
    def probabilities(self) -> FloatArray:
        if isinstance(self.scenarios, ScenarioSet):
            return self.scenarios.probabilities
        return np.array([s.probability for s in self.scenarios], dtype=float)

    @cached_property
    def weighted(self) -> tuple[int, ...]:
        """Scenarios that enter expected loss and CVaR (probability > 0)."""
        return tuple(np.flatnonzero(self.probabilities > 0.0).tolist())

    @cached_property
    def stress_limited(self) -> tuple[int, ...]:
        """Scenarios whose loss is a hard limit."""
        sc = self.scenarios
        if isinstance(sc, ScenarioSet):
            return tuple(sc.enumerated + i for i, s in enumerate(sc.stress) if s.stress_max_loss is not None)
        return tuple(i for i, s in enumerate(sc) if s.stress_max_loss is not None)

    @cached_property
    def named_stress(self) -> tuple[tuple[int, Scenario], ...]:
        """(index, scenario) of the explicitly given scenarios (the stress scenarios of an enumerated set)."""
        sc = self.scenarios
        if isinstance(sc, ScenarioSet):
            return tuple((sc.enumerated + i, s) for i, s in enumerate(sc.stress))
        return tuple(enumerate(sc))

    @cached_property
    def residual(self) -> Residual:
        if isinstance(self.scenarios, ScenarioSet):
            return self.scenarios.residual
        return Residual(0, 0.0, np.zeros(self.structure.n_venues), 0.0, False)

    @cached_property
    def _factored(self) -> tuple[tuple[tuple[int, ...], ...], sp.csr_matrix, sp.csr_matrix]:
        st = self.structure
        sc = self.scenarios
        explicit: Sequence[Scenario]
        if isinstance(sc, ScenarioSet):
            terms, h_enum, d_enum = _moebius_factor(st, sc.profiles, sc.initiators)
            explicit = sc.stress
        else:
            terms, h_enum, d_enum = (), sp.csr_matrix((0, 0)), sp.csr_matrix((0, st.n_venues))
            explicit = sc
        n_x = len(explicit)
        rows_x = _explicit_rows(st, explicit) if n_x else sp.csr_matrix((0, st.n_venues))
        if n_x == 0:
            h, d = h_enum, d_enum
        else:
            h = sp.csr_matrix(sp.block_diag([h_enum, sp.identity(n_x)], format="csr"))
            d = sp.csr_matrix(sp.vstack([d_enum, rows_x], format="csr"))
        names = tuple(terms) + tuple((-1 - i,) for i in range(n_x))
        return names, h, d

    @property
    def terms(self) -> tuple[tuple[int, ...], ...]:
        """The columns of H: initiator sets J (sorted node tuples), then one (−1 − i,) per explicit scenario."""
        return self._factored[0]

    @property
    def term_coefficients(self) -> sp.csr_matrix:
        """H[s, J] = 1 when the set J initiates in scenario s: scenario losses are `H @ (D @ x)`."""
        return self._factored[1]

    @property
    def term_incidence(self) -> sp.csr_matrix:
        """D[J, n] = Δ_n(J), the Möbius coefficient of J in venue n's loss (an explicit scenario's loss vector)."""
        return self._factored[2]

    @cached_property
    def split(self) -> tuple[tuple[npt.NDArray[np.int32], ...], sp.csr_matrix]:
        """H as (single-node columns, the rest): row s of H has a one at the term of each single initiator of s,
        `singles[c][s]` (or `len(terms)`, a zero slot, where row s has no c-th initiator or no venue is exposed to
        it), plus the joint terms and explicit scenarios in the sparse matrix. Scenario losses are then three
        gathers and a much smaller sparse product: single terms are most of H's entries."""
        h = self.term_coefficients
        n_terms = len(self.terms)
        sc = self.scenarios
        if not isinstance(sc, ScenarioSet) or n_terms == 0:
            return (), h
        single = {t[0]: i for i, t in enumerate(self.terms) if len(t) == 1 and t[0] >= 0}
        lookup = np.full(self.structure.n_nodes + 1, n_terms, dtype=np.int32)  # −1 (padding) → the zero slot
        for j, i in single.items():
            lookup[j] = i
        cols: list[npt.NDArray[np.int32]] = []
        for c in range(sc.initiators.shape[1]):
            col = np.full(h.shape[0], n_terms, dtype=np.int32)
            col[: sc.enumerated] = lookup[sc.initiators[:, c]]
            cols.append(col)
        multi = np.array([len(t) > 1 or t[0] < 0 for t in self.terms], dtype=float)
        rest = sp.csr_matrix(h @ sp.diags(multi))
        rest.eliminate_zeros()
        return tuple(cols), rest

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """L[s, n] = H D, sparse: the textbook scenario-by-venue loss matrix."""
        out = (self.term_coefficients @ self.term_incidence).tocsr()
        out.data[np.abs(out.data) < 1e-15] = 0.0
        out.eliminate_zeros()
        return out

    @cached_property
    def dense(self) -> FloatArray:
        """L[s, n] as a numpy array (small sets only)."""
        out: FloatArray = np.asarray(self.matrix.toarray(), dtype=float)
        return out

    @cached_property
    def expected_loss(self) -> FloatArray:
        """Expected annual loss per venue, exact: enumerated scenarios and residual together, plus stress."""
        sc = self.scenarios
        pi = self.probabilities
        if not isinstance(sc, ScenarioSet):
            out: FloatArray = np.asarray(self.term_incidence.T @ (self.term_coefficients.T @ pi)).ravel()
            return out
        el = np.zeros(self.structure.n_venues)
        has = sc.profiles.venue_profile >= 0
        el[has] = sc.profile_expected_loss[sc.profiles.venue_profile[has]]
        if sc.stress:
            stress_rows = self.matrix[sc.enumerated :]
            el += np.asarray(stress_rows.T @ pi[sc.enumerated :]).ravel()
        return el

    def losses(self, x: FloatArray) -> FloatArray:
        """Portfolio loss in every scenario for weights x."""
        out: FloatArray = np.asarray(self.term_coefficients @ (self.term_incidence @ x)).ravel()
        return out

    def cvar(self, x: FloatArray, beta: float, losses: FloatArray | None = None) -> float:
        """CVaR_β of weights x (an upper bound, tight to `residual_cvar_term`): the enumerated and stress scenarios'
        tail mean plus the residual's expected loss / (1 − β). `losses`: `self.losses(x)` if already computed."""
        tail = weighted_cvar(self.losses(x) if losses is None else losses, self.probabilities, beta)
        return tail + float(self.residual.expected_loss @ x) / (1.0 - beta)

    def residual_cvar_term(self, x: FloatArray, beta: float) -> float:
        """bᵀx/(1−β): what the residual adds to CVaR, and the most by which CVaR may be overstated."""
        return float(self.residual.expected_loss @ x) / (1.0 - beta)


def _moebius_factor(
    structure: Structure, profiles: _Profiles, initiators: IntArray
) -> tuple[tuple[tuple[int, ...], ...], sp.csr_matrix, sp.csr_matrix]:
    """(terms J, H, D) for enumerated scenarios: H[s, J] = 1 when J ⊆ initiators of s, D[J, n] = Δ_{S_n}(J)."""
    st = structure
    n_nodes = max(st.n_nodes, 1)
    width = initiators.shape[1]
    # Terms: subsets of a profile made of nodes that can initiate and no larger than a scenario's initiator set.
    term_venues: dict[tuple[int, ...], list[tuple[int, float]]] = {}
    can = st.node_p > 0.0
    for n in range(st.n_venues):
        pi = int(profiles.venue_profile[n])
        if pi < 0:
            continue
        for j_set, delta in profiles.moebius[pi].items():
            if len(j_set) <= width and all(can[j] for j in j_set):
                term_venues.setdefault(j_set, []).append((n, delta))
    terms = sorted(term_venues, key=lambda t: (len(t), t))
    col = {t: i for i, t in enumerate(terms)}
    d_rows = [col[t] for t in terms for _ in term_venues[t]]
    d_cols = [n for t in terms for n, _ in term_venues[t]]
    d_vals = [v for t in terms for _, v in term_venues[t]]
    d = sp.csr_matrix((d_vals, (d_rows, d_cols)), shape=(len(terms), st.n_venues))
    # H: for each subset size t and each choice of t positions in a row, look the subset up among the terms.
    by_size: dict[int, tuple[IntArray, IntArray]] = {}
    for t in {len(x) for x in terms}:
        ts = [x for x in terms if len(x) == t]
        keys = np.array([_key(np.array([x]), n_nodes)[0] for x in ts], dtype=np.int64)
        order = np.argsort(keys)
        by_size[t] = (keys[order], np.array([col[x] for x in ts], dtype=np.int64)[order])
    filled = (initiators >= 0).sum(axis=1)
    presorted = bool(
        np.all(np.diff(np.where(initiators >= 0, initiators, np.iinfo(np.int64).max), axis=1) > 0)
    )
    combos = [pos for t in sorted(by_size) for pos in itertools.combinations(range(width), t)]
    found = np.full((initiators.shape[0], len(combos)), -1, dtype=np.int32)
    for c, positions in enumerate(combos):
        keys, ids = by_size[len(positions)]
        rows = np.flatnonzero(filled > max(positions))
        if rows.size == 0:
            continue
        cols = np.array(positions, dtype=np.int64)
        sub = initiators[np.ix_(rows, cols)] if rows.size < filled.size else initiators[:, cols]
        k = _key(sub if presorted else np.sort(sub, axis=1), n_nodes)
        at = np.minimum(np.searchsorted(keys, k), keys.size - 1)
        hit = keys[at] == k
        found[rows[hit], c] = ids[at[hit]]
    valid = found >= 0
    indptr = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])
    indices = found[valid]  # row-major: each row's columns in combo order
    h = sp.csr_matrix((np.ones(indices.size), indices, indptr), shape=(initiators.shape[0], len(terms)))
    h.sort_indices()
    return tuple(terms), h, d


def _key(rows: IntArray, n: int) -> IntArray:
    """One int64 per sorted row of node indices (base-n digits)."""
    if rows.shape[1] and n ** rows.shape[1] >= 2**62:
        raise ValueError(f"too many nodes ({n}) for joint exposures of {rows.shape[1]} nodes")
    out = np.zeros(rows.shape[0], dtype=np.int64)
    for c in range(rows.shape[1]):
        out = out * n + rows[:, c]
    return out


def tail_weights(
    loss: FloatArray, weights: FloatArray, hint: float | None = None
) -> tuple[IntArray, FloatArray, float]:
    """The worst tail: scenarios (indices), weights q ≤ `weights` with Σ q ≤ 1 filling the largest losses first,
    and the value at risk (the smallest loss taken).

    Only scenarios with a positive loss are taken (zero-loss ones add nothing at this point). Nothing is sorted but
    scenarios near the cut-off: given a `hint` of the value at risk (the last call's, in a cut loop), every scenario
    losing more than a band around it is in, and only the band is sorted; the band widens (3 %, 15 %, 50 %) until it
    holds the cut-off. Without a hint, or when no band does, every scenario with a loss is sorted.
    """
    if hint is not None and hint > 0.0:
        for width in (0.03, 0.15, 0.5):
            hi = hint * (1.0 + width)
            above = loss >= hi
            w_above = float(np.add.reduce(weights, where=above))
            if w_above >= 1.0:
                continue
            band = np.flatnonzero((loss >= hint * (1.0 - width)) & ~above)
            w_band = weights[band]
            if w_above + float(w_band.sum()) < 1.0:
                continue
            order = np.argsort(-loss[band])
            cum = w_above + np.cumsum(w_band[order])
            m = min(int(np.searchsorted(cum, 1.0)), order.size - 1)
            last = band[order[: m + 1]]
            q_last = weights[last].copy()
            q_last[-1] = max(0.0, min(q_last[-1], 1.0 - (float(cum[m - 1]) if m else w_above)))
            top = np.flatnonzero(above)
            return np.concatenate([top, last]), np.concatenate([weights[top], q_last]), float(loss[last[-1]])
    sel = np.flatnonzero(loss > 0.0)
    if sel.size == 0:
        return sel, np.zeros(0), 0.0
    order = sel[np.argsort(-loss[sel])]
    cum = np.cumsum(weights[order])
    m = min(int(np.searchsorted(cum, 1.0)), order.size - 1)
    idx = order[: m + 1]
    q = weights[idx].copy()
    q[-1] = max(0.0, min(q[-1], 1.0 - (float(cum[m - 1]) if m else 0.0)))
    return idx, q, float(loss[idx[-1]])


def weighted_cvar(losses: FloatArray, probabilities: FloatArray, beta: float) -> float:
    """CVaR_β of a discrete loss distribution: the mean loss in the worst (1 − β) of probability mass.

    The dual form max{Σ q_s L_s : Σ q ≤ 1, 0 ≤ q_s ≤ π_s/(1 − β)}, equal to Rockafellar–Uryasev's
    min_ζ ζ + E[(L − ζ)+]/(1 − β) when the probabilities sum to one and losses are non-negative; when they sum to
    less (a residual left out) it is the tail mean over what is there.
    """
    mask = probabilities > 0
    loss, prob = losses[mask], probabilities[mask]
    if loss.size == 0:
        return 0.0
    idx, q, _ = tail_weights(loss, prob / (1.0 - beta))
    return float(q @ loss[idx])
