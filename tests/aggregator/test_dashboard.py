"""The dashboard and the offline API docs on a real uvicorn server over 127.0.0.1.

HTTP-level tests read the page's numbers and compare them with the API's. Browser tests drive Debian's headless
Chromium through its chromedriver (Selenium, never a downloaded browser): the pages load with no console error and
no request leaving 127.0.0.1, the numbers equal the API's, and the dry-run button is refused without the token and
works with it. Screenshots go to var/test-artifacts/ (TEST_ARTIFACTS overrides). Without chromium and
chromedriver the browser tests skip and say why (`.ci/run` installs both)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.interfaces.render import (
    move_costs,
    pct,  # the CLI's tables: the page shows every percent as they do
)
from aggregator.rates.collect import ComponentRate, RateBook
from aggregator.service import Service
from aggregator.settings import load_settings
from execution.timeline import plan_timeline
from optimizer import Plan
from tests.conftest import AGGREGATOR, ROOT, clean_env, copy_demo, free_port

TOKEN = "t0ken-for-tests-0123456789"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "var" / "test-artifacts"))


SECOND_SOURCE = """
[sources.second]
adapter = "static"
max_age_hours = 48
[sources.second.values.steth-second]
value = 0.035
note = "a second stETH source for the dashboard test: 1.265 pp above the snapshot, past the 0.5 pp tolerance"
"""
RETH_BEFORE = 0.05  # a stored rETH yield the snapshot's 2.17 % jumps from by more than jump_threshold (1 pp)


def _flagged(text: str) -> str:
    """The demo with a second stETH source that disagrees with the snapshot."""
    one = 'quotes = [{ source = "demo", key = "lido-steth.base" }]'
    assert one in text
    return text.replace(one, one[:-1] + ', { source = "second", key = "steth-second" }]', 1) + SECOND_SOURCE


def _backtest_summary(folder: Path) -> dict[str, Any]:
    """A backtest report folder as `aggregator backtest` leaves it (summary.json, report.html), with two
    strategies; the numbers are the test's own."""
    folder.mkdir(parents=True, exist_ok=True)
    strategy = {
        "costs_bps": 3.25,
        "costs_eth": 12.5,
        "cvar_max": 0.0412,
        "cvar_mean": 0.031,
        "final_eth": 10_321.5,
        "net_yield": 0.03105,
        "turnover": 0.84,
        "within_limits": 0.987,
        "worst_drawdown": 0.0123,
    }
    summary = {
        "period": {"start": "2024-01-23", "end": "2025-04-17", "days": 451},
        "start_eth": 10_000.0,
        "cvar_budget": 0.05,
        "strategies": [
            {"name": "optimizer", **strategy},
            {"name": "all stETH", **strategy, "net_yield": 0.0287, "costs_bps": 0.0, "turnover": 0.0},
        ],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "report.html").write_text("<!doctype html><title>Backtest</title><h1>Backtest report</h1>")
    return summary


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Service]]:
    """An API with one recorded dry run (so every section has data), shared by the module's tests: stETH's two
    sources disagree, rETH's quote is quarantined (it jumps from a stored 5 %), and a backtest report waits in the
    config's backtest.output_dir."""
    settings = load_settings(copy_demo(tmp_path_factory.mktemp("dash"), _flagged))
    assert settings.backtest is not None
    _backtest_summary(Path(settings.backtest.output_dir))
    seed = Service(settings)  # an earlier collection in the store: what a restarted service remembers
    seed.store.record_rates(
        RateBook(
            fetched_at=datetime.now(UTC) - timedelta(hours=1),
            rates=[
                ComponentRate(
                    "rocketpool-reth",
                    "base",
                    RETH_BEFORE,
                    ("demo",),
                    datetime.now(UTC) - timedelta(hours=1),
                    (),
                )
            ],
        ),
        "test",
    )
    seed.close()
    metrics = Metrics()
    service = Service(settings, metrics=metrics)
    api = ApiServer(create_app(service, metrics, SecretStr(TOKEN)), "127.0.0.1", free_port())
    api.start()
    base = f"http://127.0.0.1:{api.port}"
    done = httpx.post(
        f"{base}/api/v1/rebalance", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
    )
    assert done.status_code == 200, done.text
    try:
        yield base, service
    finally:
        api.stop()


