"""`aggregator`: the operator's command line. Thin: each command loads settings, calls the service, renders.

Exit codes (also in the README):
    0  success (a plan was proposed, or a deliberate hold)
    1  unexpected internal error
    2  command-line usage error
    3  configuration error (missing file, invalid or infeasible limits)
    4  no usable yield from any source
    5  the plan holds because of a problem: limits cannot be met, or the solver failed
    6  another rebalance is running (schedule, CLI or API) and did not finish within --wait
    7  not found (`show` with an unknown proposal id, or `show latest` with none yet); `show` with an id start
       that several ids share exits 2 and lists them
    8  the database cannot be written or read (read-only, full, locked past the busy timeout, damaged); nothing
       half-written; or the record asked for is damaged (`show` of a proposal whose stored plan does not parse).
       `db check` exits 8 when the integrity check fails.
`health` exits 0 when the daemon's API answers ok and 1 otherwise (no answer, or degraded: no successful cycle
within api.health_max_age_seconds; the reason is printed). `sources check` exits 4 when a required quote (the only
quote of a venue component) is unusable.

Imports are lazy: this module loads settings, logging and the error tree only; each command imports what it uses
(the service, the optimizer and cvxpy, the API and FastAPI, the backtest and matplotlib) when it runs, so `--help`
and `health` (the container's health check) start in a fraction of the time. tests/aggregator/test_cli_imports.py
checks it.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from aggregator.core.errors import ConfigError, CycleBusyError, DamagedRecordError, NoRatesError, StoreError

if TYPE_CHECKING:
    from rich.console import Console

    from aggregator.research.sweep.cell import CellResult
    from aggregator.settings import Settings
    from aggregator.settings.backtest import StressEvent
    from aggregator.store import Store

(
    EXIT_OK,
    EXIT_INTERNAL,
    EXIT_USAGE,
    EXIT_CONFIG,
    EXIT_NO_RATES,
    EXIT_PLAN_PROBLEM,
    EXIT_BUSY,
    EXIT_NOT_FOUND,
    EXIT_STORE,
    EXIT_CELLS_FAILED,
) = range(10)

ENV_PREFIX = "AGGREGATOR_"
"""aggregator.settings.ENV_PREFIX, repeated here so that `--help` does not load the settings (pydantic, SQLAlchemy);
tests/aggregator/test_cli_imports.py checks the two agree."""

app = typer.Typer(
    help="Yield allocation across ETH liquid staking and restaking: rates, dry-run rebalances, the daemon.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: typer's rich help formatter alone takes ~0.3 s to import
)

ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config", "-c", envvar=f"{ENV_PREFIX}CONFIG", help="operator TOML file", show_default=True
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
DEFAULT_CONFIG = Path("config/demo.toml")
P = ParamSpec("P")
R = TypeVar("R")


def installed_version() -> str:
    """The installed distribution's version, read from its METADATA's `Version:` line on sys.path: what
    importlib.metadata.version returns, without importing it (it loads the email package: ~0.1 s on a busy machine,
    a third of `--version`'s budget). Falls back to importlib.metadata when no dist-info is found."""
    for entry in sys.path:
        for meta in Path(entry or ".").glob("restaking_aggregator-*.dist-info/METADATA"):
            with meta.open(encoding="utf-8") as lines:
                for line in lines:
                    if line.startswith("Version:"):
                        return line.removeprefix("Version:").strip()
                    if not line.strip():
                        break  # the headers end at the first blank line
    from importlib.metadata import version

    return version("restaking-aggregator")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aggregator {installed_version()}")
        raise typer.Exit()


@app.callback()
def _options(
    _show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """Yield allocation across ETH liquid staking and restaking: rates, dry-run rebalances, the daemon."""


def exit_codes(fn: Callable[P, R]) -> Callable[P, R]:
    """Our exceptions become exit codes here, in one place (Typer owns usage errors: exit 2)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_CONFIG) from exc
        except NoRatesError as exc:
            print(f"no rates: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_NO_RATES) from exc
        except CycleBusyError as exc:
            print(f"busy: {exc}; retry later or pass --wait SECONDS", file=sys.stderr)
            raise typer.Exit(EXIT_BUSY) from exc
        except StoreError as exc:
            print(f"database error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_STORE) from exc

    return wrapper


def _console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A rich Console, imported when a command prints a table (rich is not needed for `--help`)."""
    from rich.console import Console

    return Console(stderr=stderr, width=width)


def _load(config: Path, *, log_stream: object = sys.stderr) -> Settings:
    from aggregator.events.logs import configure_logging
    from aggregator.settings import load_settings

    settings = load_settings(config)
    configure_logging(settings.logging.level, settings.logging.format, log_stream)  # type: ignore[arg-type]
    return settings


@app.command()
@exit_codes
def run(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Run the daemon: pull rates and propose rebalances on the configured schedule (dry-run). SIGTERM/SIGINT
    stop it; SIGHUP reloads the config file (a bad file is logged and the running config kept)."""
    from aggregator.interfaces.daemon import Daemon

    settings = _load(config, log_stream=sys.stdout)
    raise typer.Exit(Daemon(settings, config_path=config).run())


@app.command()
@exit_codes
def rates(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Fetch every source once and show the yield of each venue component, its sources and age."""
    from aggregator.interfaces import render
    from aggregator.rates.lineage import independent_of
    from aggregator.service import Service

    settings = _load(config)
    book = Service(settings).collect("cli")
    if as_json:
        typer.echo(
            _json_dump(
                {
                    "fetched_at": book.fetched_at.isoformat(),
                    "rates": [
                        {
                            "venue": r.venue,
                            "component": r.component,
                            "value": r.value,
                            "sources": list(r.sources),
                            "observed_at": r.observed_at.isoformat(),
                            "notes": list(r.notes),
                            "spread": r.spread,
                            "disagree": r.disagree,
                            "change": r.change,
                            "independent": r.independent,
                            "independence": independent_of(r.independent, len(r.sources)),
                            "lineage": list(r.lineage),
                            "urls": list(r.urls),
                        }
                        for r in book.rates
                    ],
                    "rejected": [vars(r) for r in book.rejected],
                    "failed_sources": book.failed_sources,
                    "missing": [{"venue": v, "component": c} for v, c in book.missing],
                }
            )
        )
    else:
        render.rates_table(_console(), book, render.venue_names(settings))
    if not book.rates:
        raise typer.Exit(EXIT_NO_RATES)


@app.command()
@exit_codes
def rebalance(
    *,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="record the plan as applied and move the book (default: dry run)")
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="seconds to wait if another rebalance is running")
    ] = 30.0,
    sensitivity: Annotated[
        bool,
        typer.Option(
            "--sensitivity",
            help="also re-solve with each risk node's p and lgd halved and doubled and the CVaR budget ± 1 pp, "
            "and report which assumptions move the target most (with --json: {plan, sensitivity})",
        ),
    ] = False,
    safe_batch: Annotated[
        Path | None,
        typer.Option(
            "--safe-batch",
            help="write the plan's Safe Transaction Builder files into this folder, one per date of its timeline",
        ),
    ] = None,
    safe: Annotated[
        str | None, typer.Option("--safe", help="the Safe's address (default: [portfolio] address)")
    ] = None,
    slippage: Annotated[
        float,
        typer.Option(
            "--slippage", min=0.0, max=0.05, help="allowance taken off amounts a deposit must return"
        ),
    ] = 0.005,
    rate: Annotated[
        list[str] | None,
        typer.Option("--rate", help="an exchange rate read at planning time, VENUE=RATE (repeatable)"),
    ] = None,
) -> None:
    """Propose a rebalance now, record it, and log it. Dry run unless --apply: then the book moves to the target
    (nothing is traded: the book is what the service believes you hold). The plan's timeline shows each move on
    the day the chain allows it; --safe-batch writes the transactions to sign, never sends any."""
    from datetime import UTC, datetime

    from aggregator.interfaces import render
    from aggregator.interfaces.cli import batch
    from aggregator.service import Service
    from execution.timeline import plan_timeline

    settings = _load(config)
    account = safe or settings.portfolio.address
    if safe_batch is not None:
        if account is None or re.fullmatch(r"0x[0-9a-fA-F]{40}", account) is None:
            print(
                f"--safe-batch needs the Safe's address: --safe 0x… (40 hex digits) or [portfolio] address "
                f"(got {account!r})",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_USAGE)
        try:
            rates_given = batch.parse_rates(rate or [])
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            raise typer.Exit(EXIT_USAGE) from exc
    service = Service(settings)
    try:
        service.refuse_if_led()  # with [coordination]: a live leader runs the manual rebalances (#18)
        result = service.rebalance("cli", apply=apply, wait_seconds=wait)
        plan = result.plan
        created = datetime.now(UTC)
        timeline = plan_timeline(plan, created.date())
        found = None
        market = None
        if sensitivity:
            from aggregator.risk.market import market_risk
            from aggregator.risk.report import priors_of
            from aggregator.risk.sensitivity import sensitivity as risk_sensitivity

            found = risk_sensitivity(plan.problem.inputs)
            market = market_risk(  # the target's exits and ladder priced under the recorded depegs
                settings.universe(),
                settings.limits.ladder,
                plan.target_weights,
                plan.portfolio_eth,
                priors_of(settings.risk.scorecard),
            )
        if as_json:
            if found is None or market is None:
                typer.echo(_json_dump(plan.model_dump(mode="json")))
            else:
                body = {"plan": plan.model_dump(mode="json"), "sensitivity": found.to_json()}
                typer.echo(_json_dump(body | {"market": market.to_json()}))
            print(f"proposal {result.run_id}", file=sys.stderr)  # stdout stays the plan's JSON
        else:
            render.plan_report(
                _console(),
                plan,
                applied=apply,
                timeline=timeline if plan.moves else None,
                names=render.venue_names(settings),
            )
            typer.echo(f"proposal {result.run_id} (`aggregator show {result.run_id}`)")
            if found is not None:
                from aggregator.risk import report as risk_report

                risk_report.render_sensitivity(_console(), found)
                if market is not None:
                    risk_report.render_market(_console(), market, "the plan's target")
        if safe_batch is not None and account is not None:
            resolved: dict[str, str] = {}
            if settings.portfolio.rpc_url is not None:  # the rates and registry addresses as of now, on chain
                from aggregator.core.errors import SourceError
                from aggregator.service.chain import read_book

                try:
                    chain = read_book(settings.portfolio.rpc_url, account)
                    rates_given = chain.rates | rates_given  # --rate overrides what the chain says
                    resolved = chain.resolved
                except SourceError as exc:
                    print(
                        f"rates not read from chain ({exc}); steps needing them are manual", file=sys.stderr
                    )
            written, listed = batch.write(
                safe_batch,
                result.run_id,
                timeline,
                safe=account,
                slippage=slippage,
                rates=rates_given,
                created=created,
                resolved=resolved,
                rpc_url=settings.portfolio.rpc_url,
            )
            render.simulation_report(_console(), listed)
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
    finally:
        service.close()  # the webhook is tried (with retries) for up to notify.deadline_seconds before exit
    if plan.hold is not None and plan.hold.is_problem:
        raise typer.Exit(EXIT_PLAN_PROBLEM)


