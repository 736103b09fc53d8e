"""Tables for people (rich). Percent only here: inside the code yields are fractions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aggregator.rates.collect import RateBook
from aggregator.rates.lineage import independent_of
from aggregator.research.backtest.incidents import replay_incidents
from aggregator.research.backtest.run import Backtest
from aggregator.research.backtest.table import TABLE_HEAD, rows
from aggregator.settings import Settings
from aggregator.store.rows import ListedProposalRow
from execution.timeline import Timeline
from optimizer import ExitRoute, ExitRouteKind, Move, Plan


def pct(x: float, digits: int = 3) -> str:
    return f"{x * 100:.{digits}f} %"


def venue_names(settings: Settings) -> dict[str, str]:
    """Venue id -> the config's `name` (the id where none is given): what tables show people."""
    return {v.id: v.name or v.id for v in settings.venues}


def move_costs(plan: Plan, move: Move) -> tuple[float, float]:
    """A move's one-off cost split in two, in ETH: (fees, yield forgone). A deposit pays its entry fee; an exit its
    route's fee plus the yield its capital forgoes while in transit (`optimizer.moves`: the cost is fee + days/365 x
    the path's yield), so the forgone part is the rest of `cost_eth`."""
    if move.action == "deposit":
        return move.cost_eth, 0.0
    venue = next((v for v in plan.problem.inputs.universe.venues if v.id == move.venue), None)
    route = next((r for r in venue.routes if str(r.kind) == move.route), None) if venue is not None else None
    if route is None:  # a plan stored without its route: all of it counted as fees
        return move.cost_eth, 0.0
    fee = min(route.fee * move.amount_eth, move.cost_eth)
    return fee, move.cost_eth - fee


def age(now: datetime, then: datetime) -> str:
    hours = (now - then).total_seconds() / 3600.0
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.0f} d"


def rates_table(console: Console, book: RateBook, names: Mapping[str, str] | None = None) -> None:
    label = (names or {}).get
    table = Table(
        title=f"Yields at {book.fetched_at:%Y-%m-%d %H:%M} UTC (fraction shown as percent per year)"
    )
    for col in ("venue", "component", "yield", "sources", "independence", "age"):
        table.add_column(col, justify="right" if col in ("yield", "age") else "left")
    for r in book.rates:
        table.add_row(
            label(r.venue, r.venue),
            r.component,
            pct(r.value),
            ", ".join(r.sources),
            independent_of(r.independent, len(r.sources)),
            age(book.fetched_at, r.observed_at),
        )
    console.print(table)
    lineage = sorted({line for r in book.rates if r.independent < len(r.sources) for line in r.lineage})
    if lineage:
        console.print("lineage (sources sharing an origin count once): " + escape("; ".join(lineage)))
    answered = sorted({u for r in book.rates for u in r.urls})
    if answered:
        console.print("answered: " + escape("; ".join(answered)))
    for v, c in book.missing:
        console.print(f"[yellow]missing[/]: {v}.{c} has no valid quote (the venue is held, never bought)")
    for rej in book.rejected:
        console.print(f"[yellow]rejected[/]: {rej.source} {rej.key}: {rej.reason}")
    for name, reason in sorted(book.failed_sources.items()):
        console.print(f"[red]source failed[/]: {name}: {reason}")


