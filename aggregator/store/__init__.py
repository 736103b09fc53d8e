"""Persistence: SQLite by default (WAL), any SQLAlchemy URL (PostgreSQL works too). Migrations run at start-up.

Every collection is written in one transaction: a crash leaves the store as it was before it. An SQLite file is
quick-checked when opened and watched for a vanished write-ahead log; a damaged one is never written to
(`aggregator.store.integrity`). A cycle's write is fenced: it commits only while the cycle's lease epoch is current
(the leases themselves are `aggregator.coordination`, which hands `record_cycle` its fence).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy import (
    Connection,
    Engine,
    String,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from aggregator.core.clock import Clock
from aggregator.core.errors import (
    ConfigError,
    DamagedRecordError,
    StoreDamagedError,
    StoreError,
    StoreOwnerError,
)
from aggregator.core.modes import proposal_mode
from aggregator.rates.lineage import independent_of
from aggregator.store.integrity import (
    RECOVERY,
    WalWatch,
    check_file,
    damaged_error,
    integrity_report,
    sqlite_path,
)
from aggregator.store.ledger import Pending, Position, apply_moves
from aggregator.store.records import Collection, Fenced
from aggregator.store.rows import (
    LatestRates,
    ListedProposalRow,
    PlanLegs,
    ProposalRow,
    StoredRateRow,
    StoredRejection,
    release_days,
)
from aggregator.store.schema import (
    book,
    collections,
    in_flight,
    proposals,
    quotes,
    rates,
    rejections,
    store_owner,
)
from optimizer import Plan

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
Component = tuple[str, str]
R = TypeVar("R", bound=ProposalRow)
log = structlog.get_logger(__name__)
DAMAGE_MARKS = ("malformed", "not a database", "corrupt")  # an SQLite error that means the file is damaged


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)


def _meta_columns() -> list[Any]:
    """The proposals columns, `created_at` as stored (text on SQLite): a damaged value is reported by `_meta`
    for its row instead of failing the whole query in SQLAlchemy's converter."""
    return [type_coerce(c, String).label(c.name) if c.name == "created_at" else c for c in proposals.c]


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    """A proposal row with `created_at` an aware UTC datetime, or None and `damaged` saying why."""
    value = row.get("created_at")
    try:
        created = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return {**row, "created_at": None, "damaged": f"its time (created_at) {shown} is not a date and time"}
    return {**row, "created_at": _aware(created)}


def _row(model: type[R], meta: dict[str, Any]) -> R:
    """A proposal row as its typed model; a column that does not fit is reported as the row's damage (pydantic's
    errors stay in the store). `damaged` is set only when the row has it, as the listing's JSON shows it."""
    try:
        return model.model_validate(meta)
    except ValidationError as exc:
        raise DamagedRecordError(f"proposal {meta.get('id')} is damaged: its row {_why(exc)}") from exc


def _why(exc: Exception) -> str:
    """What is wrong with a stored plan, in one line: not JSON, or the first field that does not fit."""
    if not isinstance(exc, ValidationError):
        return f"does not parse: {exc}"
    errors = exc.errors()
    first = errors[0]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    if first["type"] == "json_invalid":
        return f"is not valid JSON: {first['msg']}{more}"
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "missing":
        return f"lacks the field {where!r}{more}"
    return f"does not parse: {where or '(top level)'}: {first['msg']}{more}"


def _sqlite_pragmas(busy_timeout_seconds: float) -> Callable[[Any, Any], None]:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute(
            "PRAGMA journal_mode=WAL"
        )  # readers never block the writer; CLI and daemon share the file
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(busy_timeout_seconds * 1000)}")
        cur.close()

    return apply


IDLE_IN_TRANSACTION_SECONDS = 5.0
"""PostgreSQL ends a session left idle inside a transaction this long: a client suspended mid-transaction (SIGSTOP,
a paused VM) would otherwise hold its row locks (the leader lease's, #18) until it resumes, and no replica could
take over. Our transactions never wait between statements."""


