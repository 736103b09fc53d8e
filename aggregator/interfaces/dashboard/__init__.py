"""The operator's dashboard, served by the daemon's API process (same listener, same auth rules): `GET /` renders
the book, risk against every budget, the latest proposal, rates per venue and the proposal history from the store
(server-side Jinja2 and SVG; no CDN, no build step). Viewing needs no token; its one button, a dry run, posts to
`/api/v1/rebalance`, which needs the bearer token as every write does."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import fastapi_offline
import jinja2
import structlog
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from aggregator.interfaces.dashboard.view import backtest_dir, build
from aggregator.interfaces.render import pct as render_pct
from aggregator.service import Service, utc_now
from aggregator.store.rows import ListedProposalRow

__all__ = ["mount"]

HERE = Path(__file__).parent
log = structlog.get_logger(__name__)
# ReDoc's bundle shows Redocly's logo from their CDN; served here with the logo pointed at the local favicon.
REDOC_LOGO = b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'
REDOC_ASSETS = Path(fastapi_offline.__file__).parent / "static"
REPORT_FILE = re.compile(r"^[A-Za-z0-9_-]+\.(html|png|json)$")  # what `aggregator backtest` writes: no paths


def pct(value: float | None) -> str:
    """A fraction shown to people as the CLI's tables show it (render.pct): 0.0312 → '3.120 %'."""
    return "" if value is None else render_pct(value)


def eth(value: float | None) -> str:
    return "" if value is None else f"{value:,.4f}"


def age(stamp: str | datetime, now: datetime) -> str:
    when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
    seconds = max((now - when).total_seconds(), 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sparkline(history: list[ListedProposalRow], width: int = 600, height: int = 80) -> str:
    """Net yield after each proposal (blue) and its CVaR (red), oldest left, as one inline SVG."""
    rows = [h for h in reversed(history) if h.created_at is not None]
    if len(rows) < 2:
        return ""
    series = {"#2563eb": [h.yield_after for h in rows], "#dc2626": [h.cvar_after for h in rows]}
    top = max(max(v) for v in series.values()) or 1.0
    step = width / (len(rows) - 1)
    lines = [
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
        + " ".join(
            f"{i * step:.1f},{height - 4 - (v / top) * (height - 8):.1f}" for i, v in enumerate(values)
        )
        + '"/>'
        for colour, values in series.items()
    ]
    return (
        f'<svg id="history-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="net yield (blue) and CVaR (red) after each proposal">{"".join(lines)}</svg>'
    )


@jinja2.pass_context
def name(context: jinja2.runtime.Context, venue: str) -> str:
    """A venue's name from the config, its id when it has none (or the config no longer has it)."""
    names: dict[str, str] = context["page"].names
    return names.get(venue, venue)


def mount(app: FastAPI, service: Service) -> None:
    """Add `GET /` (the page), its script, and `/redoc` (ReDoc from a local bundle) to `app`."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters |= {"pct": pct, "eth": eth, "age": age, "sparkline": sparkline, "name": name}
    template = env.get_template("dashboard.html")
    script = (HERE / "static" / "dry-run.js").read_bytes()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(template.render(page=build(service, utc_now())))

    @app.get("/dashboard/backtest/{name}", include_in_schema=False)
    def backtest_file(name: str) -> FileResponse:
        """The backtest report's files (report.html, its PNGs, summary.json) from the configured folder; a plain
        file name only, nothing outside that folder."""
        folder = backtest_dir(service.settings)
        if folder is None or not REPORT_FILE.match(name) or not (folder / name).is_file():
            raise HTTPException(
                404, f"no backtest report file {name!r}; `aggregator backtest` writes report.html"
            )
        return FileResponse(folder / name)

    favicon = (REDOC_ASSETS / "favicon.png").read_bytes()

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon_ico() -> Response:
        """What a browser asks for on a page without an icon link (the backtest report): the docs' local icon."""
        return Response(favicon, media_type="image/png")

    @app.get("/dashboard/dry-run.js", include_in_schema=False)
    def dry_run_script() -> Response:
        return Response(script, media_type="text/javascript")

    redoc = (REDOC_ASSETS / "redoc.standalone.js").read_bytes()
    if REDOC_LOGO not in redoc:
        log.warning(
            "redoc_not_patched", reason="the bundle no longer names the CDN logo; check /redoc offline"
        )
    redoc = redoc.replace(REDOC_LOGO, b'src:"/static-offline-docs/favicon.png"')

    @app.get("/dashboard/redoc.standalone.js", include_in_schema=False)
    def redoc_script() -> Response:
        return Response(redoc, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url="/dashboard/redoc.standalone.js",
            redoc_favicon_url="/static-offline-docs/favicon.png",
            with_google_fonts=False,
        )
