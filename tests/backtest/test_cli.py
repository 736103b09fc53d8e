"""`aggregator backtest` as a user runs it: a real subprocess writing the report, valid PNGs, the same bytes twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from tests.aggregator.test_cli import run


def test_backtest_writes_report_pngs_and_summary_deterministically(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = demo_config()
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        res = run("backtest", "--config", str(config), "--out", str(out), "--stress", "kelp@2024-06-03:0.2")
        assert res.returncode == 0, res.stderr
        assert "optimizer λ=0.05" in res.stdout and "report:" in res.stdout
    one, two = outs
    pngs = sorted(p.name for p in one.glob("*.png"))
    assert {
        "value.png",
        "yields.png",
        "allocation-optimizer-lambda-0-05.png",
        "allocation-100-steth.png",
    } <= set(pngs)
    for name in pngs:
        with Image.open(one / name) as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 200
    html = (one / "report.html").read_text()
    for name in pngs:
        assert f'src="{name}"' in html  # the report links every plot
    assert "2024-01-23 → 2024-09-05" in html and "steth_apy_daily.csv" in html and "kelp fails" in html
    for name in ["report.html", "summary.json", *pngs]:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name  # same inputs, same bytes
    summary = json.loads((one / "summary.json").read_text())
    assert summary["period"] == {"start": "2024-01-23", "end": "2024-09-05", "days": 227}
    by_name = {s["name"]: s for s in summary["strategies"]}
    # one optimizer by default: the config's λ (the old second one at 4λ was a straw man); more via risk_aversions
    assert set(by_name) == {
        "100% stETH",
        "Lido + EigenLayer",
        "equal weight",
        "chase yield",
        "optimizer λ=0.05",
    }
    assert by_name["100% stETH"]["within_limits"] == 0.0  # above the Lido cap every day
    assert by_name["100% stETH"]["trades"] == 1 and by_name["100% stETH"]["turnover"] == 1.0
    assert by_name["100% stETH"]["stress_loss_eth"] == 0.0
    assert (
        by_name["equal weight"]["stress_loss_eth"] > 0.0
    )  # the optimizer no longer buys rsETH on its first print


def test_backtest_json_and_usage_errors(
    demo_config: Callable[..., Path], small_config_path: Path, tmp_path: Path
) -> None:
    res = run("backtest", "--config", str(small_config_path), "--out", str(tmp_path / "r"), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["period"]["days"] == 6 and Path(doc["files"]["report"]).exists()
    bad = run("backtest", "--config", str(small_config_path), "--stress", "lido-2024-01-25")
    assert bad.returncode == 2 and "NODE@YYYY-MM-DD" in bad.stderr
    unknown = run("backtest", "--config", str(small_config_path), "--stress", "kelp@2024-01-25")
    assert (
        unknown.returncode == 3
        and "unknown risk node 'kelp'; valid: ['lido', 'rocketpool']" in unknown.stderr
    )
    no_section = demo_config(lambda t: t[: t.index("# Backtest")])
    missing = run("backtest", "--config", str(no_section))
    assert missing.returncode == 3 and "no [backtest] section" in missing.stderr