def _postgres_timeouts(busy_timeout_seconds: float) -> Callable[[Any, Any], None]:
    """A write waits at most `busy_timeout_seconds` for a row lock (as SQLite's busy timeout), then fails with
    a StoreError; a session idle in a transaction past IDLE_IN_TRANSACTION_SECONDS is ended by the server."""

    def apply(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute(f"SET lock_timeout = {max(1, round(busy_timeout_seconds * 1000))}")
        cur.execute(f"SET idle_in_transaction_session_timeout = {round(IDLE_IN_TRANSACTION_SECONDS * 1000)}")
        cur.close()
        dbapi_connection.commit()

    return apply


CONNECT_TIMEOUT_SECONDS = 10
"""PostgreSQL (libpq `connect_timeout`): a new connection whose server does not answer (a network partition: the
packets vanish, nothing is refused) fails after this long instead of waiting for ever."""
POSTGRES_TCP = {
    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    "keepalives": 1,  # an idle connection waiting for a reply finds a dead peer after 10 + 3 * 5 s
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms: data the server never acknowledged ends the connection (Linux)
}
"""libpq parameters that turn a cut network into an error on a real network; over a local proxy that accepts and
then stops forwarding (tests/helpers/tcp_proxy.py) only `connect_timeout` applies, so the leader's own bound does not
rely on them (`aggregator.coordination.leader.Leadership.expire`)."""


def _postgres_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
    for key, value in POSTGRES_TCP.items():
        cparams.setdefault(key, value)  # a value given in database.url wins


HINTS = (
    ("readonly", "the database file or its folder is not writable by this user"),
    ("disk is full", "the disk holding the database is full"),
    ("database is locked", "another process held a write lock past the busy timeout"),
    ("unable to open", "the database file cannot be opened: check the path and permissions"),
)


@contextmanager
def _guard(what: str, url: str) -> Iterator[None]:
    """Database failures become StoreError naming what failed, why, and where; the transaction is rolled back."""
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        reason = str(exc.orig) if exc.orig is not None else str(exc)
        hint = next((h for key, h in HINTS if key in reason.lower()), "")
        where = url.rsplit("@", maxsplit=1)[-1]  # never a password
        if any(mark in reason.lower() for mark in DAMAGE_MARKS):
            raise StoreDamagedError(f"{what} failed on {where}: {reason}. {RECOVERY}") from exc
        raise StoreError(f"{what} failed on {where}: {reason}" + (f" ({hint})" if hint else "")) from exc


def open_engine(url: str, busy_timeout_seconds: float = 10.0) -> Engine:
    """An engine on `url`, migrated to the latest schema."""
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # not a directory, no permission, read-only file system
            raise ConfigError(
                f"database.url = {url!r}: its directory {str(path.parent)!r} does not exist and cannot be created "
                f"({exc.strerror or exc}); create it, or point database.url (AGGREGATOR_DATABASE__URL) elsewhere"
            ) from exc
        if path.exists() and path.stat().st_size > 0:
            check_file(path)  # never migrate or write a damaged file
    engine = _create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_seconds))
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "do_connect", _postgres_connect)
        event.listen(engine, "connect", _postgres_timeouts(busy_timeout_seconds))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _guard("opening and migrating the database", url), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return engine


def _create_engine(url: str) -> Engine:
    """`create_engine` with a bad URL or a missing driver reported as configuration, naming `database.url`."""
    where = url.rsplit("@", maxsplit=1)[-1]
    try:
        return create_engine(url)
    except ArgumentError as exc:
        raise ConfigError(f"database.url = {where!r}: not a database URL ({exc})") from exc
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"database.url = {where!r}: no driver for it is installed ({exc}); for PostgreSQL install the "
            "postgres extra (pip install '.[postgres]') and use postgresql+psycopg://…"
        ) from exc


