"""Settings: one TOML file from `config/` plus `AGGREGATOR_…` environment overrides (`__` nests:
`AGGREGATOR_LIMITS__CVAR_BUDGET=0.04`). Loaded once at the edge with `load_settings(path)` and passed down.

Every error names the key, the bad value and what would be valid; a percent written where a fraction belongs
(cvar_budget = 5 instead of 0.05) is called out as such. Every numeric setting has a range, and the size of what
the model accepts is bounded (`MAX_*` below, with the reason in the error), so a config that loads can be run.
A file that is not UTF-8, larger than 1 MiB, nested absurdly deep, or an environment override that does not parse
is a ConfigError too, never a traceback.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta
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
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from adapters import REGISTRY, AnySourceSettings
from adapters.static import StaticSettings
from aggregator.core.errors import ConfigError
from aggregator.core.tomlfile import read_toml
from aggregator.risk.apply import RiskSettings, apply_scorecard
from aggregator.risk.market import depegs
from aggregator.risk.scorecard import Prior
from aggregator.settings.alerts import AlertSettings
from aggregator.settings.backtest import BacktestSettings
from aggregator.settings.coordination import CoordinationSettings
from aggregator.settings.notify import NotifySettings
from aggregator.settings.rates import Bounds, CrossCheckSettings, check_bounds_early
from optimizer import (
    ExitRoute,
    LadderRung,
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
MAX_ETH = 1e9  # per holding: several times all ETH in existence, so any sum of holdings stays finite
MAX_FILE_BYTES = 1 << 20  # a config file; the bundled ones are ~20 KB


# How large a universe the model accepts, each well above real use and the optimizer benchmark (1,000 venues,
# 200 risk nodes), with why, for the error message. Larger ones took minutes and gigabytes before failing.
MAX_VENUES = 2000
MAX_RISK_NODES = 400
MAX_NODES_PER_VENUE = 32
MAX_NODE_PARENTS = 16
MAX_STRESS = 200
MAX_COMPONENTS = 16
MAX_QUOTES = 16
MAX_SOURCES = 100
WHY = {
    "venues": "each venue adds variables to every failure scenario; the benchmarks run 1,000",
    "risk_nodes": "every single and pair failure of risk nodes is a scenario (n² growth: 400 nodes are ~80,000 "
    "scenarios); the benchmarks run 200",
    "parents": "a risk node's ancestors all fail with it",
    "stress": "each named stress scenario is a constraint in every solve",
    "components": "yield components per venue",
    "quotes": "quotes per component (their median is used)",
    "sources": "each source is fetched every cycle",
    "holdings_eth": "one holding per venue",
}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuoteRef(_Section):
    """Where one yield component is read: a source name and the key that source knows it by."""

    source: str
    key: str


class ComponentSettings(_Section):
    name: str = Field(min_length=1)
    haircut: Fraction = 0.0
    quotes: tuple[QuoteRef, ...] = Field(min_length=1, max_length=MAX_QUOTES)
    note: str = ""
    plausible: Bounds | None = Field(
        default=None,
        description="[low, high] fractions per year; quotes outside are rejected ([rates] defaults)",
    )

    @field_validator("plausible", mode="before")
    @classmethod
    def _plausible(cls, value: object) -> object:
        return None if value is None else check_bounds_early(value)


class VenueSettings(_Section):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    parent: str | None = None
    kind: VenueKind
    name: str = ""
    risk_nodes: tuple[str, ...] = Field(default=(), max_length=MAX_NODES_PER_VENUE)
    components: tuple[ComponentSettings, ...] = Field(default=(), max_length=MAX_COMPONENTS)
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
    parents: tuple[str, ...] = Field(default=(), max_length=MAX_NODE_PARENTS)
    cap: Fraction | None = None
    note: str = ""


class PortfolioSettings(_Section):
    holdings_eth: dict[str, Annotated[float, Field(ge=0.0, le=MAX_ETH, allow_inf_nan=False)]] = Field(
        min_length=1, max_length=MAX_VENUES
    )
    size_eth: float | None = Field(default=None, gt=0.0, le=MAX_ETH * MAX_VENUES)
    address: str | None = Field(
        default=None,
        description="the treasury's account (a Safe or any address): owner of the withdrawal requests and the "
        "Safe the Transaction Builder batches are made for",
    )
    rpc_url: str | None = Field(
        default=None,
        max_length=2048,
        description="an Ethereum JSON-RPC endpoint: with `address`, `aggregator book` reads what it holds on chain",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"0x[0-9a-fA-F]{40}", value) is None:
            raise ValueError("not an address; write 0x followed by 40 hex digits (the Safe's address)")
        return value


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
    misfire_grace_seconds: int = Field(default=300, ge=1, le=86_400)
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

    def longest_gap_seconds(self) -> float:
        """The longest wait between two scheduled rebalances (over the next eight days for a cron schedule)."""
        if self.rebalance_every_minutes is not None:
            return self.rebalance_every_minutes * 60.0
        trigger = CronTrigger.from_crontab(self.rebalance_cron, timezone=UTC)
        start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: a weekly schedule shows its whole week
        fire, gap = trigger.get_next_fire_time(None, start), 0.0
        while fire is not None and fire < start + timedelta(days=8):
            nxt = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
            if nxt is None:
                break
            gap, fire = max(gap, (nxt - fire).total_seconds()), nxt
        return gap or 86_400.0


class DatabaseSettings(_Section):
    url: str = Field(
        default="sqlite:///aggregator.sqlite",
        description="SQLAlchemy URL; a relative SQLite path is relative to the config file's folder. Unset in a "
        "config file: <config name>.sqlite beside the file, so two configs never share a store",
    )
    busy_timeout_seconds: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="how long a write waits for another writer's lock (SQLite busy_timeout, PostgreSQL lock_timeout)",
    )
    integrity_check_minutes: float = Field(
        default=60.0,
        gt=0,
        le=10_080,
        description="SQLite: the daemon quick-checks the file (and its write-ahead log) this often",
    )
    owner: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="this config's identity, recorded in the store it creates; a store is refused to another "
        "identity. Default: the config file's name without .toml",
    )
    adopt: bool = Field(
        default=False,
        description="take over a store another config created (its recorded owner becomes this config)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """A URL SQLAlchemy can parse, for a dialect and driver that are installed."""
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(
                "not a database URL; use sqlite:///PATH or postgresql+psycopg://user:pass@host/db"
            ) from exc
        try:
            url.get_dialect().import_dbapi()
        except (NoSuchModuleError, ImportError) as exc:
            raise ValueError(
                f"no driver installed for {url.drivername!r} ({exc}); SQLite needs nothing, PostgreSQL needs the "
                "postgres extra (pip install '.[postgres]') and postgresql+psycopg://…"
            ) from exc
        return value


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
    health_max_age_seconds: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86_400,
        description="/health and `aggregator health` report degraded (503, exit 1) when the last successful "
        "cycle is older than this; default: twice the longest gap of the rebalance schedule plus "
        "schedule.cycle_timeout_seconds",
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class LadderRungSettings(LadderRung):
    days: float = Field(ge=0.0, le=3650.0, allow_inf_nan=False)


class LimitsSettings(Limits):
    """The optimizer's limits with a range on every number (the optimizer itself takes any finite value)."""

    risk_aversion: float = Field(default=1.0, ge=0.0, le=1000.0, allow_inf_nan=False)
    tail_weight: float | None = Field(default=None, ge=0.0, le=100_000.0, allow_inf_nan=False)
    ladder: tuple[LadderRungSettings, ...] = Field(default=(), max_length=32)
    horizon_days: float = Field(default=365.0, gt=0.0, le=36_500.0, allow_inf_nan=False)
    min_move_eth: float = Field(default=0.0, ge=0.0, le=MAX_ETH, allow_inf_nan=False)
    min_improvement_bps: float = Field(default=0.0, ge=0.0, le=10_000.0, allow_inf_nan=False)
    gas_cost_eth: float = Field(default=0.0, ge=0.0, le=1000.0, allow_inf_nan=False)


