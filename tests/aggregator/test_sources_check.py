"""`aggregator sources check`, a real subprocess on config/production.toml with every source pointed at the
recorded bodies on a local server (the command itself is for people with internet; the tests never reach it)."""

from __future__ import annotations

import json

import pytest

from tests.aggregator.test_production_config import _run


def test_every_source_once_with_status_latency_value_and_url() -> None:
    out = _run("sources", "check", on_fallback=frozenset({"rocketpool"}))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    by_source = {s["source"]: s for s in report["sources"]}
    assert set(by_source) >= {"defillama", "lido", "rocketpool", "coinbase", "binance", "etherfi", "onchain"}
    etherfi = by_source["etherfi"]
    assert etherfi["status"] == "ok" and etherfi["required"]  # the only quote of EigenLayer's restaking
    restaking = next(q for q in etherfi["quotes"] if q["key"] == "7_day_restaking_apr")
    assert restaking["value"] == pytest.approx(0.013050994875671165)
    assert restaking["url"].endswith("/etherfi/api/dapp/protocol/protocol-detail")
    (rp,) = by_source["rocketpool"]["quotes"]
    assert rp["url"].endswith("/rocketpool/api/apr")  # answered on its fallback
    assert by_source["lido"]["status"] == "rejected" and "stale" in by_source["lido"]["quotes"][0]["rejected"]
    assert not by_source["lido"]["required"]  # DefiLlama quotes stETH too
    assert by_source["onchain"]["status"] == "failed" and by_source["onchain"]["error"]
    assert all(s["seconds"] >= 0 for s in report["sources"])
    assert report["required_failed"] == []


def test_a_required_source_failing_exits_4_naming_it() -> None:
    """ether.fi answering on neither URL leaves EigenLayer's restaking unpriced: exit 4, named."""
    out = _run("sources", "check", down=frozenset({"etherfi"}))
    assert out.returncode == 4, out.stderr
    report = json.loads(out.stdout)
    assert "etherfi.7_day_restaking_apr" in report["required_failed"]
    (etherfi,) = [s for s in report["sources"] if s["source"] == "etherfi"]
    assert "every URL failed" in etherfi["error"]


def test_the_table_for_people() -> None:
    out = _run("sources", "check", as_json=False)
    assert out.returncode == 0, out.stderr
    assert "/etherfi/api/dapp/protocol/protocol-detail" in out.stdout
    assert "every required quote" in out.stdout
    assert "(rejected: stale" in out.stdout  # Lido's recording is weeks old: why it is not used, shown