class Store:
    """Rate history (and, as the schema grows, proposals and the book)."""

    def __init__(
        self,
        url: str,
        busy_timeout_seconds: float = 10.0,
        now: Clock | None = None,
        owner: str | None = None,
        adopt: bool = False,
    ) -> None:
        self.url = url
        self.now: Clock = now or (lambda: datetime.now(UTC))
        self.engine = open_engine(url, busy_timeout_seconds)
        self.path = sqlite_path(url)
        self.damage: StoreDamagedError | None = None  # once set, every write is refused
        self.wal = WalWatch(self.path) if self.path is not None else None
        if owner is not None:
            self.claim(owner, adopt=adopt)

    def owner(self) -> str | None:
        """The identity of the config that created (or adopted) this store, or None for a store nobody claimed."""
        with _guard("reading the store's owner", self.url), self.engine.connect() as conn:
            return conn.execute(
                select(store_owner.c.config).where(store_owner.c.id == 1)
            ).scalar_one_or_none()

    def claim(self, owner: str, *, adopt: bool = False) -> None:
        """Record `owner` as this store's config on first use; refuse a store another config created
        (StoreOwnerError naming both and the override) unless `adopt`, which records the new owner."""
        with self._write("claiming the store for its config") as conn:
            current = conn.execute(
                select(store_owner.c.config).where(store_owner.c.id == 1)
            ).scalar_one_or_none()
            if current == owner:
                return
            if current is None:
                conn.execute(
                    insert(store_owner).values(id=1, config=owner, claimed_at=_naive_utc(self.now()))
                )
                log.info("store_claimed", config=owner, database=self.url.rsplit("@", maxsplit=1)[-1])
                return
            where = self.url.rsplit("@", maxsplit=1)[-1]
            if not adopt:
                raise StoreOwnerError(
                    f"the database {where} belongs to config {current!r}, and this is config {owner!r}: each "
                    "config keeps its own book, proposals and rate history. Leave [database] url unset (each "
                    "config then gets <config name>.sqlite beside its file) or name another file; to take this "
                    f"store over for {owner!r} on purpose, set [database] adopt = true "
                    "(or AGGREGATOR_DATABASE__ADOPT=true) once"
                )
            conn.execute(
                update(store_owner)
                .where(store_owner.c.id == 1)
                .values(config=owner, claimed_at=_naive_utc(self.now()))
            )
            log.warning("store_adopted", config=owner, previous=current, database=where)

    def check_integrity(self) -> StoreDamagedError | None:
        """Quick-check the file and its write-ahead log now (the daemon's periodic job); the damage, if any, is
        remembered (and logged once as `store_damaged`) and every later write refused."""
        if self.damage is None and self.path is not None:
            report = integrity_report(self.path, quick=True)
            if report != ["ok"]:
                self._damaged(damaged_error(self.path, report))
        self._check_wal()
        return self.damage

    def _check_wal(self) -> None:
        problem = self.wal.problem() if self.wal is not None and self.damage is None else None
        if problem is not None:
            self._damaged(
                StoreDamagedError(
                    f"{problem}: writes from now on would be lost, so none is made. Stop this process, run "
                    f"`aggregator db check`, and restore a backup if it fails. {RECOVERY}"
                )
            )

    def _damaged(self, error: StoreDamagedError) -> None:
        if self.damage is None:
            self.damage = error
            log.error("store_damaged", path=str(self.path), error=str(error))

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        """One read; a database failure becomes StoreError naming it (SQLAlchemy's errors stay in the store)."""
        with _guard(what, self.url), self.engine.connect() as conn:
            yield conn

    def reading(self, what: str) -> AbstractContextManager[Connection]:
        """One read for a floor beside the store (`aggregator.coordination`); errors arrive as StoreError."""
        return self._read(what)

    @contextmanager
    def transaction(self, what: str, *, checked: bool = True) -> Iterator[Connection]:
        """One write transaction for a floor beside the store (`aggregator.coordination`); errors arrive as
        StoreError. `checked=False` writes even to a store known to be damaged (a lease's release)."""
        if checked:
            with self._write(what) as conn:
                yield conn
        else:
            with _guard(what, self.url), self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        """One write transaction, refused on a store known to be damaged; damage found by the write is
        remembered."""
        self._check_wal()
        if self.damage is not None:
            raise self.damage
        try:
            with _guard(what, self.url), self.engine.begin() as conn:
                yield conn
        except StoreDamagedError as exc:
            self._damaged(exc)
            raise

    def record_rates(self, rate_book: Collection, trigger: str, *, fence: Fenced | None = None) -> int:
        """Write one collection with its rates and rejections, atomically; returns its id. With `fence` (the leader
        lease's, #18) the transaction first runs its check, so a stale leader's collection is never written."""
        with self._write("recording rates") as conn:
            if fence is not None:
                fence.check(conn)
            return _insert_collection(conn, rate_book, trigger)

    def record_cycle(
        self,
        rate_book: Collection,
        trigger: str,
        run_id: str,
        plan: Plan | None,
        apply: bool,
        *,
        initial: dict[str, float] | None = None,
        fence: Fenced | None = None,
    ) -> None:
        """One rebalance cycle in one transaction: its collection, its proposal, and (when applied) the new book:
        settled positions plus the plan's queued exits in flight until due. `initial` is the book before the first
        applied plan (the config's holdings; default: the plan's current weights in ETH).
        A crash anywhere leaves the store as it was before the cycle. With `fence` (a lease's fence, see
        `aggregator.coordination`), the transaction first runs its check, which raises LeaseLostError, so that
        nothing is written, when another cycle has taken the lease meanwhile."""
        now = self.now()
        with self._write("recording the cycle") as conn:
            if fence is not None:
                fence.check(conn)
            cid = _insert_collection(conn, rate_book, trigger)
            if plan is None:
                return
            mode = proposal_mode(plan.status, apply)
            applied = mode == "applied"
            conn.execute(
                insert(proposals).values(
                    id=run_id,
                    created_at=_naive_utc(now),
                    trigger=trigger,
                    mode=mode,
                    status=plan.status,
                    reason=plan.reason,
                    moves=len(plan.moves),
                    turnover=plan.turnover,
                    yield_before=plan.before.net_yield,
                    yield_after=plan.after.net_yield,
                    cvar_before=plan.before.cvar,
                    cvar_after=plan.after.cvar,
                    gain_bps=plan.gain_bps,
                    collection_id=cid,
                    plan=plan.model_dump_json(),
                )
            )
            if applied:
                current = _position(conn) or Position(
                    dict(initial)
                    if initial is not None
                    else {v: w * plan.portfolio_eth for v, w in plan.current_weights.items() if w > 0}
                )
                parents = {v.id: v.parent for v in plan.problem.inputs.universe.venues}
                after = apply_moves(current, plan.moves, now, run_id, parents=parents)
                _write_position(conn, after, now, run_id)

    def proposals(self, limit: int = 20) -> list[ListedProposalRow]:
        """The latest proposals, newest first (in the order they were written: a clock set back cannot reorder
        them), without their plans. A row whose time does not parse is listed with `created_at` None and
        `damaged` saying why; the others are unaffected."""
        cols = [c for c in _meta_columns() if c.name != "plan"]
        query = select(*cols).order_by(proposals.c.collection_id.desc()).limit(limit)
        with self._read("reading the proposals") as conn:
            metas = [_meta(row._asdict()) for row in conn.execute(query)]
        return [_row(ListedProposalRow, meta) for meta in metas]

    def proposal_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """The ids starting with `prefix` (matched literally), newest first, at most `limit`."""
        query = (
            select(proposals.c.id)
            .where(proposals.c.id.startswith(prefix, autoescape=True))
            .order_by(proposals.c.collection_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    def proposal(self, run_id: str) -> tuple[ProposalRow, Plan] | None:
        """One proposal: its row and its full plan. DamagedRecordError if either does not parse."""
        with self._read("reading a proposal") as conn:
            row = conn.execute(select(*_meta_columns()).where(proposals.c.id == run_id)).first()
        if row is None:
            return None
        meta = _meta({k: v for k, v in row._asdict().items() if k != "plan"})
        if "damaged" in meta:
            raise DamagedRecordError(f"proposal {run_id} is damaged: {meta['damaged']}")
        try:
            plan = Plan.model_validate_json(row.plan)
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise DamagedRecordError(f"proposal {run_id} is damaged: its stored plan {_why(exc)}") from exc
        return _row(ProposalRow, meta), plan

    def recent_moves(
        self, since: datetime, *, lookback: timedelta = timedelta(0)
    ) -> list[tuple[datetime, str, str]]:
        """The moves of the applied proposals made at or after `since` as (when, action, venue), in the order they
        were written: the daemon's trades, for the optimizer's holding period (`Limits.hold_days`). An exit is made
        when its proposal is applied (`created_at`); a deposit when it is actually made: deposits wait until the
        plan's exits land (`store.ledger.apply_moves`), so at `created_at` plus the plan's longest chain of exits
        (`rows.release_days`), or at the due of that proposal's flight to the venue while it is still in flight if
        that is later (it waited for an earlier plan's exits too). `lookback`: how much before `since` a proposal
        may have been applied for one of its deposits to be made after it (the longest chain of queues the config
        has). Dry-run proposals are not trades. Only each plan's moves are read; a row whose time or moves do not
        parse is left out and logged (`proposal_damaged`), so one damaged record cannot stop a cycle."""
        cols = [c for c in _meta_columns() if c.name in ("id", "created_at", "plan")]
        query = (
            select(*cols)
            .where(proposals.c.mode == "applied", proposals.c.created_at >= _naive_utc(since - lookback))
            .order_by(proposals.c.collection_id)
        )
        with self._read("reading the applied proposals' moves") as conn:
            rows = [row._asdict() for row in conn.execute(query)]
            position = _position(conn) if rows else None
        arriving: dict[tuple[str | None, str], datetime] = {}
        for p in position.pending if position is not None else ():
            key = (p.proposal_id, p.to_venue)
            arriving[key] = max(p.due, arriving.get(key, p.due))
        out: list[tuple[datetime, str, str]] = []
        for row in rows:
            meta = _meta({"id": row["id"], "created_at": row["created_at"]})
            if "damaged" in meta:
                why = meta["damaged"]
            else:
                try:
                    legs = PlanLegs.model_validate_json(row["plan"]).moves
                except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
                    why = f"its stored plan {_why(exc)}"
                else:
                    applied: datetime = meta["created_at"]
                    made = applied + timedelta(days=release_days(legs))
                    for leg in legs:
                        when = applied
                        if leg.action == "deposit":
                            when = max(made, arriving.get((row["id"], leg.venue), made))
                        if when >= since:
                            out.append((when, leg.action, leg.venue))
                    continue
            log.warning(
                "proposal_damaged",
                proposal=row["id"],
                error=f"proposal {row['id']} is damaged: {why}",
                effect="its moves are left out of the holding period",
            )
        return out

    def book(self) -> dict[str, float] | None:
        """Settled positions in ETH (capital in flight excluded), or None while no plan has been applied."""
        position = self.position()
        return None if position is None else position.settled

    def position(self) -> Position | None:
        """Settled positions and capital in flight, or None while no plan has been applied."""
        with self._read("reading the book") as conn:
            return _position(conn)

    def land_due(self, now: datetime) -> list[Pending]:
        """Move every flight due by `now` into the settled book (one transaction); returns what landed."""
        with self._write("landing capital in flight") as conn:
            current = _position(conn)
            if current is None:
                return []
            after, landed = current.land(now)
            if landed:
                _write_position(conn, after, now, None)
            return landed

    def latest_rates(self) -> LatestRates | None:
        """The latest collection, its rates and the quotes it rejected, for the API and the dashboard."""
        with self._read("reading the latest rates") as conn:
            head = conn.execute(select(collections).order_by(collections.c.id.desc()).limit(1)).first()
            if head is None:
                return None
            rows = conn.execute(
                select(rates).where(rates.c.collection_id == head.id).order_by(rates.c.id)
            ).all()
            rejected = conn.execute(
                select(rejections).where(rejections.c.collection_id == head.id).order_by(rejections.c.id)
            ).all()
        try:
            return LatestRates(
                collection=head.id,
                fetched_at=_aware(head.fetched_at),
                failed_sources=json.loads(head.failed_sources),
                rates=[
                    StoredRateRow(
                        venue=r.venue,
                        component=r.component,
                        value=r.value,
                        sources=r.sources.split(","),
                        observed_at=_aware(r.observed_at),
                        spread=r.spread,
                        **_lineage(r.independent, r.lineage, len(r.sources.split(","))),
                    )
                    for r in rows
                ],
                rejected=[
                    StoredRejection(source=j.source, key=j.key, value=j.value, reason=j.reason)
                    for j in rejected
                ],
            )
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError; json's too
            raise DamagedRecordError(f"collection {head.id} is damaged: its rates {_why(exc)}") from exc

    def latest_values(self) -> dict[Component, float]:
        """Each component's most recent stored yield (from the latest collection that had one)."""
        out: dict[Component, float] = {}
        with self._read("reading the latest values") as conn:
            rows = conn.execute(
                select(rates.c.venue, rates.c.component, rates.c.value).order_by(rates.c.collection_id)
            )
            for venue, component, value in rows:
                out[(venue, component)] = float(value)
        return out

    def window_counts(self, since: datetime, before: datetime) -> dict[Component, dict[float, int]]:
        """Per component, each distinct yield stored in [since, before) with how many collections had it: the
        window a robust estimate is taken over. Counted by the database, so a cycle reads one row per distinct
        value (sources repeat a value for hours), not every collection of the window."""
        query = (
            select(rates.c.venue, rates.c.component, rates.c.value, func.count())
            .join(collections, rates.c.collection_id == collections.c.id)
            .where(
                collections.c.fetched_at >= _naive_utc(since),
                collections.c.fetched_at < _naive_utc(before),
            )
            .group_by(rates.c.venue, rates.c.component, rates.c.value)
        )
        out: dict[Component, dict[float, int]] = {}
        with self._read("reading the rate window") as conn:
            for v, c, value, n in conn.execute(query):
                out.setdefault((v, c), {})[float(value)] = int(n)
        return out

    def first_collection_at(self, since: datetime, before: datetime) -> datetime | None:
        """When the store's first collection in [since, before) was fetched, or None: how long it has watched."""
        query = select(func.min(collections.c.fetched_at)).where(
            collections.c.fetched_at >= _naive_utc(since), collections.c.fetched_at < _naive_utc(before)
        )
        with self.engine.connect() as conn:
            first = conn.execute(query).scalar()
        return None if first is None else _aware(first)

    def observed_before(self, before: datetime, components: set[Component]) -> set[Component]:
        """Those of `components` stored in some collection fetched before `before` (seen once, then gone)."""
        if not components:
            return set()
        query = (
            select(rates.c.venue, rates.c.component)
            .join(collections, rates.c.collection_id == collections.c.id)
            .where(collections.c.fetched_at < _naive_utc(before))
            .distinct()
        )
        with self.engine.connect() as conn:
            return {(v, c) for v, c in conn.execute(query) if (v, c) in components}

    def collection_count(self) -> int:
        with self._read("counting collections") as conn:
            return len(conn.execute(select(collections.c.id)).all())


def _position(conn: Connection) -> Position | None:
    settled = {v: float(a) for v, a in conn.execute(select(book.c.venue, book.c.amount_eth)).all()}
    flights = tuple(
        Pending(r.from_venue, r.to_venue, float(r.amount_eth), _aware(r.due_at), r.proposal_id)
        for r in conn.execute(select(in_flight).order_by(in_flight.c.id)).all()
    )
    if not settled and not flights:
        return None
    return Position(settled, flights)


def _write_position(conn: Connection, position: Position, now: datetime, run_id: str | None) -> None:
    """Replace the book and the flights. A venue keeps the proposal that last set the book."""
    conn.execute(delete(book))
    rows = [
        {"venue": v, "amount_eth": eth, "updated_at": _naive_utc(now), "proposal_id": run_id}
        for v, eth in position.settled.items()
        if eth > 1e-9
    ]
    if rows:
        conn.execute(insert(book), rows)
    conn.execute(delete(in_flight))
    flights = [
        {
            "from_venue": p.from_venue,
            "to_venue": p.to_venue,
            "amount_eth": p.amount_eth,
            "due_at": _naive_utc(p.due),
            "proposal_id": p.proposal_id,
        }
        for p in position.pending
    ]
    if flights:
        conn.execute(insert(in_flight), flights)


def _lineage(independent: int | None, stored: str | None, sources: int) -> dict[str, Any]:
    """A stored rate's lineage for the API; None for rows written before migration 0008."""
    if independent is None or stored is None:
        return {"independent": None, "independence": None, "lineage": None}
    return {
        "independent": independent,
        "independence": independent_of(independent, sources),
        "lineage": json.loads(stored),
    }


def _insert_collection(conn: Connection, rate_book: Collection, trigger: str) -> int:
    key = conn.execute(
        insert(collections).values(
            fetched_at=_naive_utc(rate_book.fetched_at),
            trigger=trigger,
            failed_sources=json.dumps(rate_book.failed_sources, sort_keys=True),
        )
    ).inserted_primary_key
    assert key is not None
    cid = int(key[0])
    if rate_book.rates:
        conn.execute(
            insert(rates),
            [
                {
                    "collection_id": cid,
                    "venue": r.venue,
                    "component": r.component,
                    "value": r.value,
                    "sources": ",".join(r.sources),
                    "observed_at": _naive_utc(r.observed_at),
                    "spread": r.spread,
                    "independent": r.independent,
                    "lineage": json.dumps(list(r.lineage)),
                }
                for r in rate_book.rates
            ],
        )
    if rate_book.quotes:
        conn.execute(
            insert(quotes),
            [
                {
                    "collection_id": cid,
                    "source": q.source,
                    "key": q.key,
                    "value": q.value,
                    "observed_at": _naive_utc(q.observed_at),
                    "note": q.note,
                }
                for q in rate_book.quotes
            ],
        )
    if rate_book.rejected:
        conn.execute(
            insert(rejections),
            [
                {"collection_id": cid, "source": j.source, "key": j.key, "value": j.value, "reason": j.reason}
                for j in rate_book.rejected
            ],
        )
    return cid
