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
from collections.abc import Iterator
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
from aggregator.service import Service
from aggregator.settings import load_settings
from tests.conftest import ROOT, copy_demo, free_port

TOKEN = "t0ken-for-tests-0123456789"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "var" / "test-artifacts"))


def pct(value: float) -> str:
    return f"{value * 100:.2f} %"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Service]]:
    """An API with one recorded dry run (so every section has data), shared by the module's tests."""
    settings = load_settings(copy_demo(tmp_path_factory.mktemp("dash")))
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
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
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
    assert proposal and service.store.proposals(1)[0]["id"] == proposal
    browser.save_screenshot(str(ARTIFACTS / "dashboard-dry-run.png"))
