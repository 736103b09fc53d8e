"""Typed inputs of the allocation model: the universe (venues, risk nodes, stress scenarios), limits, holdings, yields.

Units: yields, costs, probabilities, shares and losses are fractions (0.031 = 3.1 %); amounts are ETH; times are days.
Everything is frozen and validated on construction, so the model never sees a malformed universe.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

TAIL_TOLERANCE = 1e-4
"""Default `Limits.tail_tolerance`: enumerate failure scenarios until the mass left out is a millionth of the tail."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VenueKind(StrEnum):
    """What a venue is, for the layer caps."""

    IDLE = "idle"
    LIQUID_STAKING = "liquid_staking"
    RESTAKING = "restaking"
    LIQUID_RESTAKING = "liquid_restaking"


TOKEN_KINDS = frozenset({VenueKind.LIQUID_STAKING, VenueKind.LIQUID_RESTAKING})
"""Venues that are a token: one can sell it, and it earns the network's staking yield less its fee."""


class YieldComponent(_Frozen):
    """One yield component a venue adds on top of its parent (base staking, restaking rewards, points…).

    `haircut` is the share of the quoted value the model does not believe: 0 for protocol-paid ETH yield,
    large for rewards paid in a speculative token, 1 for points with no market.
    """

    name: str = Field(min_length=1)
    haircut: Fraction = 0.0


class ExitRouteKind(StrEnum):
    """How capital leaves a venue for its parent."""

    QUEUE = "queue"  # the protocol's withdrawal queue: time, no fee
    DEX = "dex"  # a market sale: a fee (slippage), no time


class ExitRoute(_Frozen):
    """One way out of a venue into its parent: `days` in transit and a one-off `fee` (fraction of the amount).

    A queue's cost is the yield the capital forgoes while it waits: `days / 365 × the yield of the venue's whole path`
    (capital in transit earns nothing, neither the venue's own component nor its parents'). A DEX sale costs its
    fee and arrives at once. A route may have both (a queue with a fee); the model prices every route and uses the
    cheaper one for each exit (and for the exit an entry implies), never two routes at once.
    """

    kind: ExitRouteKind
    days: Annotated[float, Field(ge=0.0, le=365.0, allow_inf_nan=False)] = 0.0
    fee: Fraction = 0.0


class Venue(_Frozen):
    """A place capital can sit, on the position tree rooted at idle ETH (the one venue without a parent).

    `exit_routes` are the ways back from this venue into its parent (queue and/or DEX, see `ExitRoute`). The old
    pair `exit_days` / `exit_cost` still works: without `exit_routes` it is one route with that time and that fee
    (both charged, as before). `entry_cost` is a one-off cost as a fraction of the amount moved (fees, slippage).
    Shares are of the whole portfolio, exclusive of children.
    """

    id: str = Field(min_length=1)
    parent: str | None = None
    kind: VenueKind
    components: tuple[YieldComponent, ...] = ()
    risk_nodes: tuple[str, ...] = ()
    exit_days: NonNegative = 0.0
    entry_cost: Fraction = 0.0
    exit_cost: Fraction = 0.0
    min_share: Fraction = 0.0
    max_share: Fraction = 1.0
    exit_routes: tuple[ExitRoute, ...] = ()

    @property
    def routes(self) -> tuple[ExitRoute, ...]:
        """The exit routes, the legacy `exit_days` / `exit_cost` pair as one route when none is given."""
        if self.exit_routes:
            return self.exit_routes
        return (ExitRoute(kind=ExitRouteKind.QUEUE, days=self.exit_days, fee=self.exit_cost),)

    @property
    def liquidity_days(self) -> float:
        """Days back into the parent that the liquidity ladder counts on: the protocol queue's when there is one
        (market depth is what vanishes in a crisis: ezETH's DEX exits printed −13 % in April 2024), else the
        fastest route's."""
        queues = [r.days for r in self.routes if r.kind == ExitRouteKind.QUEUE]
        return min(queues) if queues else min(r.days for r in self.routes)

    @model_validator(mode="after")
    def _shares_ordered(self) -> Venue:
        if self.min_share > self.max_share:
            raise ValueError(
                f"venue {self.id!r}: min_share {self.min_share} exceeds max_share {self.max_share}"
            )
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"venue {self.id!r}: duplicate yield component names {names}")
        if self.exit_routes and (self.exit_days or self.exit_cost):  # a dumped Venue has both at 0
            raise ValueError(
                f"venue {self.id!r}: give either exit_routes or the legacy exit_days/exit_cost, not both "
                '(exit_routes = [{kind = "queue", days = 14}, {kind = "dex", fee = 0.002}])'
            )
        return self


