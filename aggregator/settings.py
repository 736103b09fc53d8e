"""Settings: one TOML file from `config/` plus `AGGREGATOR_…` environment overrides (`__` nests:
`AGGREGATOR_LIMITS__CVAR_BUDGET=0.04`). Loaded once at the edge with `load_settings(path)` and passed down.

Every error names the key, the bad value and what would be valid; a percent written where a fraction belongs
(cvar_budget = 5 instead of 0.05) is called out as such.
"""

from __future__ import annotations

import tomllib
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters import REGISTRY, AnySourceSettings
from adapters.static import StaticSettings
from aggregator.backtest.config import BacktestSettings
from aggregator.crosscheck import CrossCheckSettings, check_bounds
from aggregator.errors import ConfigError
from aggregator.notify import NotifySettings
from optimizer import (
    ExitRoute,
    Limits,
    RiskNode,
    StressScenario,
    Universe,
    Venue,
    VenueKind,
    YieldComponent,
)

ENV_PREFIX = "AGGREGATOR_"
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuoteRef(_Section):
    """Where one yield component is read: a source name and the key that source knows it by."""

    source: str
    key: str


class ComponentSettings(_Section):
    name: str = Field(min_length=1)
    haircut: Fraction = 0.0
    quotes: tuple[QuoteRef, ...] = Field(min_length=1)
    note: str = ""
    plausible: tuple[float, float] | None = Field(
        default=None,
        description="[low, high] fractions per year; quotes outside are rejected ([rates] defaults)",
    )

    @field_validator("plausible")
    @classmethod
    def _plausible(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        return None if value is None else check_bounds(value)


class VenueSettings(_Section):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    parent: str | None = None
    kind: VenueKind
    name: str = ""
    risk_nodes: tuple[str, ...] = ()
    components: tuple[ComponentSettings, ...] = ()
    exit_days: float = Field(default=0.0, ge=0.0, le=365.0, description="legacy: prefer exit_routes")
    entry_cost: Fraction = 0.0
    exit_cost: Fraction = Field(default=0.0, description="legacy: prefer exit_routes")
    exit_routes: tuple[ExitRoute, ...] = Field(
        default=(),
        description='ways back into the parent, e.g. [{kind = "queue", days = 14}, {kind = "dex", fee = 0.002}]; '
        "the model uses the cheaper one",
    )
    min_share: Fraction = 0.0
    max_share: Fraction = 1.0

    @model_validator(mode="after")
    def _one_exit_spelling(self) -> VenueSettings:
        if self.exit_routes and (self.exit_days or self.exit_cost):  # a dumped Venue has both at 0
            raise ValueError(
                "give either exit_routes or the legacy exit_days/exit_cost, not both "
                '(exit_routes = [{kind = "queue", days = 14}, {kind = "dex", fee = 0.002}])'
            )
        return self


class RiskNodeSettings(_Section):
    id: str = Field(min_length=1)
    p: Fraction
    lgd: Fraction
    parents: tuple[str, ...] = ()
    cap: Fraction | None = None
    note: str = ""


class PortfolioSettings(_Section):
    holdings_eth: dict[str, Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = Field(min_length=1)
    size_eth: float | None = Field(default=None, gt=0.0)


class ScheduleSettings(_Section):
    rates_every_minutes: float = Field(default=15.0, gt=0.0, le=1440.0)
    rebalance_cron: str = "0 */6 * * *"
    rebalance_every_minutes: float | None = Field(
        default=None,
        gt=0.0,
        le=10_080.0,
        description="propose at this fixed interval instead of rebalance_cron (e.g. 0.01 for a soak test)",
    )
    rebalance_on_start: bool = True
    misfire_grace_seconds: int = Field(default=300, ge=1)
    shutdown_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="on SIGTERM, how long a running cycle may take to finish"
    )
    cycle_timeout_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="the rebalance lease's lifetime"
    )

    @field_validator("rebalance_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value, timezone=UTC)
        except ValueError as exc:
            raise ValueError(
                f"not a valid crontab expression ({exc}); use five fields: minute hour day month weekday, "
                "e.g. '0 */6 * * *'"
            ) from exc
        return value


class DatabaseSettings(_Section):
    url: str = Field(
        default="sqlite:///aggregator.sqlite",
        description="SQLAlchemy URL; a relative SQLite path is relative to the config file's folder",
    )
    busy_timeout_seconds: float = Field(
        default=10.0, ge=0, le=600, description="SQLite: how long a write waits for another writer's lock"
    )


class ApiSettings(_Section):
    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="0.0.0.0 only behind a firewall or inside a container")
    port: int = Field(default=8787, ge=0, le=65535)
    token: SecretStr | None = Field(
        default=None,
        description="bearer token for state changes (16 characters at least, else none); set it from the env",
    )
    threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="threads serving database reads; more queue in order, so /health stays fast under load",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024, description="largest request body (413 past it)"
    )
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="a request body must arrive within this (408 past it)"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="a request's headers must arrive within this (408, closed)"
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, le=300, description="an idle keep-alive connection is closed after this"
    )
    max_connections: int = Field(
        default=256,
        ge=4,
        le=10_000,
        description="open connections at most; idle ones make room for new ones, 503 when all are busy",
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    """The whole configuration of one deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    portfolio: PortfolioSettings
    venues: tuple[VenueSettings, ...] = Field(min_length=1)
    risk_nodes: tuple[RiskNodeSettings, ...] = ()
    stress: tuple[StressScenario, ...] = ()
    limits: Limits = Limits()
    sources: dict[str, Annotated[AnySourceSettings, Field(discriminator="adapter")]] = Field(min_length=1)
    rates: CrossCheckSettings = CrossCheckSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    notify: NotifySettings = NotifySettings()
    logging: LoggingSettings = LoggingSettings()
    backtest: BacktestSettings | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (the file's values arrive as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        venues = {v.id for v in self.venues}
        for v in self.venues:
            for c in v.components:
                for ref in c.quotes:
                    if ref.source not in self.sources:
                        raise ValueError(
                            f"venues[{v.id}].components[{c.name}].quotes: source {ref.source!r} is not defined; "
                            f"defined sources: {sorted(self.sources)}"
                        )
                    src = self.sources[ref.source]
                    supported = REGISTRY[src.adapter].keys
                    if supported is not None and ref.key not in supported:
                        raise ValueError(
                            f"venues[{v.id}].components[{c.name}].quotes: source {ref.source!r} "
                            f"({src.adapter}) has no key {ref.key!r}; it has {sorted(supported)}"
                        )
                    if isinstance(src, StaticSettings) and ref.key not in src.values:
                        raise ValueError(
                            f"venues[{v.id}].components[{c.name}].quotes: static source {ref.source!r} has no "
                            f"value {ref.key!r}; it has {sorted(src.values)}"
                        )
        unknown = sorted(set(self.portfolio.holdings_eth) - venues)
        if unknown:
            raise ValueError(f"portfolio.holdings_eth: unknown venues {unknown}; valid: {sorted(venues)}")
        total = sum(self.portfolio.holdings_eth.values())
        if total <= 0:
            raise ValueError("portfolio.holdings_eth: holdings sum to 0 ETH; at least one must be positive")
        size = self.portfolio.size_eth
        if size is not None and abs(size - total) > 1e-6 * max(size, 1.0):
            raise ValueError(
                f"portfolio.size_eth = {size} but holdings_eth sum to {total}; make them agree or drop size_eth"
            )
        self.universe()  # tree, node and stress consistency, with the optimizer's own checks
        if self.backtest is not None:
            self._check_backtest(self.backtest)
        return self

    def _check_backtest(self, bt: BacktestSettings) -> None:
        components = {f"{v.id}.{c.name}" for v in self.venues for c in v.components}
        venues = {v.id for v in self.venues}
        nodes = {n.id for n in self.risk_nodes}
        for s in bt.series:
            if s.component not in components:
                raise ValueError(
                    f"backtest.series: component {s.component!r} is not a venue component; "
                    f"valid: {sorted(components)}"
                )
        for name, weights in bt.fixed.items():
            bad = sorted(set(weights) - venues)
            if bad:
                raise ValueError(f"backtest.fixed[{name!r}]: unknown venues {bad}; valid: {sorted(venues)}")
        for e in bt.stress:
            if e.node not in nodes:
                raise ValueError(f"backtest.stress: unknown risk node {e.node!r}; valid: {sorted(nodes)}")
            if not bt.start <= e.on <= bt.end:
                raise ValueError(f"backtest.stress[{e.node}]: date {e.on} is outside {bt.start}..{bt.end}")

    @property
    def portfolio_eth(self) -> float:
        return sum(self.portfolio.holdings_eth.values())

    def universe(self) -> Universe:
        try:
            return Universe(
                venues=tuple(
                    Venue(
                        id=v.id,
                        parent=v.parent,
                        kind=v.kind,
                        components=tuple(
                            YieldComponent(name=c.name, haircut=c.haircut) for c in v.components
                        ),
                        risk_nodes=v.risk_nodes,
                        entry_cost=v.entry_cost,
                        min_share=v.min_share,
                        max_share=v.max_share,
                        exit_days=v.exit_days,
                        exit_cost=v.exit_cost,
                        exit_routes=v.exit_routes,
                    )
                    for v in self.venues
                ),
                nodes=tuple(
                    RiskNode(id=n.id, p=n.p, lgd=n.lgd, parents=n.parents, cap=n.cap) for n in self.risk_nodes
                ),
                stress=self.stress,
            )
        except ValidationError as exc:
            raise ValueError(
                "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            ) from exc


def load_settings(path: Path) -> Settings:
    """Read, validate and return the settings, or raise ConfigError saying exactly what is wrong."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file not found: {path} (pass --config PATH or set {ENV_PREFIX}CONFIG)"
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"config path is a directory, not a TOML file: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    _resolve_paths(raw, path.parent)
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid configuration\n" + format_errors(exc, raw)) from exc


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Snapshot paths and relative SQLite paths in the file are relative to the file's folder."""
    db = raw.setdefault("database", {})
    if isinstance(db, dict):
        url = db.get("url", DatabaseSettings.model_fields["url"].default)
        if isinstance(url, str) and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = url.removeprefix("sqlite:///")
            if not Path(path).is_absolute():
                db["url"] = f"sqlite:///{(base / path).resolve()}"
    bt = raw.get("backtest")
    if isinstance(bt, dict):
        for key in ("cache_dir", "output_dir"):
            if isinstance(bt.get(key), str) and not Path(bt[key]).is_absolute():
                bt[key] = str((base / bt[key]).resolve())
        bt.setdefault("cache_dir", str((base / "../var/history").resolve()))
        bt.setdefault("output_dir", str((base / "../var/backtest").resolve()))
        for series in bt.get("series") or []:
            given = series.get("path") if isinstance(series, dict) else None
            if isinstance(given, str) and not Path(given).is_absolute():
                series["path"] = str((base / given).resolve())
    for src in (raw.get("sources") or {}).values():
        if isinstance(src, dict) and src.get("adapter") == "snapshot":
            p = src.get("path")
            if isinstance(p, str) and not Path(p).is_absolute():
                src["path"] = str((base / p).resolve())


def format_errors(exc: ValidationError, raw: dict[str, Any]) -> str:
    """One line per error: the key (venues by id, not index), the bad value, what would be valid."""
    lines = []
    for err in exc.errors():
        loc = _key(err["loc"], raw)
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) or err["type"] == "missing" else f" = {value!r}"
        hint = ""
        ctx = err.get("ctx") or {}
        if (
            err["type"] == "less_than_equal"
            and ctx.get("le") == 1.0
            and isinstance(value, int | float)
            and 1.0 < value <= 100.0
        ):
            hint = f" (looks like a percent: fractions are used, write {value / 100:g} for {value:g} %)"
        if err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  - {loc or '(top level)'}{shown}: {msg}{hint}")
    return "\n".join(lines)


def _key(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            entry = node[item]
            ident = entry.get("id") or entry.get("name") if isinstance(entry, dict) else None
            parts[-1:] = [f"{parts[-1]}[{ident if ident else item}]"] if parts else [f"[{item}]"]
            node = entry
            continue
        if isinstance(item, str) and item in ("function-after[_cross_checks(), Settings]",):
            continue
        parts.append(str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)