@app.command()
@exit_codes
def book(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """The book per venue: read on chain at one block when [portfolio] address and rpc_url are set (tokens and
    ETH, pending Lido withdrawals in flight), else the applied plans' book, else the config's holdings. Exit 4
    when the chain cannot be read."""
    from aggregator.core.errors import SourceError
    from aggregator.service import Service

    settings = _load(config)
    portfolio = settings.portfolio
    try:
        out = Service(settings).book_report()
    except SourceError as exc:
        print(f"the book could not be read from chain: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_NO_RATES) from exc
    if as_json:
        typer.echo(_json_dump(out))
        return
    console = _console()
    console.print(f"book of {portfolio.address or 'the config'}: {out['source']}")
    for p in out.get("positions", []):  # type: ignore[attr-defined]
        console.print(f"  {p['venue']:<20} {p['tokens']:>16,.6f} {p['token']:<34} = {p['eth']:>14,.6f} ETH")
    for venue, eth in out["holdings_eth"].items():  # type: ignore[attr-defined]
        console.print(f"  {venue:<20} {eth:>14,.6f} ETH")
    for f in out.get("in_flight", []):  # type: ignore[attr-defined]
        if f.get("request_id") is not None:
            state = "finalised, claimable" if f["finalized"] else "waiting for finalisation"
            when = f"Lido request {f['request_id']}, {state}"
        elif f.get("nonce") is not None:
            state = "completable now" if f["finalized"] else f"due in {f['days_left']:.1f} days"
            when = f"EigenLayer withdrawal nonce {f['nonce']}, block {f['due_block']}, {state}"
        elif f.get("kind") == "deposit":
            console.print(
                f"  deposit waiting {f['from_venue']} → {f['to_venue']}: {f['eth']:,.6f} ETH (held in "
                f"{f['from_venue']} until the book's exits land; made {f['due']})"
            )
            continue
        else:
            when = f"due {f['due']}"
        console.print(f"  in flight {f['from_venue']} → {f['to_venue']}: {f['eth']:,.6f} ETH ({when})")
    for note in out.get("unvalued", []):  # type: ignore[attr-defined]
        console.print(f"  not valued: {note}")


@app.command()
@exit_codes
def history(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many, newest first")] = 20,
) -> None:
    """The latest proposals: time, trigger, mode, status, turnover, yield change."""
    from aggregator.interfaces import render
    from aggregator.service import Service

    settings = _load(config)
    rows = Service(settings).store.proposals(limit)
    if as_json:  # `damaged` only on a damaged row, as before the rows were typed
        typer.echo(_json_dump([r.model_dump(exclude_unset=True) for r in rows]))
    else:
        render.history_table(_console(), rows)


@app.command()
@exit_codes
def show(
    proposal_id: Annotated[
        str, typer.Argument(help="the proposal id (from history), a unique start of one, or `latest`")
    ],
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """One proposal in full: moves, why, binding limits, costs. `show latest` shows the newest; a unique prefix of
    an id is enough."""
    from aggregator.interfaces import render
    from aggregator.service import Service

    settings = _load(config)
    service = Service(settings)
    store = service.store
    proposal_id = _resolve_proposal(store, proposal_id)
    try:
        found = store.proposal(proposal_id)
    except DamagedRecordError as exc:
        import structlog

        structlog.get_logger(__name__).error("proposal_damaged", proposal=proposal_id, error=str(exc))
        print(
            f"damaged: {exc}; the other proposals are unaffected (`aggregator history` lists them)",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_STORE) from exc
    if found is None:
        print(f"no proposal {proposal_id!r}; `aggregator history` lists them", file=sys.stderr)
        raise typer.Exit(EXIT_NOT_FOUND)
    meta, plan = found
    timeline = service.proposal_timeline(meta.id, plan, meta.created_at)  # as the book dates its deposits now
    if as_json:
        typer.echo(
            _json_dump(
                {
                    "proposal": meta.model_dump(),
                    "plan": plan.model_dump(mode="json"),
                    "timeline": timeline.as_dict(),
                }
            )
        )
    else:
        console = _console()
        console.print(
            f"proposal [bold]{meta.id}[/] at {meta.created_at:%Y-%m-%d %H:%M} UTC, "
            f"trigger {meta.trigger}, {meta.mode.replace('_', ' ')}"
        )
        render.plan_report(
            console,
            plan,
            applied=meta.mode == "applied",
            timeline=timeline,
            names=render.venue_names(settings),
        )


def _resolve_proposal(store: Store, given: str) -> str:
    """`latest`, a whole id, or a unique start of one: the whole id. Exits 7 when nothing matches, 2 when the
    start is shared by several (they are listed)."""
    if given == "latest":
        rows = store.proposals(1)
        if not rows:
            print("no proposals yet: `aggregator rebalance` makes one", file=sys.stderr)
            raise typer.Exit(EXIT_NOT_FOUND)
        return rows[0].id
    matches = store.proposal_ids(given)
    if given in matches or not matches:
        return given  # whole, or unknown (reported by the caller)
    if len(matches) > 1:
        print(
            f"{given!r} starts {len(matches)}{'+' if len(matches) == 10 else ''} proposal ids "
            f"({', '.join(matches[:5])}); give more characters",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_USAGE)
    return matches[0]


@app.command()
@exit_codes
def health(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Ask the running daemon's /health (the container's HEALTHCHECK): exit 0 if it answers ok; 1 if it does not
    answer, or answers degraded (no successful cycle within api.health_max_age_seconds), with the reason."""
    from aggregator.interfaces.cli.probe import api_address, refused

    address = api_address(config)
    if address is not None and refused(*address):  # nothing listening: said at once, before the heavy imports
        print(
            f"unhealthy: nothing listens on {address[0]}:{address[1]} (connection refused); is `aggregator run` "
            "up with this config?",
            file=sys.stderr,
        )
        raise typer.Exit(1)

    import httpx

    from aggregator.settings import load_settings

    settings = load_settings(config)
    host = "127.0.0.1" if settings.api.host in ("0.0.0.0", "::") else settings.api.host
    url = f"http://{host}:{settings.api.port}/health"
    try:
        response = httpx.get(url, timeout=5)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    status = body.get("status") if isinstance(body, dict) else None
    if status != "ok" or response.status_code != 200:
        reason = body.get("reason") if isinstance(body, dict) else None
        print(
            f"unhealthy: {url}: {status or 'no status'} (HTTP {response.status_code})"
            + (f": {reason}" if reason else ""),
            file=sys.stderr,
        )
        raise typer.Exit(1)
    typer.echo(f"ok: {url}")


@app.command()
@exit_codes
def risk(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """The risk priors: each node's scorecard (attributes, points, grade), its p and lgd, overrides with their
    reasons, where each fact comes from, and the calibration claims of the mapping (docs/risk.md); then market
    risk: each token's exit priced under its depeg, and the configured book's liquidity ladder if the queues stall."""
    from aggregator.risk import report as risk_report
    from aggregator.risk.market import market_risk

    settings = _load(config)
    book = {v: eth / settings.portfolio_eth for v, eth in settings.portfolio.holdings_eth.items()}
    priors = risk_report.priors_of(settings.risk.scorecard)
    market = market_risk(settings.universe(), settings.limits.ladder, book, settings.portfolio_eth, priors)
    if as_json:
        found = risk_report.as_json(settings.universe().nodes, settings.risk.scorecard)
        typer.echo(_json_dump(found | {"market": market.to_json()}))
    else:
        risk_report.render(_console(), settings.universe().nodes, settings.risk.scorecard)
        risk_report.render_market(_console(), market, "the configured book, portfolio.holdings_eth")


@app.command("check-config")
@exit_codes
def check_config(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Validate the config, print a summary of the universe, and check the limits can all be met."""
    from aggregator.interfaces import render
    from aggregator.interfaces.api.guard import check_exposure
    from aggregator.settings import resolve_host
    from optimizer import Limits, OptimizationInputs
    from optimizer.optimize import optimize

    settings = _load(config)
    if settings.api.enabled:
        check_exposure(settings.api.host, settings.api.token)  # what `run` would refuse
        resolve_host("api.host", settings.api.host)
    console = _console()
    render.config_summary(console, settings, str(config))
    # Feasibility of the limits alone: every yield set to zero, no turnover cap, the current book as given.
    zero = {v.id: {c.name: 0.0 for c in v.components} for v in settings.venues}
    limits = Limits.model_validate(settings.limits.model_dump() | {"max_turnover": None})
    plan = optimize(
        OptimizationInputs(
            universe=settings.universe(),
            limits=limits,
            portfolio_eth=settings.portfolio_eth,
            holdings_eth=dict(settings.portfolio.holdings_eth),
            yields=zero,
        )
    )
    if plan.diagnosis or plan.problem.objective is None:
        for d in plan.diagnosis:
            console.print(f"[red]error[/]: {d.message}")
        what = (
            f"{len(plan.diagnosis)} limit(s) cannot be met (listed above)" if plan.diagnosis else plan.reason
        )
        raise ConfigError(f"{config}: {what}")
    console.print("[green]ok[/]: the tree, risk nodes, sources and limits are consistent and feasible")


def _stress_event(text: str) -> StressEvent:
    """NODE@YYYY-MM-DD[:LOSS], e.g. kelp@2024-06-03:0.2 (LOSS a fraction; default the node's lgd)."""
    from aggregator.settings.backtest import StressEvent

    m = re.fullmatch(r"([^@]+)@(\d{4}-\d{2}-\d{2})(?::([0-9.]+))?", text.strip())
    if not m:
        raise typer.BadParameter(f"{text!r}: expected NODE@YYYY-MM-DD[:LOSS], e.g. kelp@2024-06-03:0.2")
    try:
        return StressEvent(
            node=m.group(1),
            on=date.fromisoformat(m.group(2)),
            loss=None if m.group(3) is None else float(m.group(3)),
        )
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc} (LOSS is a fraction from 0 to 1)") from exc


@app.command()
@exit_codes
def backtest(
    *,
    config: ConfigOpt = DEFAULT_CONFIG,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            envvar=f"{ENV_PREFIX}BACKTEST_DIR",
            help="report folder (default: the config's backtest.output_dir; the image sets /data/backtest)",
        ),
    ] = None,
    stress: Annotated[
        list[str] | None,
        typer.Option("--stress", help="NODE@YYYY-MM-DD[:LOSS]: that risk node fails that day (repeatable)"),
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="fetch DefiLlama /chart series into the cache first (internet)")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar on stderr")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Replay the configured history through the optimizer and the baseline strategies; write the report
    (report.html, PNG plots, summary.json) and print the table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from aggregator.interfaces import render
    from aggregator.interfaces.research_inputs import inputs_from_settings
    from aggregator.research.backtest import report
    from aggregator.research.backtest.history import download_charts
    from aggregator.research.backtest.run import backtest as run_backtest

    settings = _load(config)
    events = [_stress_event(s) for s in stress or []]
    if download and settings.backtest is not None:
        for path in download_charts(settings.backtest):
            print(f"downloaded {path}", file=sys.stderr)
    show = progress and sys.stderr.isatty() and not as_json
    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=None)
        result = run_backtest(
            inputs_from_settings(settings),
            stress=events,
            progress=lambda t, n: bar.update(task, completed=t, total=n),
        )
    assert settings.backtest is not None
    folder = out or Path(settings.backtest.output_dir)
    files = report.write(result, folder)
    if as_json:
        typer.echo(_json_dump(report.summary(result) | {"files": {k: str(v) for k, v in files.items()}}))
        return
    console = _console() if sys.stdout.isatty() else _console(width=160)  # a pipe or file gets every column
    render.backtest_table(console, result)
    render.incidents_table(console, result)
    typer.echo(f"report: {files['report']}")


