"""The risk scorecard: a TOML file the operator owns, one `[nodes.ID]` table per risk node of the config.

A node is either *scored* (every attribute of `SCORED` given, each with its source under `[nodes.ID.sources]`) or
*overridden* (`[nodes.ID.override]` with `p`, `lgd` and the `reason`); a scored node may also override one of the
two. `derive` turns the cards into priors with the mapping version the file names (`version = "v1"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from aggregator.core.errors import ConfigError
from aggregator.core.tomlfile import read_toml
from aggregator.risk.mapping import MAPPINGS, SCALES, SCORED, Custody, Mapping, Score, score, years_between

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
MAX_FILE_BYTES = 1 << 20
MAX_NODES = 400  # as many as a config's risk nodes may be
OPTIONAL_FACTS = ("tvl_usd", "max_slashable", "worst_depeg")


def _points(name: str) -> Any:
    return Field(default=None, ge=0, le=SCALES[name].high, description=SCALES[name].describe())


class Override(BaseModel):
    """A hand-set p and/or lgd, with the reason an operator would defend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    p: Fraction | None = None
    lgd: Fraction | None = None
    reason: str = Field(min_length=10, description="why the mapping's value is not used (a sentence)")

    @model_validator(mode="after")
    def _something(self) -> Override:
        if self.p is None and self.lgd is None:
            raise ValueError("an override sets p, lgd or both (and gives its reason)")
        return self


class NodeCard(BaseModel):
    """One risk node's observable attributes, where each comes from, and any override."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    since: date | None = Field(default=None, description="in production since (age = as_of − since)")
    tvl_usd: float | None = Field(default=None, ge=0.0, le=1e13, allow_inf_nan=False)
    audits: StrictInt | None = _points("audits")
    incidents: StrictInt | None = _points("incidents")
    admin: StrictInt | None = _points("admin")
    oracle: StrictInt | None = _points("oracle")
    withdrawal: StrictInt | None = _points("withdrawal")
    custody: Custody | None = None
    slashing_live: StrictBool | None = None
    max_slashable: Fraction = Field(default=0.0, description="the largest share slashing may take")
    worst_depeg: Fraction | None = Field(
        default=None, description="recorded, not scored: market, not backing"
    )
    sources: dict[str, Annotated[str, Field(min_length=3)]] = Field(default_factory=dict)
    override: Override | None = None
    note: str = ""

    @model_validator(mode="after")
    def _scored_or_overridden(self) -> NodeCard:
        given = [a for a in SCORED if getattr(self, a) is not None]
        if not given:
            if self.override is None or self.override.p is None or self.override.lgd is None:
                raise ValueError(
                    f"neither a score nor an override: give the attributes {list(SCORED)} with a source each, "
                    "or an override with p, lgd and a reason"
                )
        elif len(given) < len(SCORED):
            missing = [a for a in SCORED if a not in given]
            raise ValueError(
                f"scored attributes missing: {missing} (a scored node gives all of {list(SCORED)})"
            )
        facts = [*given, *(a for a in OPTIONAL_FACTS if a in self.model_fields_set)]
        unsourced = [a for a in facts if a not in self.sources]
        if unsourced:
            raise ValueError(
                f'no source for {unsourced}: add sources.{unsourced[0]} = "where the fact comes from" '
                "(write [U] and why for an assumption)"
            )
        stray = sorted(set(self.sources) - set(SCORED) - set(OPTIONAL_FACTS))
        if stray:
            raise ValueError(f"sources for unknown attributes {stray}; valid: {[*SCORED, *OPTIONAL_FACTS]}")
        return self


class Scorecard(BaseModel):
    """The whole file: the mapping version it is scored for, the date its facts describe, the nodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    as_of: date
    nodes: dict[str, NodeCard] = Field(min_length=1, max_length=MAX_NODES)

    @model_validator(mode="after")
    def _known_version_and_dates(self) -> Scorecard:
        if self.version not in MAPPINGS:
            raise ValueError(f"version {self.version!r} is not a known mapping; valid: {sorted(MAPPINGS)}")
        for node_id, card in self.nodes.items():
            if card.since is not None and card.since > self.as_of:
                raise ValueError(f"nodes.{node_id}.since = {card.since} is after as_of = {self.as_of}")
        return self

    @property
    def mapping(self) -> Mapping:
        return MAPPINGS[self.version]


@dataclass(frozen=True)
class Prior:
    """A node's prior as the plan uses it, and how it was reached."""

    node: str
    card: NodeCard
    score: Score | None
    age_years: float | None
    p: float
    lgd: float

    @property
    def overridden(self) -> tuple[str, ...]:
        o = self.card.override
        return () if o is None else tuple(k for k in ("p", "lgd") if getattr(o, k) is not None)


def derive(card: Scorecard) -> dict[str, Prior]:
    """Every node's prior: the mapping's value, replaced by the override where one is given."""
    out: dict[str, Prior] = {}
    for node_id, c in card.nodes.items():
        s: Score | None = None
        age: float | None = None
        if c.since is not None:
            age = years_between(c.since, card.as_of)
            s = score(
                card.mapping,
                age_years=age,
                audits=c.audits or 0,
                incidents=c.incidents or 0,
                admin=c.admin or 0,
                oracle=c.oracle or 0,
                withdrawal=c.withdrawal or 0,
                custody=c.custody or "contract",
                slashing_live=bool(c.slashing_live),
                max_slashable=c.max_slashable,
                tvl_usd=c.tvl_usd,
            )
        o = c.override
        p = o.p if o is not None and o.p is not None else s.p if s is not None else 0.0
        lgd = o.lgd if o is not None and o.lgd is not None else s.lgd if s is not None else 0.0
        out[node_id] = Prior(node=node_id, card=c, score=s, age_years=age, p=p, lgd=lgd)
    return out


def load_scorecard(path: Path) -> Scorecard:
    """Read and check a scorecard file, or raise ConfigError naming the key, the value and what is valid."""
    raw = read_toml(
        path,
        what="risk scorecard",
        hint="risk.scorecard is relative to the config",
        max_bytes=MAX_FILE_BYTES,
        typical="a scorecard is a few KB",
    )
    try:
        return Scorecard.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid risk scorecard\n" + _format(exc)) from exc


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
        key = ".".join(loc) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) or err["type"] == "missing" else f" = {value!r}"
        scale = SCALES.get(loc[-1]) if loc else None
        hint = f" (scale 0–{scale.high}: {scale.describe()})" if scale is not None and shown else ""
        if err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  - {key}{shown}: {msg}{hint}")
    return "\n".join(lines)
