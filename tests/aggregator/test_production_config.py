"""config/production.toml end to end, offline: every source's URL pointed at recorded payloads on 127.0.0.1.

The recorded payloads are real but old, and the RPC fixture only knows rETH, so this is also a degraded cycle:
stale and failing sources are rejected and logged, and the plan rests on what is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import tomllib

import pytest

from optimizer import Plan
from tests.adapters.cases import FIXTURES, HTTP_CASES
from tests.adapters.test_onchain import answer
from tests.conftest import AGGREGATOR, ROOT
from tests.fixture_server import FixtureServer, Reply
from tests.optimizer.invariants import check_invariants

NATIVE = ["lido", "rocketpool", "coinbase", "binance", "etherfi", "renzo", "kelp", "defillama"]


def _run(
    *args: str,
    on_fallback: frozenset[str] = frozenset(),
    as_json: bool = True,
    down: frozenset[str] = frozenset(),
) -> subprocess.CompletedProcess[str]:
    """`aggregator ARGS` on production.toml with every source at the local server; the adapters named in
    `on_fallback` answer only on their fallback URL (the first one is 404), those in `down` on none."""
    db = tempfile.mkdtemp(prefix="aggregator-prod-")
    with FixtureServer() as server:
        for case in HTTP_CASES:
            if case.adapter in down:
                continue
            path = case.fallback_path if case.adapter in on_fallback else case.path
            server.routes[f"/{case.adapter}{path}"] = [Reply((FIXTURES / case.fixture).read_bytes())]
        server.routes["/lido/v1/protocol/steth/apr/sma"] = [
            Reply((FIXTURES / "lido/apr_sma.json").read_bytes())
        ]
        server.rpc["/rpc"] = answer
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
        env |= {f"AGGREGATOR_SOURCES__{n.upper()}__BASE_URL": f"{server.url}/{n}" for n in NATIVE}
        env["AGGREGATOR_SOURCES__ONCHAIN__RPC_URL"] = f"{server.url}/rpc"
        env["AGGREGATOR_SOURCES__ONCHAIN__MAX_ATTEMPTS"] = "1"
        env["AGGREGATOR_DATABASE__URL"] = f"sqlite:///{db}/aggregator.sqlite"
        env["COLUMNS"] = "200"  # the table for people, unwrapped
        return subprocess.run(
            [AGGREGATOR, *args, *(["--json"] if as_json else []), "--config", "config/production.toml"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=ROOT,
            check=False,
        )


def test_production_rates_offline_with_stale_and_failing_sources() -> None:
    """Native APIs and DefiLlama answer; the stale Lido SMA and the partial RPC are rejected and logged."""
    out = _run("rates")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    by_venue = {r["venue"]: r for r in data["rates"]}
    assert by_venue["rocketpool-reth"]["sources"] == ["defillama", "rocketpool"]
    # DefiLlama's rETH number is Rocket Pool's API (2.17 % that day), the recording 2.1 %: one observation
    assert by_venue["rocketpool-reth"]["value"] == pytest.approx((0.0217 + 0.021) / 2)
    assert by_venue["rocketpool-reth"]["independence"] == "1 independent of 2"
    assert by_venue["kelp-rseth"]["sources"] == ["kelp"]  # the recorded /pools has no rsETH pool
    # ether.fi's restaking APR from the recorded body, on today's URL
    assert by_venue["eigenlayer-steth"]["value"] == pytest.approx(0.013050994875671165)
    assert any("/api/dapp/protocol/protocol-detail" in u for u in by_venue["eigenlayer-steth"]["urls"])
    assert "onchain" in data["failed_sources"]
    assert any(r["source"] == "lido" and r["reason"].startswith("stale") for r in data["rejected"])
    assert "quote_rejected" in out.stderr and "source_failed" in out.stderr


def test_production_rebalance_offline_gives_a_valid_plan() -> None:
    """The same degraded cycle still yields a plan that meets every limit."""
    out = _run("rebalance")
    assert out.returncode == 0, out.stderr
    plan = Plan.model_validate_json(out.stdout)
    check_invariants(plan)
    # the recorded 3.14 %, pulled halfway toward the tokens' median ([rates] shrink = 0.5), as the cycle logs
    shrunk = next(
        json.loads(line)
        for line in out.stderr.splitlines()
        if line.startswith("{") and json.loads(line)["event"] == "estimates_shrunk"
    )
    wbeth = shrunk["estimates"]["binance-wbeth.base"]
    assert wbeth["own"] == pytest.approx(0.0314)
    assert plan.problem.inputs.yields["binance-wbeth"]["base"] == pytest.approx(wbeth["seen"])
    assert wbeth["seen"] == pytest.approx(0.5 * 0.0314 + 0.5 * wbeth["median"])


def test_production_rates_every_venue_fresh_with_lineage_and_fallbacks() -> None:
    """Acceptance: rates on production.toml from the recorded bodies give a fresh value for every venue, with
    lineage shown, while ether.fi and Rocket Pool answer only on their fallback URLs (the old ones)."""
    out = _run("rates", on_fallback=frozenset({"etherfi", "rocketpool"}))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    config = tomllib.loads((ROOT / "config/production.toml").read_text())
    venues = {v["id"] for v in config["venues"]} - {"eth"}
    assert {r["venue"] for r in data["rates"]} == venues
    assert not data["missing"]
    by_venue = {r["venue"]: r for r in data["rates"]}
    assert by_venue["eigenlayer-steth"]["value"] == pytest.approx(0.013050994875671165)
    assert any(
        u.endswith("/etherfi/api/protocol/protocol-detail") for u in by_venue["eigenlayer-steth"]["urls"]
    )
    assert any(u.endswith("/rocketpool/api/apr") for u in by_venue["rocketpool-reth"]["urls"])
    assert by_venue["rocketpool-reth"]["lineage"] == ["rocketpool-api: defillama, rocketpool"]
    assert by_venue["lido-steth"]["lineage"] == ["lido-api: defillama"]  # Lido's own SMA recording is stale
    assert "source_fallback_used" in out.stderr
    table = _run("rates", on_fallback=frozenset({"etherfi", "rocketpool"}), as_json=False)
    assert table.returncode == 0, table.stderr
    assert "1 independent of 2" in table.stdout and "rocketpool-api: defillama, rocketpool" in table.stdout
    assert "/rocketpool/api/apr" in table.stdout  # the URL that answered