@app.command()
@exit_codes
def sweep(
    *,
    config: ConfigOpt = DEFAULT_CONFIG,
    grid: Annotated[
        Path, typer.Option("--grid", "-g", help="grid TOML: [grid] axes and values (config/sweep-demo.toml)")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            envvar=f"{ENV_PREFIX}SWEEP_DIR",
            help="output folder: sweep.csv, sweep.json, cells/, frontier PNGs (the image sets /data/sweep)",
        ),
    ] = Path("var/sweep"),
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", help="local worker processes (default: the CPUs, up to 8)"),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="a Dask scheduler, e.g. tcp://host:8786, instead of local processes"),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar on stderr")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run the backtest over a grid of settings (CVaR budget, λ, smoothing window, no-trade band, horizon,
    turnover cap, risk priors scaled) on local worker processes or a Dask cluster; write the table, each cell's
    summary and the frontier plots. Exit 9 when a cell failed (the others are written; docs/scaling.md)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from aggregator.interfaces.cli.sweep import engine_for, render
    from aggregator.interfaces.research_inputs import inputs_from_settings
    from aggregator.research.sweep.grid import load_grid
    from aggregator.research.sweep.run import run_sweep, table_rows

    inputs = inputs_from_settings(_load(config))
    cells = load_grid(grid, inputs)
    engine = engine_for(workers, cluster)
    show = progress and sys.stderr.isatty() and not as_json
    with Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[failed]} failed"),
        console=_console(stderr=True),
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task("sweep", total=cells.size, failed=0)
        failures = 0

        def landed(r: CellResult) -> None:
            nonlocal failures
            failures += not r.ok
            bar.update(task, advance=1, failed=failures)

        result = run_sweep(inputs, cells, engine, out, on_result=landed)
    if as_json:
        typer.echo(
            _json_dump(
                {
                    "cells": table_rows(cells, result.results),
                    "failed": [r.id for r in result.failed],
                    "files": {k: str(v) for k, v in result.files.items()},
                }
            )
        )
    else:
        render(_console() if sys.stdout.isatty() else _console(width=200), result)
        typer.echo(f"table: {result.files['table']}; frontier: {result.files['frontier-cvar']}")
    print(
        f"{len(result.results)} cells in {result.seconds:.1f} s ({result.cells_per_minute:.1f} cells/min) "
        f"on {result.engine}",
        file=sys.stderr,
    )
    if result.failed:
        print(
            f"{len(result.failed)} of {len(result.results)} cells failed: "
            + ", ".join(f"{r.id} ({(r.error or '').splitlines()[0]})" for r in result.failed[:5]),
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_CELLS_FAILED)


