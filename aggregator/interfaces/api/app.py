"""The daemon's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs). Reads are open; anything that changes
state needs `Authorization: Bearer <api.token>` and is refused without it (a token counts from 16 characters; see
aggregator.interfaces.api.guard). Listens on 127.0.0.1 unless told; elsewhere only with a token.

Limits (aggregator.interfaces.api.guard, aggregator.interfaces.api.connections): a write is authenticated before its body is read; bodies
are capped (`api.max_body_bytes`, 413) and must arrive within `api.body_timeout_seconds` (408); request headers
within `api.header_timeout_seconds` (408); at most `api.max_connections` connections are open, idle ones making
room for new ones (503 only when every one is busy).

    GET  /health                      liveness and the last successful cycle
    GET  /metrics                     Prometheus
    GET  /api/v1/rates                the latest stored collection
    GET  /api/v1/proposals            the latest proposals (?limit=)
    GET  /api/v1/proposals/{id}       one proposal with its plan
    POST /api/v1/rebalance            propose now; {"apply": false} by default (dry run); {"sensitivity": true}
                                      adds the re-solves of `aggregator rebalance --sensitivity`
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from dataclasses import replace
from typing import Annotated, Any

import anyio.to_thread
import structlog
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, SecretStr

from aggregator.core.errors import ConfigError, CycleBusyError, DamagedRecordError, NoRatesError, StoreError
from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.connections import (
    ACCEPT_BACKLOG,
    ConnectionLimits,
    LoopErrors,
    ThrottleFilter,
    guarded_protocol,
    raise_fd_limit,
)
from aggregator.interfaces.api.guard import SAFE_METHODS, Throttled, WriteGuard, usable_token
from aggregator.service import Service

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
        409: "another rebalance is running",
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
) -> FastAPI:
    """The API over `service`. A token shorter than 16 characters counts as none (logged at once)."""
    token = usable_token(token)
    app = FastAPI(title="restaking-aggregator", version="0.1.0", description=__doc__)
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

    @app.get("/health")
    async def health() -> dict[str, Any]:
        last = metrics.last_success._value.get()
        return {"status": "ok", "last_successful_cycle": last or None, "dry_run_default": True}

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/rates", responses=_errors(404))
    def latest_rates() -> dict[str, Any]:
        found = service.store.latest_rates()
        if found is None:
            raise HTTPException(404, "no rates collected yet")
        return found

    @app.get("/api/v1/proposals")
    def proposals(limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
        return service.store.proposals(limit)

    @app.get("/api/v1/proposals/{proposal_id}", responses=_errors(404, 500))
    def proposal(proposal_id: str) -> dict[str, Any]:
        try:
            found = service.store.proposal(proposal_id)
        except DamagedRecordError as exc:
            throttled.warning("proposal_damaged", proposal=proposal_id, error=str(exc))
            raise HTTPException(500, str(exc)) from exc
        if found is None:
            raise HTTPException(404, f"no proposal {proposal_id!r}")
        meta, plan = found
        return {"proposal": meta, "plan": plan.model_dump(mode="json")}

    @app.post(
        "/api/v1/rebalance",
        dependencies=[Depends(authorised)],
        responses=_errors(400, 401, 403, 408, 409, 413, 503),
    )
    def rebalance(request: RebalanceRequest) -> dict[str, Any]:
        try:
            result = service.rebalance(
                "api", apply=request.apply, wait_seconds=min(request.wait_seconds, 60.0)
            )
        except CycleBusyError as exc:
            raise HTTPException(409, str(exc)) from exc
        except (NoRatesError, StoreError, ConfigError) as exc:
            raise HTTPException(503, str(exc)) from exc
        out = {"proposal": result.run_id, "plan": result.plan.model_dump(mode="json")}
        if request.sensitivity:
            from aggregator.risk.sensitivity import sensitivity as risk_sensitivity  # noqa: PLC0415 (only here)

            out["sensitivity"] = risk_sensitivity(result.plan.problem.inputs).to_json()
        return out

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

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