def _cells(html: str, attr: str) -> dict[str, str]:
    """`data-<attr>="key"` rows or cells: key -> the text of the element's `value` cell (or the element's own)."""
    out: dict[str, str] = {}
    for m in re.finditer(rf'<(tr|td|b)[^>]*data-{attr}="([^"]+)"[^>]*>(.*?)</\1>', html, re.S):
        inner = m.group(3)
        value = re.search(r'class="num (?:value|share)">([^<]*)<', inner)
        out[unescape(m.group(2))] = unescape(
            value.group(1) if value else re.sub(r"<[^>]+>", "", inner)
        ).strip()
    return out


def test_the_page_shows_the_apis_numbers_as_percent(server: tuple[str, Service]) -> None:
    base, service = server
    with httpx.Client(base_url=base, timeout=60) as client:
        html = client.get("/").text
        latest = client.get("/api/v1/proposals", params={"limit": 1}).json()[0]
        rates = client.get("/api/v1/rates").json()
    fields = _cells(html, "field")
    for key in ("yield_before", "yield_after", "cvar_before", "cvar_after"):
        assert fields[key] == pct(latest[key]), key
    assert f'data-proposal="{latest["id"]}"' in html
    names = {v.id: v.name for v in service.settings.venues}
    shown = {
        (m.group(1), m.group(2)): m.group(3)
        for m in re.finditer(
            r'data-venue="([^"]+)" data-component="([^"]+)"><td>[^<]*</td><td>[^<]*</td>'
            r'<td class="num value">([^<]*)</td>',
            html,
        )
    }
    assert len(shown) == len(rates["rates"]) > 0
    for r in rates["rates"]:
        assert shown[(r["venue"], r["component"])] == pct(r["value"])
        assert f"<td>{names[r['venue']] or r['venue']}</td>" in html  # venue names, not ids
    assert "https://" not in html and "http://" not in html.replace(base, "")  # nothing from elsewhere


def test_moves_split_costs_and_name_the_gain_as_the_cli_does(server: tuple[str, Service]) -> None:
    """Each move's cost as the CLI's table shows it: fees and yield forgone (`render.move_costs` of the API's
    plan); the gain is the risk-adjusted one, with its λ."""
    base, _ = server
    with httpx.Client(base_url=base, timeout=60) as client:
        html = client.get("/").text
        latest = client.get("/api/v1/proposals", params={"limit": 1}).json()[0]
        plan = Plan.model_validate(client.get(f"/api/v1/proposals/{latest['id']}").json()["plan"])
    assert plan.moves and "cost ETH" not in html
    for m in plan.moves:
        row = re.search(rf'<tr data-step="{m.step}">(.*?)</tr>', html, re.S)
        assert row is not None, m.step
        fees, forgone = move_costs(plan, m)
        assert (
            f'<td class="num fees">{fees:,.4f}</td><td class="num forgone">{forgone:,.4f}</td>'
            in row.group(1)
        )
    assert f'<span id="gain">risk-adjusted gain {plan.gain_bps:.2f} bp/yr</span>' in html
    assert f"λ = {plan.problem.risk_aversion:g}" in html