db_app = typer.Typer(
    help="The database: check its integrity, back it up while the daemon runs (SQLite).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")


sources_app = typer.Typer(help="The configured data sources.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(sources_app, name="sources")


@sources_app.command("check")
@exit_codes
def sources_check(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Fetch each configured source once (live: needs internet) and print its status, latency, each value and the
    URL that answered. Exit 0 when every required quote (the only quote of a venue component) is usable, 4 if not."""
    from aggregator.interfaces.cli.sources import exit_code, render, report, run

    results = run(_load(config))
    if as_json:
        typer.echo(_json_dump(report(results)))
    else:
        render(_console(), results)
    raise typer.Exit(exit_code(results))


def _sqlite_file(config: Path) -> Path:
    from aggregator.store import integrity

    settings = _load(config)
    path = integrity.sqlite_path(settings.database.url)
    if path is None:
        where = settings.database.url.rsplit("@", maxsplit=1)[-1]
        print(
            f"`aggregator db` works on an SQLite store; database.url is {where!r}: use that database's own tools "
            "(PostgreSQL: pg_amcheck, pg_dump)",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_USAGE)
    return path


@db_app.command("check")
@exit_codes
def db_check(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Run SQLite's full `PRAGMA integrity_check` on the store (read-only, safe while the daemon runs): prints
    `ok` and exits 0, or prints what is damaged, how to recover, and exits 8."""
    from aggregator.store import integrity

    path = _sqlite_file(config)
    report = integrity.integrity_report(path, quick=False)
    if report == ["ok"]:
        typer.echo(f"ok: {path} passes PRAGMA integrity_check")
        return
    for line in report:
        typer.echo(line)
    print(
        f"damaged: {path} fails PRAGMA integrity_check ({len(report)} problem(s) above). {integrity.RECOVERY}",
        file=sys.stderr,
    )
    raise typer.Exit(EXIT_STORE)


@db_app.command("backup")
@exit_codes
def db_backup(
    target: Annotated[Path, typer.Argument(help="the backup file to write (must not exist)")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Copy the store to TARGET through SQLite's online backup API (one consistent snapshot, safe while the daemon
    writes), then integrity-check the copy: exit 0 if it passes, 8 otherwise."""
    from aggregator.store import integrity

    path = _sqlite_file(config)
    if target.exists():
        print(f"{target} exists; choose a new file name (a backup never overwrites one)", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE)
    report = integrity.backup(path, target)
    if report != ["ok"]:
        for line in report:
            typer.echo(line)
        print(
            f"the copy {target} fails PRAGMA integrity_check: the store itself is damaged. {integrity.RECOVERY}",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_STORE)
    typer.echo(
        f"ok: {path} backed up to {target} ({target.stat().st_size} bytes, passes PRAGMA integrity_check)"
    )


def _json_dump(obj: object) -> str:
    """Strict JSON for `--json`: a non-finite number (NaN, Infinity) is written as null."""
    from aggregator.core import strictjson

    return strictjson.dumps(obj, indent=2, default=str)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
