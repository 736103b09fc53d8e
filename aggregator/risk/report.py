"""`aggregator risk`: the scorecard table for people (rich) or machines (JSON). Percent only in the table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aggregator.risk.calibration import claims
from aggregator.risk.mapping import SCORED
from aggregator.risk.market import MarketRisk
from aggregator.risk.scorecard import Prior, derive, load_scorecard
from aggregator.risk.sensitivity import Sensitivity
from optimizer import RiskNode

ATTRS = ("audits", "incidents", "admin", "oracle", "withdrawal")


def priors_of(scorecard: Path | None) -> dict[str, Prior] | None:
    """The scorecard's priors, or None when the config types its own (no scorecard)."""
    return None if scorecard is None else derive(load_scorecard(scorecard))


def as_json(risk_nodes: Sequence[RiskNode], scorecard: Path | None) -> dict[str, Any]:
    """The config's risk nodes (as the plan uses them) with their scorecard, and the calibration claims."""
    priors = priors_of(scorecard)
    nodes: list[dict[str, Any]] = []
    for n in risk_nodes:
        row: dict[str, Any] = {"node": n.id, "p": n.p, "lgd": n.lgd, "parents": list(n.parents), "cap": n.cap}
        prior = priors.get(n.id) if priors else None
        if prior is not None:
            card = prior.card
            row |= {
                "name": card.name,
                "attributes": card.model_dump(mode="json", exclude={"sources", "override", "note", "name"}),
                "age_years": prior.age_years,
                "points": dict(prior.score.points) if prior.score else None,
                "total": prior.score.total if prior.score else None,
                "grade": prior.score.grade if prior.score else None,
                "mapped": {"p": prior.score.p, "lgd": prior.score.lgd} if prior.score else None,
                "override": card.override.model_dump(mode="json") if card.override else None,
                "sources": dict(card.sources),
            }
        nodes.append(row)
    out: dict[str, Any] = {"scorecard": None if scorecard is None else str(scorecard)}
    if priors is not None and scorecard is not None:
        out["mapping"] = load_scorecard(scorecard).version
        out["calibration"] = [vars(c) for c in claims(priors)]
    out["nodes"] = nodes
    return out


def render(console: Console, risk_nodes: Sequence[RiskNode], scorecard: Path | None) -> None:
    """The table for people: per node its attributes, grade, p and lgd; overrides; every fact's source; claims."""
    priors = priors_of(scorecard)
    if priors is None:
        console.print(
            "[yellow]no risk.scorecard[/]: p and lgd are typed in the config, with no recorded source"
        )
    table = Table(
        title="Risk priors (p: annual probability of a loss event; lgd: share lost when it happens)"
    )
    for col in (
        "node",
        "grade",
        "p / yr",
        "lgd",
        "age",
        "TVL",
        "aud inc adm orc wdr",
        "custody",
        "slash",
        "fails with",
    ):
        table.add_column(col, justify="right" if col in ("p / yr", "lgd", "age", "TVL") else "left")
    for n in risk_nodes:
        prior = priors.get(n.id) if priors else None
        parents = ", ".join(n.parents) or "-"
        if prior is None or prior.score is None:
            grade = "override" if prior is not None else "typed"
            table.add_row(n.id, grade, _pct(n.p), _pct(n.lgd, 1), "", "", "", "", "", parents)
            continue
        c, s = prior.card, prior.score
        marks = {"p": "*" if "p" in prior.overridden else "", "lgd": "*" if "lgd" in prior.overridden else ""}
        table.add_row(
            n.id,
            f"{s.grade} ({s.total})",
            _pct(n.p) + marks["p"],
            _pct(n.lgd, 1) + marks["lgd"],
            f"{prior.age_years:.1f} y",
            "-" if c.tvl_usd is None else f"${c.tvl_usd / 1e9:.2f} bn",
            "   ".join(str(getattr(c, a)) for a in ATTRS),
            str(c.custody),
            ("live" + (f" ≤ {c.max_slashable * 100:.0f} %" if c.max_slashable else ""))
            if c.slashing_live
            else "no",
            parents,
        )
    console.print(table)
    if priors is None:
        return
    console.print("* a hand override (reason below). Points per attribute and the mapping: docs/risk.md")
    for node_id, prior in priors.items():
        o = prior.card.override
        if o is not None:
            mapped = (
                f" (mapped: p {_pct(prior.score.p)}, lgd {_pct(prior.score.lgd, 1)})" if prior.score else ""
            )
            console.print(f"[bold]override[/] {node_id}{mapped}: {escape(o.reason)}")
    console.print(
        "\n[bold]Where each fact comes from[/] (\\[U]: an assumption, not in the project's evidence)"
    )
    for node_id, prior in priors.items():
        console.print(f"[bold]{node_id}[/] {prior.card.name}")
        for key in (*SCORED, "tvl_usd", "max_slashable", "worst_depeg"):
            if key in prior.card.sources:
                console.print(f"  {key}: {escape(prior.card.sources[key])}")
    cal = Table(title="Calibration of the mapping on the evidence (docs/risk.md)")
    for col in ("claim", "evidence", "figure", "holds"):
        cal.add_column(col)
    for claim in claims(priors):
        cal.add_row(
            escape(claim.name),
            escape(claim.evidence),
            escape(claim.figure),
            "[green]yes[/]" if claim.holds else "[red]NO[/]",
        )
    console.print(cal)