def plan_report(
    console: Console,
    plan: Plan,
    *,
    applied: bool = False,
    timeline: Timeline | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """The plan for people: venue names from `names` (venue id -> config name; ids where absent)."""
    known = names or {}

    def label(venue: str) -> str:
        return known.get(venue, venue)

    colour = "green" if plan.status == "rebalance" else "yellow"
    mode = "applied: the book now holds the target" if applied and plan.status == "rebalance" else "dry run"
    console.print(f"[bold {colour}]{plan.status.upper()}[/] ({mode}): {plan.reason}")
    summary = Table(title=f"Portfolio {plan.portfolio_eth:,.2f} ETH")
    for col in ("", "before", "after"):
        summary.add_column(col, justify="right" if col else "left")
    b, a = plan.before, plan.after
    summary.add_row("net yield", pct(b.net_yield), pct(a.net_yield))
    summary.add_row("expected loss", pct(b.expected_loss), pct(a.expected_loss))
    summary.add_row("CVaR", pct(b.cvar), pct(a.cvar))
    summary.add_row("risk-adjusted", pct(b.risk_adjusted), pct(a.risk_adjusted))
    for name in a.stress_losses:
        summary.add_row(f"loss in '{name}'", pct(b.stress_losses[name]), pct(a.stress_losses[name]))
    console.print(summary)
    weights = Table(title="Allocation")
    for col in ("venue", "current", "target", "target ETH"):
        weights.add_column(col, justify="left" if col == "venue" else "right")
    for v, w in plan.target_weights.items():
        cur = plan.current_weights[v]
        if cur > 0 or w > 0:
            weights.add_row(label(v), pct(cur, 2), pct(w, 2), f"{plan.target_eth[v]:,.2f}")
    console.print(weights)
    if plan.moves:
        moves = Table(title="Moves (exits first)")
        numeric = ("#", "ETH", "fees ETH", "yield forgone ETH", "exit days")
        for col in ("#", "action", "from", "to", "ETH", "fees ETH", "yield forgone ETH", "exit days"):
            moves.add_column(col, justify="right" if col in numeric else "left")
        for m in plan.moves:
            fees, forgone = move_costs(plan, m)
            moves.add_row(
                str(m.step),
                m.action,
                label(m.from_venue),
                label(m.to_venue),
                f"{m.amount_eth:,.4f}",
                f"{fees:,.4f}",
                f"{forgone:,.4f}",
                f"{m.days:g}",
            )
        console.print(moves)
        if timeline is not None:
            timeline_table(console, timeline, names=known)
        fees = sum(move_costs(plan, m)[0] for m in plan.moves)
        console.print(
            f"turnover {pct(plan.turnover, 2)}, one-off costs {plan.costs.total_eth:,.4f} ETH (fees {fees:,.4f}, "
            f"yield forgone in transit {plan.costs.total_eth - fees:,.4f}; "
            f"{pct(plan.costs.amortised_per_year)} per year over the horizon) + gas {plan.costs.gas_eth:g} ETH; "
            f"risk-adjusted gain {plan.gain_bps:.2f} bp/yr (net yield − expected loss − "
            f"λ·CVaR with λ = {plan.problem.risk_aversion:g}, after amortised round-trip costs and gas)"
        )
    for bl in plan.binding:
        console.print(f"[cyan]binding[/] {bl.limit} ({bl.subject}) at {bl.value:g}: {bl.explanation}")
    for h in plan.held:
        console.print(f"[yellow]held[/] {label(h.venue)} at {pct(h.weight, 2)}: {h.reason}")
    for closed in plan.entry_blocked:
        console.print(
            f"[yellow]no entry[/] {label(closed.venue)} (at {pct(closed.weight, 2)}, may be sold): {closed.reason}"
        )
    for note in plan.heuristics:
        console.print(f"[magenta]heuristic[/] {note}")
    for d in plan.diagnosis:
        console.print(f"[red]cannot meet[/] {d.message}")
    if plan.tail is not None:
        console.print(
            f"[cyan]tail[/] every combination of up to {plan.tail.depth} simultaneous failures enumerated "
            f"({plan.tail.scenarios:,} scenarios); residual mass {plan.tail.residual_mass:.3g} "
            f"({plan.tail.tail_share:.3g} of the CVaR tail), counted with its exact expected loss: CVaR overstated "
            f"by at most {pct(plan.tail.cvar_overstatement, 5)}"
        )
    s = plan.solver
    console.print(
        f"solver {s.name or '-'} {s.status} in {s.seconds * 1000:.1f} ms ({s.solves} solve(s), {s.scenarios} "
        f"scenarios, {s.risk_form} risk form)"
    )


def _routes(routes: tuple[ExitRoute, ...], days: float, fee: float) -> str:
    """Exit routes in words: "queue 14 d / dex 0.20 %" (legacy fields as one route)."""
    shown = routes or (ExitRoute(kind=ExitRouteKind.QUEUE, days=days, fee=fee),)
    parts = []
    for r in shown:
        bits = ([f"{r.days:g} d"] if r.days or not r.fee else []) + ([pct(r.fee, 2)] if r.fee else [])
        parts.append(f"{r.kind} {' + '.join(bits)}")
    return " / ".join(parts)


def config_summary(console: Console, settings: Settings, path: str) -> None:
    console.print(
        f"[bold]{path}[/]: portfolio {settings.portfolio_eth:,.2f} ETH across {len(settings.venues)} venues"
    )
    tree = Table(title="Venues (position tree)")
    for col in (
        "venue",
        "parent",
        "kind",
        "risk nodes",
        "exit routes",
        "max share",
        "holding ETH",
        "yield sources",
    ):
        tree.add_column(col)
    for v in settings.venues:
        srcs = "; ".join(f"{c.name}<-{'+'.join(q.source for q in c.quotes)}" for c in v.components) or "-"
        tree.add_row(
            v.id,
            v.parent or "-",
            str(v.kind),
            ", ".join(v.risk_nodes) or "-",
            _routes(v.exit_routes, v.exit_days, v.exit_cost),
            f"{v.max_share:g}",
            f"{settings.portfolio.holdings_eth.get(v.id, 0.0):,.2f}",
            srcs,
        )
    console.print(tree)
    card = settings.risk.scorecard
    nodes = Table(
        title="Risk nodes"
        + (
            f" (p and lgd from {card}: `aggregator risk` shows why)"
            if card
            else " (p and lgd typed in the config)"
        )
    )
    for col in ("node", "p / yr", "loss given event", "parents", "cap"):
        nodes.add_column(col)
    for n in settings.risk_nodes:
        nodes.add_row(
            n.id,
            pct(n.p, 2),
            pct(n.lgd, 1),
            ", ".join(n.parents) or "-",
            "-" if n.cap is None else pct(n.cap, 1),
        )
    console.print(nodes)
    lim = settings.limits
    console.print(
        f"limits: CVaR{lim.cvar_beta:g} budget {'-' if lim.cvar_budget is None else pct(lim.cvar_budget, 2)}, "
        f"risk aversion: tail weight κ {lim.kappa:.3g} (λ = κ·(1 − β) = {lim.lam:.3g}; κ = 0 counts expected loss "
        f"only, κ = 1 counts the worst {pct(1 - lim.cvar_beta, 0)} of years twice; useful 0–20), turnover cap "
        f"{'-' if lim.max_turnover is None else pct(lim.max_turnover, 1)}, ladder "
        f"{', '.join(f'{pct(r.min_share, 1)} within {r.days:g} d' for r in lim.ladder) or '-'}, horizon "
        f"{lim.horizon_days:g} d, min move {lim.min_move_eth:g} ETH, no-trade band: each move gains "
        f"{lim.trade_cost_multiple:g}× its round-trip cost and the plan ≥ {lim.min_improvement_bps:g} bp/yr"
    )
    console.print("sources: " + ", ".join(f"{n} ({s.adapter})" for n, s in sorted(settings.sources.items())))


def history_table(console: Console, rows: Sequence[ListedProposalRow]) -> None:
    table = Table(title="Proposals (newest first)")
    for col in (
        "id",
        "time (UTC)",
        "trigger",
        "mode",
        "status",
        "moves",
        "turnover",
        "yield",
        "CVaR",
        "gain",
    ):
        table.add_column(
            col,
            justify="right" if col in ("moves", "turnover", "yield", "CVaR", "gain") else "left",
            no_wrap=col == "id",  # a whole id, to paste into `aggregator show`
            min_width=max((len(r.id) for r in rows), default=2) if col == "id" else None,
        )
    for r in rows:
        table.add_row(
            r.id,
            "[red]damaged[/]" if r.created_at is None else f"{r.created_at:%Y-%m-%d %H:%M}",
            r.trigger,
            r.mode.replace("_", " "),
            r.status,
            str(r.moves),
            pct(r.turnover, 1),
            f"{pct(r.yield_before, 2)} → {pct(r.yield_after, 2)}",
            f"{pct(r.cvar_before, 2)} → {pct(r.cvar_after, 2)}",
            f"{r.gain_bps:.1f} bp",
        )
    console.print(table)
    if not rows:
        console.print("no proposals yet: `aggregator rebalance` makes one")


def backtest_table(console: Console, result: Backtest) -> None:
    days = result.replay.days
    table = Table(
        title=f"Backtest {days[0]} → {days[-1]} ({len(days)} days, {result.replay.start_eth:,.0f} ETH)",
        title_justify="left",
    )
    for i, head in enumerate(TABLE_HEAD):
        table.add_column(head, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows(result):
        table.add_row(*row)
    console.print(table)


def incidents_table(console: Console, result: Backtest) -> None:
    """The real incidents replayed on the backtest: each strategy's stake and loss, with the basis (the book of the
    day before, or the window's last book N days before the event); an incident not replayed says why."""
    if result.universe is None:
        return
    for inc in replay_incidents(result.replay, result.universe):
        if not inc["replayed"]:
            console.print(f"incident {inc['name']} ({inc['on']}): not replayed, {inc['why']}")
            continue
        table = Table(
            title=f"Incident {inc['name']} ({inc['on']}, node {inc['node']}): basis {inc['basis']} "
            f"(book of {inc['book_day']})",
            title_justify="left",
        )
        for i, head in enumerate(("strategy", "at stake ETH", "share", "loss sold at the low", "loss held")):
            table.add_column(head, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for r in inc["strategies"]:
            table.add_row(
                r["strategy"],
                f"{r['at_stake_eth']:,.2f}",
                pct(r["at_stake_share"], 1),
                f"{r['loss_if_sold_eth']:,.2f}",
                f"{r['loss_if_held_eth']:,.2f}",
            )
        console.print(table)


EVENT_WORDS = {"request": "request", "claim": "claim", "sell": "sell (DEX)", "deposit": "deposit"}


def timeline_table(console: Console, timeline: Timeline, names: Mapping[str, str] | None = None) -> None:
    """The moves as the chain allows them: day, date, what, ETH; then when each venue reaches its target and the
    capital that earns nothing meanwhile."""
    known = names or {}
    table = Table(title=f"Timeline from {timeline.start.isoformat()} (done on day {timeline.days})")
    for col in ("day", "date", "do", "from", "to", "ETH", "move", "due"):
        table.add_column(col, justify="right" if col in ("day", "ETH", "move", "due") else "left")
    for e in timeline.events:
        table.add_row(
            str(e.day),
            e.date.isoformat(),
            EVENT_WORDS[e.kind],
            known.get(e.from_venue, e.from_venue),
            known.get(e.to_venue, e.to_venue),
            f"{e.amount_eth:,.4f}",
            str(e.move),
            f"claim day {e.claim_day}" if e.claim_day is not None else "",
        )
    console.print(table)
    reached = ", ".join(
        f"{known.get(v, v)} day {d}"
        for v, d in sorted(timeline.reached.items(), key=lambda kv: (kv[1], kv[0]))
    )
    console.print(f"target reached: {reached}")
    redated = timeline.redated_dict()
    if redated is not None:  # a later applied plan's exits hold the deposits back in the book
        console.print(f"[yellow]deposits on day {redated['day']} ({redated['date']})[/]: {redated['why']}")
    for i in timeline.idle:
        console.print(
            f"[yellow]earns nothing[/] {i.amount_eth:,.4f} ETH days {i.from_day}–{i.to_day} ({i.why})"
        )


def simulation_report(console: Console, listed: Mapping[str, object]) -> None:
    """The Safe batches' simulation per day and step (from the batch summary): nothing when none was run."""
    block = listed.get("simulated_at_block")
    if block is None:
        return
    table = Table(title=f"Safe batches simulated with eth_call from the Safe at block {block} (nothing sent)")
    for col in ("day", "step", "call", "status", "reason"):
        table.add_column(col, justify="right" if col in ("day", "step") else "left")
    days = listed.get("days")
    for day in days if isinstance(days, list) else []:
        for step, call in enumerate(day["calls"], 1):
            sim = call.get("simulation")
            if sim is None:
                continue
            status = {"ok": "ok", "blocked": "[red]BLOCKED[/]", "unverified": "[yellow]unverified[/]"}
            table.add_row(
                str(day["day"]),
                str(step),
                call["function"],
                status.get(sim["status"], sim["status"]),
                escape(sim["reason"]),
            )
    console.print(table)