class Settings(BaseSettings):
    """The whole configuration of one deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    portfolio: PortfolioSettings
    venues: tuple[VenueSettings, ...] = Field(min_length=1, max_length=MAX_VENUES)
    risk_nodes: tuple[RiskNodeSettings, ...] = Field(default=(), max_length=MAX_RISK_NODES)
    stress: tuple[StressScenario, ...] = Field(default=(), max_length=MAX_STRESS)
    limits: LimitsSettings = LimitsSettings()
    sources: dict[str, Annotated[AnySourceSettings, Field(discriminator="adapter")]] = Field(
        min_length=1, max_length=MAX_SOURCES
    )
    rates: CrossCheckSettings = CrossCheckSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    notify: NotifySettings = NotifySettings()
    alerts: AlertSettings = AlertSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    logging: LoggingSettings = LoggingSettings()
    backtest: BacktestSettings | None = None
    risk: RiskSettings = RiskSettings()

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
    def health_max_age_seconds(self) -> float:
        """How old the last successful cycle may be before health is degraded (`api.health_max_age_seconds`)."""
        if self.api.health_max_age_seconds is not None:
            return self.api.health_max_age_seconds
        return 2 * self.schedule.longest_gap_seconds() + self.schedule.cycle_timeout_seconds

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
    return settings_from_raw(_read_toml(path), path)


def settings_from_raw(raw: dict[str, Any], path: Path) -> Settings:
    """Validate a config's parsed TOML as the file at `path` (its folder resolves relative paths, its name is the
    store's identity): the one path from TOML to `Settings`, for `load_settings` and for tests that build a config
    by value."""
    db = raw.setdefault("database", {})
    if isinstance(db, dict):  # one store per config: its identity is the file's name unless it names another
        db.setdefault("url", f"sqlite:///{path.stem}.sqlite")
        db.setdefault("owner", path.stem)
    _resolve_paths(raw, path.parent)
    # p and lgd of every risk node from the scorecard, when one is named (in the file or the environment); a
    # config past the size bounds is refused by the schema below first, naming the bound, not node by node
    nodes = raw.get("risk_nodes")
    priors = None
    if not (isinstance(nodes, list) and len(nodes) > MAX_RISK_NODES):
        priors = apply_scorecard(raw, path.parent, os.environ.get(f"{ENV_PREFIX}RISK__SCORECARD"))
    try:
        return _with_sale_depegs(Settings(**raw), priors, path)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid configuration\n" + format_errors(exc, raw)) from exc
    except SettingsError as exc:  # an environment override that is not the JSON its section needs
        field = re.search(r'field "([^"]+)"', str(exc))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else f"an {ENV_PREFIX}… variable"
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(
            f"environment override {name} does not parse ({exc}{cause}); a whole section takes a JSON object, "
            f"e.g. {ENV_PREFIX}LIMITS='{{\"cvar_budget\": 0.05}}', or set one key: {ENV_PREFIX}LIMITS__CVAR_BUDGET=0.05"
        ) from exc
    except RecursionError as exc:
        raise ConfigError(
            f"{path}: a value (or an environment override) is nested too deeply to validate"
        ) from exc


def _with_sale_depegs(settings: Settings, priors: dict[str, Prior] | None, path: Path) -> Settings:
    """With `limits.forced_sale_budget`, every token venue's depeg in `limits.sale_depeg` as the market report
    prices it (its risk nodes' worst_depeg in the scorecard, else UNRECORDED_DEPEG); a depeg the operator gives
    there wins. ConfigError when `limits.sale_depeg` names a venue that is not a token (liquid staking or
    restaking)."""
    if settings.limits.forced_sale_budget is None and not settings.limits.sale_depeg:
        return settings
    found = {venue: size for venue, (size, _) in depegs(settings.universe(), priors).items()}
    bad = sorted(set(settings.limits.sale_depeg) - set(found))
    if bad:
        raise ConfigError(
            f"{path}: limits.sale_depeg names {bad}, which are not token venues (liquid staking or liquid "
            f"restaking); valid: {sorted(found)}"
        )
    if settings.limits.forced_sale_budget is None:
        return settings
    limits = settings.limits.model_copy(update={"sale_depeg": found | dict(settings.limits.sale_depeg)})
    return settings.model_copy(update={"limits": limits})


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML, refusing what no operator writes: over MAX_FILE_BYTES, not UTF-8, nested past
    MAX_NESTING."""
    return read_toml(
        path,
        what="config file",
        hint=f"pass --config PATH or set {ENV_PREFIX}CONFIG",
        max_bytes=MAX_FILE_BYTES,
        typical="a config is a few KB (the bundled ones ~20 KB)",
    )


def resolve_host(key: str, host: str) -> None:
    """A host name to listen on must resolve (ConfigError naming `key` otherwise)."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            f"{key} = {host!r} cannot be resolved ({exc}); use an address such as 127.0.0.1 or 0.0.0.0"
        ) from exc


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
        for key in ("cache_dir", "output_dir", "eth_store"):
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
        if err["type"] == "too_long":
            why = WHY.get(next((str(p) for p in reversed(err["loc"]) if str(p) in WHY), ""), "")
            hint = f" (at most {ctx.get('max_length')}{': ' + why if why else ''})"
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