class RiskNode(_Frozen):
    """Something that can fail and take money with it: annual event probability `p`, loss given event `lgd`.

    A failure of a node also fails every node that names it in `parents` (an LRT fails with the layer it
    restakes into). `cap` bounds the portfolio share exposed to the node.
    """

    id: str = Field(min_length=1)
    p: Fraction
    lgd: Fraction
    parents: tuple[str, ...] = ()
    cap: Fraction | None = None


class StressScenario(_Frozen):
    """A named failure of several nodes at once, from the operator.

    With `probability` > 0 it joins the scenario set (the enumerated scenarios keep the remaining mass);
    with `max_loss` the portfolio's loss in it is a hard limit. `lgd` overrides the nodes' loss given event.
    """

    name: str = Field(min_length=1)
    nodes: tuple[str, ...] = Field(min_length=1)
    probability: Fraction = 0.0
    max_loss: Fraction | None = None
    lgd: dict[str, Fraction] = Field(default_factory=dict)


class LadderRung(_Frozen):
    """At least `min_share` of the portfolio must be back as ETH within `days`."""

    days: NonNegative
    min_share: Fraction


class Limits(_Frozen):
    """The operator's risk budgets and trading rules.

    Risk aversion, two spellings of one number (give one; both must agree, as in a dumped Limits):

    - `tail_weight` κ (preferred): the objective charges the CVaR tail κ more times its share of the expected loss,
      λ = κ·(1 − β). The tail's share of the expected loss is (1 − β)·CVaR_β, so κ = 0 is risk-neutral (expected loss
      only), κ = 1 counts the worst 1 % of years twice, κ = 10 eleven times. Useful range 0–20: with annual failure
      probabilities under 1 %, CVaR₉₉ ≈ 100 × expected loss, so κ = 100 (λ = 1) outweighs every staking yield.
    - `risk_aversion` λ (legacy): the weight of CVaR_β itself in the objective. λ = κ·(1 − β); at β = 0.99 the useful
      range is 0–0.2.

    `trade_cost_multiple` k is the no-trade band: the LP charges each move k times its amortised round-trip cost
    (entry plus the exit it implies), so a move is proposed only when its gain over the horizon beats k round trips,
    and moving back needs the same again (hysteresis). k = 1 charges costs as they are. `min_improvement_bps`
    stays a floor on the whole plan's net gain.
    """

    cvar_beta: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.99
    cvar_budget: Fraction | None = None
    risk_aversion: NonNegative = 1.0
    tail_weight: NonNegative | None = None
    trade_cost_multiple: Annotated[float, Field(ge=1.0, le=100.0, allow_inf_nan=False)] = 1.0
    max_turnover: Fraction | None = None
    ladder: tuple[LadderRung, ...] = ()
    layer_caps: dict[VenueKind, Fraction] = Field(default_factory=dict)
    horizon_days: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 365.0
    min_move_eth: NonNegative = 0.0
    min_improvement_bps: NonNegative = 0.0
    gas_cost_eth: NonNegative = 0.0
    drift_band: Fraction = Field(
        default=0.0,
        description="drift from yields accruing at different rates is not corrected by a move every cycle: a "
        "current allocation past a limit by at most half this share may be held, and a plan brings one further "
        "past back, so that the exposure (queued exits included, which accrue while they wait) stays within the "
        "whole band every day",
    )
    hold_days: Annotated[float, Field(ge=0.0, le=365.0, allow_inf_nan=False)] = Field(
        default=0.0,
        description="a holding period: capital that entered a venue in the last hold_days days is not sold, and a "
        "venue sold from in that time is not bought, unless the limits cannot be met otherwise (the plan says so). "
        "The callers (the daemon's cycle, the replay) list those venues in OptimizationInputs.recent_entries and "
        "recent_exits. 0: off",
    )
    forced_sale_budget: Fraction | None = Field(
        default=None,
        description="if the protocol queues stall, meeting each ladder rung by idle ETH and market (DEX) sales loses "
        "at most this share of the book (each sale its DEX fee plus the token's depeg, `sale_depeg`); positions "
        "without a market exit of their own cannot count. Unset: the ladder counts queues at par only",
    )
    sale_depeg: dict[str, Fraction] = Field(
        default_factory=dict,
        description="venue → its token's market gap in a run (fraction), for the forced-sale limit; the service "
        "fills it from the risk scorecard's worst_depeg; a token venue not listed is priced at UNRECORDED_DEPEG",
    )
    tail_tolerance: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=TAIL_TOLERANCE,
        description="failure scenarios are enumerated (every triple at least) until the probability of the "
        "combinations left out is below this share of the CVaR tail (1 − cvar_beta); what is left counts in CVaR with "
        "its exact expected loss, so CVaR is overstated by at most that share of the worst loss",
    )

    @model_validator(mode="before")
    @classmethod
    def _lambda_from_tail_weight(cls, data: Any) -> Any:
        """With `tail_weight`, risk_aversion becomes κ·(1 − β); both given must agree (a dumped Limits has both)."""
        if not isinstance(data, dict) or data.get("tail_weight") is None:
            return data
        try:
            kappa = float(data["tail_weight"])
            beta = float(data.get("cvar_beta", 0.99))
        except (TypeError, ValueError):
            return data  # the field validators name the bad value
        lam = kappa * (1.0 - beta)
        given = data.get("risk_aversion")
        if given is None:
            return {**data, "risk_aversion": lam}
        try:
            agree = math.isclose(float(given), lam, rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return data
        if not agree:
            raise ValueError(
                f"tail_weight {kappa:g} means risk_aversion λ = κ·(1 − cvar_beta) = {lam:g}, but risk_aversion is "
                f"{given}; give one of them (tail_weight preferred)"
            )
        return data

    @property
    def lam(self) -> float:
        """λ, the weight of CVaR_β in the objective."""
        return self.risk_aversion

    @property
    def kappa(self) -> float:
        """κ, the tail weight: how many more times the tail counts than its share of the expected loss."""
        return self.lam / (1.0 - self.cvar_beta)


class Universe(_Frozen):
    """Venues on their position tree, risk nodes on theirs, and the named stress scenarios."""

    venues: tuple[Venue, ...] = Field(min_length=1)
    nodes: tuple[RiskNode, ...] = ()
    stress: tuple[StressScenario, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Universe:
        ids = [v.id for v in self.venues]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate venue ids: {dupes}")
        roots = [v.id for v in self.venues if v.parent is None]
        if len(roots) != 1:
            raise ValueError(f"exactly one root venue (without parent) is needed, found {roots or 'none'}")
        known = set(ids)
        for v in self.venues:
            if v.parent is not None and v.parent not in known:
                raise ValueError(
                    f"venue {v.id!r}: parent {v.parent!r} is not a venue; valid: {sorted(known)}"
                )
        _check_acyclic({v.id: (v.parent,) if v.parent else () for v in self.venues}, "venue")
        node_ids = [n.id for n in self.nodes]
        dupes = sorted({i for i in node_ids if node_ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate risk node ids: {dupes}")
        nodes = set(node_ids)
        for n in self.nodes:
            bad = [p for p in n.parents if p not in nodes]
            if bad:
                raise ValueError(
                    f"risk node {n.id!r}: parents {bad} are not risk nodes; valid: {sorted(nodes)}"
                )
        _check_acyclic({n.id: n.parents for n in self.nodes}, "risk node")
        for v in self.venues:
            bad = [r for r in v.risk_nodes if r not in nodes]
            if bad:
                raise ValueError(
                    f"venue {v.id!r}: risk_nodes {bad} are not risk nodes; valid: {sorted(nodes)}"
                )
        for s in self.stress:
            bad = [r for r in (*s.nodes, *s.lgd) if r not in nodes]
            if bad:
                raise ValueError(
                    f"stress scenario {s.name!r}: {bad} are not risk nodes; valid: {sorted(nodes)}"
                )
        if sum(s.probability for s in self.stress) >= 1.0:
            raise ValueError("stress scenario probabilities must sum to less than 1")
        return self

    @property
    def root(self) -> Venue:
        return next(v for v in self.venues if v.parent is None)


class InFlight(_Frozen):
    """Capital in transit: it left `from_venue` (an exit request in a queue) and lands at `to_venue` in `days_left`.

    Until it lands it is still exposed to `from_venue` (every risk node on its path) and earns nothing, so CVaR, node
    caps, layer caps, stress limits and the liquidity ladder count it at `from_venue` (the ladder with from_venue's
    full time back to ETH: conservative). Where the plan aims, it is already at `to_venue`: the plan's current book
    `x0` is `holdings_eth` plus every in-flight amount at its destination, so a plan never issues the same move
    again. `to_venue` is usually from_venue's parent; it may be deeper when a deposit waits for the capital to land
    (stETH queued out of EigenLayer, then deposited into Symbiotic on arrival: to_venue = the Symbiotic venue).
    """

    from_venue: str = Field(min_length=1)
    to_venue: str = Field(min_length=1)
    amount_eth: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    days_left: Annotated[float, Field(ge=0.0, le=365.0, allow_inf_nan=False)] = 0.0


class OptimizationInputs(_Frozen):
    """Everything one solve depends on. A plan records it, so the same problem can be rebuilt and re-solved.

    `holdings_eth` is the settled book (venue → ETH; venues not listed hold nothing); `in_flight` the capital in
    exit queues (see `InFlight`); `portfolio_eth` is their sum. `yields` maps venue → component → fraction per year;
    a venue with a component missing along its path is held at its current weight, unless it is `exit_only` (its
    yield went stale past the window: the missing components count 0, it may be sold to 0, not bought). `entry_blocked` maps a venue to
    why no capital may enter it (its yield is stale, carried or rests on too few observations): it is valued at its
    yield and may be sold down, but its subtree may not grow (capital already in flight towards it is not an entry).

    Passing in-flight capital (e.g. from a replay that queues exits):

        OptimizationInputs(universe=u, limits=lim, portfolio_eth=10_000.0,
                           holdings_eth={"eth": 1_000.0, "lido-steth": 8_000.0},
                           in_flight=(InFlight(from_venue="eigenlayer-steth", to_venue="lido-steth",
                                               amount_eth=1_000.0, days_left=9.0),),
                           yields=...)
    """

    universe: Universe
    limits: Limits = Limits()
    portfolio_eth: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    holdings_eth: dict[str, NonNegative]
    yields: dict[str, dict[str, float]]
    in_flight: tuple[InFlight, ...] = ()
    entry_blocked: dict[str, str] = Field(default_factory=dict)
    exit_only: dict[str, str] = Field(
        default_factory=dict,
        description="venue → why it may only be sold: a yield along its path went stale past the estimate's "
        "window (observed before, no value since). Its missing components count 0, its lower bound is 0, nothing "
        "enters it (it is also listed in entry_blocked). A venue missing a yield that is NOT listed here (never "
        "observed: a store warming up) is held at its weight instead.",
    )

    entry_discount: dict[str, NonNegative] = Field(
        default_factory=dict,
        description="venue → yearly yield (fraction) an entry into it does not count on: the spread between its own "
        "components' estimate and a lower quantile of their window. Charged on capital entering the venue (its "
        "subtree), never on capital held: noise cannot buy, and selling needs the estimate itself to fall.",
    )

    recent_entries: dict[str, str] = Field(
        default_factory=dict,
        description="venue → when capital entered it within the holding period (`Limits.hold_days`): it is not "
        "sold below today's weight, unless the limits cannot be met otherwise",
    )
    recent_exits: dict[str, str] = Field(
        default_factory=dict,
        description="venue → when capital left it within the holding period: nothing enters it (its subtree), "
        "unless the limits cannot be met otherwise",
    )

    @model_validator(mode="before")
    @classmethod
    def _exit_only_is_entry_blocked(cls, data: Any) -> Any:
        """Every exit-only venue is closed to entries: listed in entry_blocked with its reason, unless given there."""
        if not isinstance(data, dict) or not isinstance(data.get("exit_only"), dict) or not data["exit_only"]:
            return data
        blocked = data.get("entry_blocked")
        merged = dict(blocked) if isinstance(blocked, dict) else {}
        for venue, why in data["exit_only"].items():
            merged.setdefault(venue, why)
        return {**data, "entry_blocked": merged}

    @model_validator(mode="after")
    def _holdings_match(self) -> OptimizationInputs:
        known = {v.id for v in self.universe.venues}
        bad = sorted(set(self.holdings_eth) - known)
        if bad:
            raise ValueError(f"holdings name unknown venues {bad}; valid: {sorted(known)}")
        for f in self.in_flight:
            bad = sorted({f.from_venue, f.to_venue} - known)
            if bad:
                raise ValueError(f"in_flight names unknown venues {bad}; valid: {sorted(known)}")
            if f.from_venue == f.to_venue:
                raise ValueError(
                    f"in_flight from {f.from_venue!r} to itself; from_venue and to_venue must differ"
                )
        total = sum(self.holdings_eth.values()) + sum(f.amount_eth for f in self.in_flight)
        if not math.isclose(total, self.portfolio_eth, rel_tol=1e-6, abs_tol=1e-9):
            raise ValueError(
                f"holdings and in-flight capital sum to {total} ETH but portfolio_eth is {self.portfolio_eth} ETH"
            )
        bad = sorted(set(self.yields) - known)
        if bad:
            raise ValueError(f"yields name unknown venues {bad}; valid: {sorted(known)}")
        bad = sorted(set(self.exit_only) - known)
        if bad:
            raise ValueError(f"exit_only names unknown venues {bad}; valid: {sorted(known)}")
        bad = sorted(set(self.entry_discount) - known)
        if bad:
            raise ValueError(f"entry_discount names unknown venues {bad}; valid: {sorted(known)}")
        bad = sorted(set(self.entry_blocked) - known)
        if bad:
            raise ValueError(f"entry_blocked names unknown venues {bad}; valid: {sorted(known)}")
        for name, listed in (("recent_entries", self.recent_entries), ("recent_exits", self.recent_exits)):
            bad = sorted(set(listed) - known)
            if bad:
                raise ValueError(f"{name} names unknown venues {bad}; valid: {sorted(known)}")
        for venue, comps in self.yields.items():
            for name, value in comps.items():
                if not math.isfinite(value):
                    raise ValueError(f"yield {venue}.{name} is not finite: {value}")
        return self


def _check_acyclic(edges: dict[str, tuple[str, ...]], what: str) -> None:
    """Raise naming the cycle if following `edges` (child → parents) ever returns to a start."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = [*path[path.index(node) :], node]
            raise ValueError(f"{what} cycle: {' -> '.join(cycle)}")
        state[node] = 1
        for parent in edges.get(node, ()):
            visit(parent, [*path, node])
        state[node] = 2

    for start in edges:
        visit(start, [])