def _pct(x: float, digits: int = 3) -> str:
    return f"{x * 100:.{digits}f} %"


def render_sensitivity(console: Console, s: Sensitivity, top: int = 12) -> None:
    """The assumptions that move the target most, each with the venue it moves and the yield and CVaR it gives."""
    console.print(
        f"\n[bold]Sensitivity[/]: {len(s.variants)} re-solves (each node's p and lgd × 0.5 and × 2, the CVaR budget "
        f"± 1 pp); base {s.base_status}, net yield {_pct(s.base_yield)}, CVaR {_pct(s.base_cvar)}"
    )
    table = Table(title=f"The {min(top, len(s.variants))} assumptions that move the plan most")
    for col in (
        "assumption",
        "value",
        "status",
        "largest weight change",
        "net yield",
        "CVaR",
        "other changes",
    ):
        table.add_column(col, justify="left" if col in ("assumption", "status", "other changes") else "right")
    for v in s.variants[:top]:
        others = ", ".join(f"{k} {d * 100:+.1f}" for k, d in v.changes.items() if k != v.venue)
        table.add_row(
            v.assumption,
            f"{v.value:.4g}",
            v.status,
            f"{v.venue} {v.max_change * 100 * (1 if v.changes.get(v.venue, 0) >= 0 else -1):+.2f} pp"
            if v.venue
            else "none",
            _pct(v.net_yield),
            _pct(v.cvar),
            others or "-",
        )
    console.print(table)
    held = [v for v in s.variants[:top] if v.status == "hold"]
    for v in held:
        console.print(f"{escape(v.assumption)}: hold, {escape(v.reason)} (the target is the current book)")
    still = [v.assumption for v in s.variants if not v.venue]
    if still:
        console.print(f"no change in the target: {len(still)} of {len(s.variants)} variants")


def render_market(console: Console, m: MarketRisk, book: str) -> None:
    """Each token's exit priced under its depeg, then the ladder's price if the queues stall."""
    exits = Table(
        title="Market risk: each exit under a depeg of its token (sold now vs waiting in the queue)"
    )
    for col in ("venue", "depeg", "sell now (DEX)", "wait (queue)", "depeg source"):
        exits.add_column(col, justify="left" if col in ("venue", "depeg source") else "right")
    for e in m.exits:
        exits.add_row(
            e.venue,
            _pct(-e.depeg, 2),
            "no market route" if e.sell_now is None else _pct(-e.sell_now, 2),
            "no queue" if e.queue_days is None else f"{e.queue_days:g} d, yield forgone only",
            escape(e.depeg_source),
        )
    console.print(exits)
    ladder = Table(
        title=f"The liquidity ladder if the queues stall ({book}): idle ETH and market sales at the depeg only"
    )
    for col in ("rung", "needs", "counted at par", "idle", "sold", "sale loses", "cannot be raised"):
        ladder.add_column(col, justify="left" if col in ("rung", "sold") else "right")
    for r in m.rungs:
        ladder.add_row(
            f"{r.days:g} d",
            _pct(r.min_share, 1),
            _pct(r.at_par, 1),
            _pct(r.idle, 1),
            ", ".join(f"{v} {_pct(x, 1)}" for v, x in r.sold.items()) or "-",
            f"{r.loss_eth:,.1f} ETH ({r.loss_bps:.1f} bp)",
            _pct(r.short, 1) if r.short > 1e-9 else "-",
        )
    console.print(ladder)
