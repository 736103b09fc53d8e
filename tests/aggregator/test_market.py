"""Market (depeg) risk: each token's exit priced under its depeg from the scorecard's evidence, and the liquidity
ladder priced when the queues stall (idle ETH first, then the cheapest market sales; what nothing can raise)."""

from __future__ import annotations

import json

import pytest

from aggregator.risk.market import UNRECORDED_DEPEG, depegs, market_risk
from aggregator.risk.report import priors_of
from aggregator.settings import Settings, load_settings
from optimizer import LadderRung
from tests.helpers.cli import run as cli
from tests.helpers.demo import ROOT

DEMO = ROOT / "config" / "demo.toml"


@pytest.fixture(scope="module")
def demo() -> Settings:
    return load_settings(DEMO)


def test_depeg_sizes_come_from_the_evidence(demo: Settings) -> None:
    """stETH −6.5 % (E1), ezETH −13 % (E5), weETH −2.02 % (E6), each with its source; rETH has none on record
    and is priced at the unrecorded default, said so."""
    sizes = depegs(demo.universe(), priors_of(demo.risk.scorecard))
    assert sizes["lido-steth"][0] == pytest.approx(0.065) and "E1" in sizes["lido-steth"][1]
    assert sizes["renzo-ezeth"][0] == pytest.approx(0.13) and "E5" in sizes["renzo-ezeth"][1]
    assert sizes["etherfi-weeth"][0] == pytest.approx(0.0202) and "E6" in sizes["etherfi-weeth"][1]
    assert sizes["rocketpool-reth"] == (UNRECORDED_DEPEG, sizes["rocketpool-reth"][1])
    assert "none recorded" in sizes["rocketpool-reth"][1]
    assert "eigenlayer-steth" not in sizes  # a restaked position is no token: it has no market of its own


def test_exit_routes_carry_the_depeg(demo: Settings) -> None:
    m = market_risk(demo.universe(), (), {}, demo.portfolio_eth, priors_of(demo.risk.scorecard))
    by = {e.venue: e for e in m.exits}
    assert by["renzo-ezeth"].sell_now == pytest.approx(0.003 + 0.13)  # its DEX fee plus the depeg
    assert by["renzo-ezeth"].queue_days == 14
    assert by["lido-steth"].sell_now is None  # the demo configures no market route for stETH


def test_the_ladder_sells_the_cheapest_tokens_first_when_the_queues_stall(demo: Settings) -> None:
    """Idle 2 %, rETH 30 %, ezETH 20 %, weETH 10 % under idle ETH, 38 % restaked (no market): the 1-day rung's 10 %
    takes 8 % of weETH (−2.22 %); the 7-day rung's 50 % sells all weETH, all rETH (−6.55 %), then 8 % of ezETH
    (−13.3 %); a 90 % rung cannot be raised past the market's 60 % plus idle."""
    book = {
        "eth": 0.02,
        "rocketpool-reth": 0.30,
        "renzo-ezeth": 0.20,
        "etherfi-weeth": 0.10,
        "eigenlayer-steth": 0.38,
    }
    ladder = (
        LadderRung(days=1, min_share=0.10),
        LadderRung(days=7, min_share=0.50),
        LadderRung(days=30, min_share=0.90),
    )
    m = market_risk(demo.universe(), ladder, book, 10_000.0, priors_of(demo.risk.scorecard))
    one, seven, month = m.rungs
    assert one.sold == pytest.approx({"etherfi-weeth": 0.08})
    assert one.loss_eth == pytest.approx(0.08 * (0.002 + 0.0202) * 10_000.0)
    assert one.at_par == pytest.approx(
        0.02 + 0.30
    )  # idle and rETH's 1-day queue, at par as the ladder counts
    assert seven.sold == pytest.approx({"etherfi-weeth": 0.10, "rocketpool-reth": 0.30, "renzo-ezeth": 0.08})
    expected = 0.10 * 0.0222 + 0.30 * (0.0005 + UNRECORDED_DEPEG) + 0.08 * 0.133
    assert seven.loss_bps == pytest.approx(expected * 1e4)
    assert seven.short == pytest.approx(0.0, abs=1e-12)
    assert month.short == pytest.approx(0.90 - 0.02 - 0.60)


def test_cli_risk_prints_the_market_tables() -> None:
    """`aggregator risk` on the demo: the demo book's 7-day rung rests on Lido's queue (no market route for
    stETH), so if the queues stall 30 % of the book cannot be raised in a week."""
    done = cli("risk", "--config", str(DEMO), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    market = json.loads(done.stdout)["market"]
    rungs = {r["days"]: r for r in market["ladder"]}
    assert rungs[7.0]["short"] == pytest.approx(0.30)
    assert rungs[7.0]["at_par"] == pytest.approx(0.60)
    text = cli("risk", "--config", str(DEMO), env={"COLUMNS": "200"})
    assert text.returncode == 0
    assert "if the queues stall" in text.stdout and "no market route" in text.stdout