def test_the_timeline_is_the_one_show_prints(server: tuple[str, Service]) -> None:
    """The latest plan's moves scheduled from its day (`execution.timeline.plan_timeline`, what `aggregator show`
    prints): one row per event, in order, with its day, amount and due claim."""
    base, _ = server
    with httpx.Client(base_url=base, timeout=60) as client:
        html = client.get("/").text
        latest = client.get("/api/v1/proposals", params={"limit": 1}).json()[0]
        plan = Plan.model_validate(client.get(f"/api/v1/proposals/{latest['id']}").json()["plan"])
    timeline = plan_timeline(plan, datetime.fromisoformat(latest["created_at"]).date())
    table = re.search(r'<table id="timeline">(.*?)</table>', html, re.S)
    assert table is not None and timeline.events
    shown = [
        [unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", row)]
        for row in re.findall(r"<tr><td.*?</tr>", table.group(1), re.S)
    ]
    assert [(r[0], r[1], r[2], r[5], r[6], r[7]) for r in shown] == [
        (
            str(e.day),
            e.date.isoformat(),
            e.kind,
            f"{e.amount_eth:,.4f}",
            str(e.move),
            f"claim day {e.claim_day}" if e.claim_day is not None else "",
        )
        for e in timeline.events
    ]
    assert f"done on day {timeline.days}" in html


def test_risk_bars_match_the_plan(server: tuple[str, Service]) -> None:
    base, _ = server
    with httpx.Client(base_url=base, timeout=60) as client:
        html = client.get("/").text
        latest = client.get("/api/v1/proposals", params={"limit": 1}).json()[0]
        plan = client.get(f"/api/v1/proposals/{latest['id']}").json()["plan"]
    budgets = _cells(html, "budget")
    assert budgets["CVaR 99%"] == pct(plan["before"]["cvar"])
    cvar_row = re.search(r'<tr class="([^"]*)" data-budget="CVaR 99%"', html)
    assert cvar_row is not None
    breached = plan["before"]["cvar"] > plan["problem"]["cvar_budget"]
    assert (cvar_row.group(1) == "bad") is breached


def test_api_docs_are_served_from_this_process(server: tuple[str, Service]) -> None:
    base, _ = server
    with httpx.Client(base_url=base, timeout=60) as client:
        for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = client.get(page).text
            srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert srcs and all(s.startswith("/") for s in srcs), srcs
            assert any(s.endswith(asset) for s in srcs)
            for s in srcs:
                assert client.get(s).status_code == 200, s


# --- in a real browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "no headless browser: install Debian's chromium and chromium-driver (`.ci/run` does) to run the "
            "dashboard in a browser"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download a driver or browser

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _requests_and_errors(driver: Any) -> tuple[list[str], list[str]]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return urls, errors


def _screenshot(driver: Any, path: Path) -> None:
    """The whole page, not only the window: the window is made as tall as the page for the shot."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    page = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, max(height, page + 150))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, height)


def _wait_text(driver: Any, css: str, timeout: float = 60) -> str:

    element = WebDriverWait(driver, timeout).until(
        lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.text.strip()), False)
    )
    return str(element.text)


@pytest.mark.parametrize(
    ("path", "ready"),
    [("/", "#latest b[data-proposal]"), ("/docs", ".swagger-ui .info .title"), ("/redoc", ".api-info h1")],
)
def test_pages_load_offline_without_console_errors(
    server: tuple[str, Service], browser: Any, path: str, ready: str
) -> None:
    base, _ = server
    browser.get_log("performance")  # drop what earlier pages logged
    browser.get_log("browser")
    browser.get(base + path)
    assert "restaking-aggregator" in _wait_text(browser, ready) or path == "/"
    urls, errors = _requests_and_errors(browser)
    name = path.strip("/") or "dashboard"
    _screenshot(browser, ARTIFACTS / f"{name}.png")
    assert urls, "the browser logged no request at all"
    outside = [u for u in urls if not u.startswith((base, "data:", "blob:", "about:"))]
    assert not outside, outside
    assert not errors, errors


def test_the_browser_shows_the_apis_numbers(server: tuple[str, Service], browser: Any) -> None:
    base, _ = server
    browser.get(base + "/")
    latest = httpx.get(f"{base}/api/v1/proposals", params={"limit": 1}, timeout=60).json()[0]
    for key in ("yield_before", "yield_after", "cvar_before", "cvar_after"):
        assert browser.find_element(By.CSS_SELECTOR, f'[data-field="{key}"]').text == pct(latest[key])
    rates = httpx.get(f"{base}/api/v1/rates", timeout=60).json()["rates"]
    for r in rates:
        cell = browser.find_element(
            By.CSS_SELECTOR, f'tr[data-venue="{r["venue"]}"][data-component="{r["component"]}"] td.value'
        )
        assert cell.text == pct(r["value"])


def test_the_dry_run_button_needs_the_token(server: tuple[str, Service], browser: Any) -> None:
    base, service = server
    before = len(service.store.proposals(500))
    browser.get(base + "/")

    def press(token: str) -> Any:
        field = browser.find_element(By.NAME, "token")
        field.clear()
        field.send_keys(token)
        result = browser.find_element(By.ID, "dry-run-result")
        browser.execute_script("arguments[0].removeAttribute('data-status')", result)
        browser.find_element(By.CSS_SELECTOR, "#dry-run button").click()
        WebDriverWait(browser, 120).until(lambda _: result.get_attribute("data-status"))
        return result

    refused = press("")
    assert refused.get_attribute("data-status") == "401"
    assert "refused (HTTP 401)" in refused.text
    assert len(service.store.proposals(500)) == before
    browser.get_log("browser")  # the 401 is logged by Chromium as a failed resource: expected here

    done = press(TOKEN)
    assert done.get_attribute("data-status") == "200", done.text
    proposal = done.get_attribute("data-proposal")
    assert proposal and service.store.proposals(1)[0].id == proposal
    browser.save_screenshot(str(ARTIFACTS / "dashboard-dry-run.png"))


# --- flags and the backtest report -----------------------------------------------------------------------------


def _cli_rates(service: Service, home: Path) -> dict[str, Any]:
    """`aggregator rates --json` (a real subprocess) on a copy of the server's config and database: the same
    stored memory, so the same disagreement, lineage and quarantine (the copy keeps the server's store as it is)."""
    config = copy_demo(home, _flagged)
    source = service.settings.database.url.removeprefix("sqlite:///")
    target = home / "var" / Path(source).name
    target.parent.mkdir(exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    done = subprocess.run(
        [AGGREGATOR, "rates", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        env=clean_env({"AGGREGATOR_LOGGING__LEVEL": "warning"}),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


def test_rate_flags_equal_the_apis_and_the_clis(server: tuple[str, Service], tmp_path: Path) -> None:
    """stETH's sources disagree, rETH's quote is quarantined: the page flags exactly what the API's stored
    collection and `aggregator rates --json` say, with the CLI's lineage words."""
    base, service = server
    with httpx.Client(base_url=base, timeout=60) as client:
        html = client.get("/").text
        api = client.get("/api/v1/rates").json()
    cli = _cli_rates(service, tmp_path)
    tolerance = service.settings.rates.disagreement_tolerance
    rows = {
        (m.group(1), m.group(2)): m.group(3)
        for m in re.finditer(r'<tr data-venue="([^"]+)" data-component="([^"]+)">(.*?)</tr>', html, re.S)
    }
    by_cli = {(r["venue"], r["component"]): r for r in cli["rates"]}
    flagged = set()
    for r in api["rates"]:
        row = rows[(r["venue"], r["component"])]
        disagree = r["spread"] is not None and r["spread"] > tolerance
        assert ("flag-disagree" in row) is disagree is by_cli[(r["venue"], r["component"])]["disagree"]
        if disagree:
            flagged.add((r["venue"], r["component"]))
            assert f'<td class="num spread">{pct(r["spread"])}</td>' in row
        words = by_cli[(r["venue"], r["component"])]["independence"]
        assert f'<span class="muted independence">({words})</span>' in row
    assert flagged == {("lido-steth", "base")}
    assert "2 independent" in rows[("lido-steth", "base")]

    quarantined = [j for j in api["rejected"] if j["reason"].startswith("quarantined jump from")]
    cli_quarantined = [j for j in cli["rejected"] if j["reason"].startswith("quarantined jump from")]
    assert [(j["source"], j["key"], j["value"]) for j in quarantined] == [
        (j["source"], j["key"], j["value"]) for j in cli_quarantined
    ]
    assert [(j["source"], j["key"]) for j in quarantined] == [("demo", "rocketpool-reth.base")]
    table = re.search(r'<table id="quarantined">(.*?)</table>', html, re.S)
    assert table is not None
    [shown] = re.findall(
        r'<tr data-venue="([^"]+)" data-component="([^"]+)" data-source="([^"]+)">.*?'
        r'<td class="num quote">([^<]*)</td><td class="num last">([^<]*)</td>',
        table.group(1),
        re.S,
    )
    assert shown == ("rocketpool-reth", "base", "demo", pct(quarantined[0]["value"]), pct(RETH_BEFORE))
    assert ("rocketpool-reth", "base") not in {(r["venue"], r["component"]) for r in api["rates"]}


def test_the_backtest_report_is_summarised_and_linked(server: tuple[str, Service]) -> None:
    base, service = server
    assert service.settings.backtest is not None
    folder = Path(service.settings.backtest.output_dir)
    summary = json.loads((folder / "summary.json").read_text())
    with httpx.Client(base_url=base, timeout=60) as client:
        html = client.get("/").text
        report = client.get("/dashboard/backtest/report.html")
        outside = [
            client.get(f"/dashboard/backtest/{name}").status_code for name in ("..%2Fdemo.sqlite", "x.toml")
        ]
    section = re.search(r'<section id="backtest">(.*?)</section>', html, re.S)
    assert section is not None
    for s in summary["strategies"]:
        row = re.search(rf'<tr data-strategy="{re.escape(s["name"])}">(.*?)</tr>', section.group(1), re.S)
        assert row is not None, s["name"]
        cells = dict(re.findall(r'data-field="([^"]+)">([^<]*)<', row.group(1)))
        assert cells == {
            "net_yield": pct(s["net_yield"]),
            "costs_bps": f"{s['costs_bps']:.1f}",
            "turnover": pct(s["turnover"]),
            "worst_drawdown": pct(s["worst_drawdown"]),
            "cvar_max": pct(s["cvar_max"]),
            "within_limits": pct(s["within_limits"]),
        }
    assert "2024-01-23 → 2025-04-17 (451 days)" in section.group(1)
    assert 'href="/dashboard/backtest/report.html"' in section.group(1)
    assert report.status_code == 200 and "Backtest report" in report.text
    assert outside == [404, 404]


def test_no_backtest_report_says_how_to_make_one(tmp_path: Path) -> None:
    """A folder without summary.json: the section says so, names the folder and the command; a damaged one is
    named as damaged, the rest of the page still renders."""
    settings = load_settings(copy_demo(tmp_path))
    assert settings.backtest is not None
    service = Service(settings)
    app = create_app(service, Metrics(), SecretStr(TOKEN))
    api = ApiServer(app, "127.0.0.1", free_port())
    api.start()
    try:
        html = httpx.get(f"http://127.0.0.1:{api.port}/", timeout=60).text
        assert "no backtest report in " in html and "<code>aggregator backtest</code> writes one" in html
        folder = Path(settings.backtest.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text("{not json")
        html = httpx.get(f"http://127.0.0.1:{api.port}/", timeout=60).text
        assert "summary.json cannot be read" in html and 'id="rates"' in html
    finally:
        api.stop()
        service.close()


def test_the_browser_shows_the_flags_and_the_backtest(server: tuple[str, Service], browser: Any) -> None:
    base, service = server
    browser.get(base + "/")
    api = httpx.get(f"{base}/api/v1/rates", timeout=60).json()
    steth = browser.find_element(By.CSS_SELECTOR, 'tr[data-venue="lido-steth"][data-component="base"]')
    assert steth.find_element(By.CSS_SELECTOR, ".flag-disagree").is_displayed()
    spread = next(r["spread"] for r in api["rates"] if r["venue"] == "lido-steth")
    assert steth.find_element(By.CSS_SELECTOR, "td.spread").text == pct(spread)
    reth = browser.find_element(By.CSS_SELECTOR, '#quarantined tr[data-venue="rocketpool-reth"]')
    assert reth.find_element(By.CSS_SELECTOR, "td.last").text == pct(RETH_BEFORE)
    assert service.settings.backtest is not None
    summary = json.loads((Path(service.settings.backtest.output_dir) / "summary.json").read_text())
    for s in summary["strategies"]:
        cell = browser.find_element(
            By.CSS_SELECTOR, f'tr[data-strategy="{s["name"]}"] [data-field="net_yield"]'
        )
        assert cell.text == pct(s["net_yield"])
    browser.execute_script("document.getElementById('rates').scrollIntoView()")
    browser.save_screenshot(str(ARTIFACTS / "dashboard-rates-backtest.png"))
    browser.get_log("performance")
    browser.find_element(By.LINK_TEXT, "full report").click()
    assert _wait_text(browser, "h1") == "Backtest report"
    urls, errors = _requests_and_errors(browser)
    assert any(u == f"{base}/dashboard/backtest/report.html" for u in urls), urls
    assert not errors, errors
