"""The daemon's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs). Reads are open; anything that changes
state needs `Authorization: Bearer <api.token>` and is refused without it (a token counts from 16 characters; see
aggregator.interfaces.api.guard). Listens on 127.0.0.1 unless told; elsewhere only with a token.

Limits (aggregator.interfaces.api.guard, aggregator.interfaces.api.connections): a write is authenticated before its body is read; bodies
are capped (`api.max_body_bytes`, 413) and must arrive within `api.body_timeout_seconds` (408); request headers
within `api.header_timeout_seconds` (408); at most `api.max_connections` connections are open, idle ones making
room for new ones (503 only when every one is busy).

    GET  /                            the dashboard (aggregator.interfaces.dashboard); /docs, /redoc work offline
    GET  /health                      the last successful cycle; 503 "degraded" with the reason when it is older
                                      than api.health_max_age_seconds
    GET  /metrics                     Prometheus
    GET  /api/v1/rates                the latest stored collection
    GET  /api/v1/proposals            the latest proposals (?limit=)
    GET  /api/v1/book                 the current book and its source (chain at block N, applied plan, config)
    GET  /api/v1/proposals/{id}       one proposal with its plan and its timeline
    GET  /api/v1/proposals/{id}/safe-batch   its Safe Transaction Builder files (?safe=0x…&slippage=), never sent
    POST /api/v1/rebalance            propose now; {"apply": false} by default (dry run); {"sensitivity": true}
                                      adds the re-solves of `aggregator rebalance --sensitivity`
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
import structlog
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, SecretStr

from aggregator.core.errors import (
    ConfigError,
    CycleBusyError,
    DamagedRecordError,
    NoRatesError,
    SourceError,
    StoreError,
)
from aggregator.events.metrics import Metrics
from aggregator.interfaces import dashboard
from aggregator.interfaces.api.connections import (
    ACCEPT_BACKLOG,
    ConnectionLimits,
    LoopErrors,
    ThrottleFilter,
    guarded_protocol,
    raise_fd_limit,
)
from aggregator.interfaces.api.guard import SAFE_METHODS, Throttled, WriteGuard, usable_token
from aggregator.interfaces.api.models import (
    BookBody,
    HealthBody,
    ProposalBody,
    RebalanceBody,
    RebalanceWithSensitivityBody,
    SafeBatchBody,
)
from aggregator.service import Service
from aggregator.service.chain import read_book, simulate
from aggregator.store.rows import LatestRates, ListedProposalRow, ProposalRow
from execution.calls import Context
from execution.safe import batches, summary
from execution.timeline import plan_timeline
from optimizer import Plan

log = structlog.get_logger(__name__)
_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
MAX_BODY_BYTES = 64 * 1024


class RebalanceRequest(BaseModel):
    """Body of POST /api/v1/rebalance."""

    model_config = ConfigDict(extra="forbid", strict=True)

    apply: bool = False
    wait_seconds: float = 0.0
    sensitivity: bool = False  # also re-solve with each prior halved and doubled (docs/risk.md), ≈ 50 solves


class ErrorBody(BaseModel):
    """Every error response: what went wrong, in words."""

    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "the body is not JSON",
        401: "no valid bearer token",
        403: "state changes are disabled (no api.token set, or shorter than 16 characters)",
        404: "not found",
        408: "the request body did not arrive within api.body_timeout_seconds",
        409: "another rebalance is running, or this replica does not lead (the message names the leader)",
        413: "the request body is larger than api.max_body_bytes",
        500: "the stored record is damaged and cannot be read",
        503: "no usable yield this cycle, the database failed, or the config and the stored book disagree",
    }
    return {code: {"model": ErrorBody, "description": meaning[code]} for code in codes}


def create_app(
    service: Service,
    metrics: Metrics,
    token: SecretStr | None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout_seconds: float = 10.0,
    health_max_age_seconds: float | None = None,
    clock: Callable[[], float] = time.time,
    leadership: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    """The API over `service`. A token shorter than 16 characters counts as none (logged at once).

    `/health` is degraded when the last successful cycle (this process's, else the newest stored proposal) is
    older than `health_max_age_seconds`, or when none has succeeded that long after the API started; `clock` is
    Unix time (a test moves it). `leadership` (a daemon among replicas) gives `/health` its `replica`, `role` and
    `leader` fields."""
    token = usable_token(token)
    started = clock()
    stored_success = _newest_proposal_time(service)
    # Swagger UI from fastapi-offline's vendored assets, ReDoc from the dashboard (its bundle patched so that it
    # loads nothing from elsewhere): /docs and /redoc work with no internet.
    app = FastAPIOffline(title="restaking-aggregator", version="0.1.0", description=__doc__, redoc_url=None)
    throttled = Throttled()

    async def authorised(credentials: Credentials) -> None:
        # WriteGuard has already refused what this refuses; kept so the route stays safe without it.
        if token is None:
            raise HTTPException(
                403, "state changes are disabled: set api.token (AGGREGATOR_API__TOKEN, 16+ characters)"
            )
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise HTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.get(
        "/health",
        response_model=HealthBody,
        response_model_exclude_unset=True,
        responses={
            503: {"model": HealthBody, "description": "degraded: no successful cycle recently enough"}
        },
    )
    async def health(response: Response) -> dict[str, Any]:
        last = metrics.last_success_at or stored_success
        body: dict[str, Any] = {"status": "ok", "last_successful_cycle": last, "dry_run_default": True}
        if leadership is not None:
            body |= leadership()
        if health_max_age_seconds is None:
            return body
        now = clock()
        age = now - (last if last is not None else started)
        body |= {"age_seconds": round(age, 3), "max_age_seconds": health_max_age_seconds}
        if age > health_max_age_seconds:
            since = (
                f"the last successful cycle was {age:.0f}s ago"
                if last is not None
                else f"no cycle has succeeded since the API started {age:.0f}s ago"
            )
            body |= {
                "status": "degraded",
                "reason": f"{since}, more than api.health_max_age_seconds={health_max_age_seconds:g}",
            }
            response.status_code = 503
        return body

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/rates", response_model=LatestRates, responses=_errors(404))
    def latest_rates() -> LatestRates:
        found = service.store.latest_rates()
        if found is None:
            raise HTTPException(404, "no rates collected yet")
        return found

    @app.get(
        "/api/v1/book", response_model=BookBody, response_model_exclude_unset=True, responses=_errors(503)
    )
    def current_book() -> dict[str, object]:
        try:
            return service.book_report()
        except SourceError as exc:
            raise HTTPException(503, f"the book could not be read from chain: {exc}") from exc

    @app.get("/api/v1/proposals", response_model=list[ListedProposalRow], response_model_exclude_unset=True)
    def proposals(limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[ListedProposalRow]:
        return service.store.proposals(limit)

    @app.get("/api/v1/proposals/{proposal_id}", response_model=ProposalBody, responses=_errors(404, 500))
    def proposal(proposal_id: str) -> ProposalBody:
        try:
            found = service.store.proposal(proposal_id)
        except DamagedRecordError as exc:
            throttled.warning("proposal_damaged", proposal=proposal_id, error=str(exc))
            raise HTTPException(500, str(exc)) from exc
        if found is None:
            raise HTTPException(404, f"no proposal {proposal_id!r}")
        meta, plan = found
        return ProposalBody(proposal=meta, plan=plan, timeline=_timeline(service, meta, plan))

    @app.get(
        "/api/v1/proposals/{proposal_id}/safe-batch",
        response_model=SafeBatchBody,
        responses=_errors(400, 404, 500),
    )
    def safe_batch(
        proposal_id: str,
        safe: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$")] = None,
        slippage: Annotated[float, Query(ge=0.0, le=0.05)] = 0.005,
    ) -> dict[str, Any]:
        account = safe or service.settings.portfolio.address
        if account is None:
            raise HTTPException(400, "no Safe address: pass ?safe=0x… or set [portfolio] address")
        try:
            found = service.store.proposal(proposal_id)
        except DamagedRecordError as exc:
            raise HTTPException(500, str(exc)) from exc
        if found is None:
            raise HTTPException(404, f"no proposal {proposal_id!r}")
        meta, plan = found
        created = meta.created_at
        ctx = Context(safe=account, slippage=slippage)
        block, problems = None, []
        rpc_url = service.settings.portfolio.rpc_url
        if rpc_url is not None:  # the rates and registry addresses as of now, as the CLI reads them
            try:
                chain = read_book(rpc_url, account)
                ctx = Context(safe=account, slippage=slippage, rates=chain.rates, resolved=chain.resolved)
            except SourceError as exc:
                problems.append(f"rates not read from chain ({exc}); steps needing them are manual")
        timeline = service.proposal_timeline(proposal_id, plan, created)  # as the book dates its deposits now
        days = batches(timeline, proposal_id, ctx, created)
        if rpc_url is not None:  # each call as an eth_call from the Safe, never sent
            try:
                days, block = simulate(rpc_url, account, days)
            except SourceError as exc:
                problems.append(f"not simulated: {exc}")
        listed = summary(proposal_id, days, ctx, simulated_at=block)
        redated = timeline.redated_dict()
        if redated is not None:  # a later plan's exits hold its deposits back (absent otherwise, as before)
            listed["redated"] = redated
        if problems:
            listed["chain_errors"] = problems
        return {
            "summary": listed,
            "batches": {f"{proposal_id}-{d.filename}": d.batch for d in days if d.batch is not None},
        }

    @app.post(
        "/api/v1/rebalance",
        dependencies=[Depends(authorised)],
        response_model=RebalanceWithSensitivityBody | RebalanceBody,
        responses=_errors(400, 401, 403, 408, 409, 413, 503),
    )
    def rebalance(request: RebalanceRequest) -> dict[str, Any]:
        try:
            result = service.rebalance(
                "api", apply=request.apply, wait_seconds=min(request.wait_seconds, 60.0)
            )
        except CycleBusyError as exc:
            raise HTTPException(409, str(exc)) from exc
        except NoRatesError as exc:  # logged by the cycle as rebalance_skipped
            raise HTTPException(503, str(exc)) from exc
        except (StoreError, ConfigError) as exc:  # as the daemon's scheduled cycles log it (a damaged store…)
            throttled.warning("rebalance_failed", trigger="api", error=str(exc))
            raise HTTPException(503, str(exc)) from exc
        out: dict[str, Any] = {
            "proposal": result.run_id,
            "plan": result.plan,
            "timeline": plan_timeline(result.plan, datetime.now(UTC).date()).as_dict(),
        }
        if request.sensitivity:
            from aggregator.risk.sensitivity import sensitivity as risk_sensitivity  # noqa: PLC0415 (only here)

            out["sensitivity"] = risk_sensitivity(result.plan.problem.inputs).to_json()
        return out

    dashboard.mount(app, service)

    def is_write(method: str, path: str) -> bool:
        return any(
            isinstance(route, APIRoute)
            and method in (route.methods or set()) - SAFE_METHODS
            and route.path_regex.match(path) is not None
            for route in app.routes
        )

    app.add_middleware(
        WriteGuard,
        token=token,
        is_write=is_write,
        max_body_bytes=max_body_bytes,
        body_timeout_seconds=body_timeout_seconds,
    )
    return app


def _newest_proposal_time(service: Service) -> float | None:
    """Unix time of the newest stored proposal with a readable time (a restarted daemon's last success)."""
    try:
        rows = service.store.proposals(1)
    except StoreError as exc:
        log.warning("health_history_unreadable", error=str(exc))
        return None
    created = rows[0].created_at if rows else None
    return None if created is None else created.timestamp()


class ApiServer:
    """uvicorn in a background thread of the daemon (uvicorn leaves signals alone off the main thread).

    The database reads run on at most `threads` worker threads; requests beyond that wait their turn in order
    instead of dozens of threads taking turns at the GIL, which starved the event loop (and so /health) under
    load. See benchmarks/load.py.

    Connections are bounded and timed out by `limits` (aggregator.interfaces.api.connections); the process's soft file
    limit is raised at start so they and the daemon's own work fit together."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        threads: int = 4,
        limits: ConnectionLimits = ConnectionLimits(),  # noqa: B008 - frozen
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=limits.keep_alive_seconds,
            backlog=ACCEPT_BACKLOG,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="api", daemon=True)
        self.host, self.port, self.threads, self.limits = host, port, threads, limits

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
        asyncio.get_running_loop().set_exception_handler(LoopErrors())
        await self.server.serve()

    def start(self, timeout: float = 10.0) -> None:
        cap = raise_fd_limit(self.limits.max_connections)
        self.server.config.http = guarded_protocol(replace(self.limits, max_connections=cap))
        uvicorn_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, ThrottleFilter) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(ThrottleFilter())
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP API could not listen on {self.host}:{self.port}")
            time.sleep(0.02)
        log.info(
            "api_started",
            host=self.host,
            port=self.port,
            max_connections=cap,
            header_timeout_seconds=self.limits.header_timeout_seconds,
            keep_alive_seconds=self.limits.keep_alive_seconds,
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop listening and let in-flight requests finish for up to `timeout` seconds; False if some still run
        (the server's thread is a daemon thread: it does not keep the process alive)."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout)
        return not self.thread.is_alive()


def _timeline(service: Service, meta: ProposalRow, plan: Plan) -> dict[str, object]:
    """A stored proposal's timeline from the day it was made, its waiting deposits as the book dates them now (a
    proposal whose time is damaged is not read)."""
    return service.proposal_timeline(meta.id, plan, meta.created_at).as_dict()
