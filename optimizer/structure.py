"""The universe as arrays: venue order, the position tree's matrices, and each venue's risk-node exposure.

Built once per universe; everything here is a pure function of `Universe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from optimizer.inputs import Universe, VenueKind

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Structure:
    """Index maps and matrices of one universe.

    - `subtree[a, n] = 1` when venue n is a or below it: `subtree @ x` is the capital in each subtree.
    - `path[n, a] = 1` when venue a is on the path from the root to n (n included): yields add up along it.
    - `exposure[j, n] = 1` when venue n is exposed to risk node j (a node of a venue on its path, or a parent
      node of one, transitively).
    - `failure_closure[j]`: node j and every node whose failure follows from j's (nodes naming j as parent).
    """

    universe: Universe

    @cached_property
    def venue_ids(self) -> tuple[str, ...]:
        return tuple(v.id for v in self.universe.venues)

    @cached_property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.universe.nodes)

    @cached_property
    def venue_index(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(self.venue_ids)}

    @cached_property
    def node_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.node_ids)}

    @property
    def n_venues(self) -> int:
        return len(self.venue_ids)

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @cached_property
    def parent_index(self) -> tuple[int | None, ...]:
        idx = self.venue_index
        return tuple(None if v.parent is None else idx[v.parent] for v in self.universe.venues)

    @cached_property
    def depth(self) -> tuple[int, ...]:
        depths: list[int] = []
        for i in range(self.n_venues):
            d, j = 0, self.parent_index[i]
            while j is not None:
                d, j = d + 1, self.parent_index[j]
            depths.append(d)
        return tuple(depths)

    @cached_property
    def path(self) -> FloatArray:
        n = self.n_venues
        out = np.zeros((n, n))
        for i in range(n):
            j: int | None = i
            while j is not None:
                out[i, j] = 1.0
                j = self.parent_index[j]
        return out

    @cached_property
    def subtree(self) -> FloatArray:
        return np.ascontiguousarray(self.path.T)

    @cached_property
    def transit(self) -> FloatArray:
        """T[:, n] = 1 at venue n and −1 at its parent: `T @ q` puts capital leaving subtree n (q_n) back at n, from
        where it would otherwise be counted (its parent), for as long as it is in transit."""
        out = np.zeros((self.n_venues, self.n_venues))
        for n, parent in enumerate(self.parent_index):
            if parent is not None:
                out[n, n] = 1.0
                out[parent, n] = -1.0
        return out

    @cached_property
    def days_to_eth(self) -> FloatArray:
        """Days from each venue back to idle ETH for the liquidity ladder: each venue's `liquidity_days` (its
        protocol queue when it has one) added along the path."""
        own = np.array([v.liquidity_days for v in self.universe.venues], dtype=float)
        out: FloatArray = self.path @ own
        return out

    @cached_property
    def entry_cost(self) -> FloatArray:
        return np.array([v.entry_cost for v in self.universe.venues], dtype=float)

    @cached_property
    def exit_days(self) -> FloatArray:
        """Each venue's `liquidity_days` (legacy view: the queue's days; prefer `exit_routes`)."""
        return np.array([v.liquidity_days for v in self.universe.venues], dtype=float)

    @cached_property
    def exit_cost(self) -> FloatArray:
        """The fee of the route `exit_days` counts (legacy view: prefer `exit_routes`)."""
        out = np.zeros(self.n_venues)
        for i, v in enumerate(self.universe.venues):
            out[i] = min(r.fee for r in v.routes if r.days == v.liquidity_days)
        return out

    @cached_property
    def route_fee(self) -> FloatArray:
        """fee[n, r] of venue n's r-th exit route (padded with +inf where a venue has fewer routes)."""
        return self._routes[0]

    @cached_property
    def route_days(self) -> FloatArray:
        """days[n, r] of venue n's r-th exit route (padded with 0)."""
        return self._routes[1]

    @cached_property
    def _routes(self) -> tuple[FloatArray, FloatArray]:
        width = max(len(v.routes) for v in self.universe.venues)
        fee = np.full((self.n_venues, width), np.inf)
        days = np.zeros((self.n_venues, width))
        for i, v in enumerate(self.universe.venues):
            for r, route in enumerate(v.routes):
                fee[i, r] = route.fee
                days[i, r] = route.days
        return fee, days

    def exit_routes(self, path_yield: FloatArray) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        """(cost, days, route index) of each venue's cheaper exit at these yields: a route costs its fee plus
        `days / 365 × max(path yield, 0)`, the whole path's yield forgone in transit. Ties go to the faster route."""
        wait = self.route_days / 365.0 * np.maximum(path_yield, 0.0)[:, None]
        cost = self.route_fee + wait
        best = np.argmin(cost + 1e-12 * self.route_days, axis=1)  # a tie goes to the faster route
        rows = np.arange(self.n_venues)
        return cost[rows, best], self.route_days[rows, best], best

    @cached_property
    def node_ancestors(self) -> tuple[frozenset[int], ...]:
        """For each node, itself and every node it names as parent, transitively."""
        idx = self.node_index
        parents = [[idx[p] for p in n.parents] for n in self.universe.nodes]
        out: list[frozenset[int]] = []
        for j in range(self.n_nodes):
            seen, stack = {j}, [j]
            while stack:
                for p in parents[stack.pop()]:
                    if p not in seen:
                        seen.add(p)
                        stack.append(p)
            out.append(frozenset(seen))
        return tuple(out)

    @cached_property
    def failure_closure(self) -> tuple[frozenset[int], ...]:
        """For each node, the nodes that fail with it: itself and every node having it as an ancestor."""
        anc = self.node_ancestors
        return tuple(frozenset(k for k in range(self.n_nodes) if j in anc[k]) for j in range(self.n_nodes))

    @cached_property
    def venue_exposure_sets(self) -> tuple[frozenset[int], ...]:
        idx = self.node_index
        own = [frozenset(idx[r] for r in v.risk_nodes) for v in self.universe.venues]
        out: list[frozenset[int]] = []
        for i in range(self.n_venues):
            nodes: set[int] = set()
            for a in np.flatnonzero(self.path[i]):
                for j in own[a]:
                    nodes |= self.node_ancestors[j]
            out.append(frozenset(nodes))
        return tuple(out)

    @cached_property
    def exposure(self) -> FloatArray:
        out = np.zeros((self.n_nodes, self.n_venues))
        for n, nodes in enumerate(self.venue_exposure_sets):
            out[list(nodes), n] = 1.0
        return out

    @cached_property
    def node_p(self) -> FloatArray:
        return np.array([n.p for n in self.universe.nodes], dtype=float)

    @cached_property
    def node_lgd(self) -> FloatArray:
        return np.array([n.lgd for n in self.universe.nodes], dtype=float)

    @cached_property
    def kinds(self) -> tuple[VenueKind, ...]:
        return tuple(VenueKind(v.kind) for v in self.universe.venues)

    def kind_matrix(self, kinds: tuple[VenueKind, ...]) -> FloatArray:
        """Row k sums the shares of the venues of kind `kinds[k]`."""
        return np.array([[1.0 if vk == k else 0.0 for vk in self.kinds] for k in kinds]).reshape(
            len(kinds), self.n_venues
        )

    def ladder_matrix(self, days: tuple[float, ...]) -> FloatArray:
        """Row r sums the shares that are back as ETH within `days[r]` days."""
        return np.array([(self.days_to_eth <= d + 1e-12).astype(float) for d in days]).reshape(
            len(days), self.n_venues
        )

    def component_arrays(
        self, yields: dict[str, dict[str, float]]
    ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """(own net yield per venue after haircuts, whether any component along the path is missing)."""
        own = np.zeros(self.n_venues)
        missing = np.zeros(self.n_venues, dtype=bool)
        for i, venue in enumerate(self.universe.venues):
            quoted = yields.get(venue.id, {})
            for comp in venue.components:
                if comp.name in quoted:
                    own[i] += (1.0 - comp.haircut) * quoted[comp.name]
                else:
                    missing[i] = True
        path_missing = (self.path @ missing.astype(float)) > 0
        return own, path_missing
