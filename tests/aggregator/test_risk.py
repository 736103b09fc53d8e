"""The risk scorecard: the mapping pinned on documented nodes, its calibration claims, the `risk` command, and
check-config refusing what an operator could not defend (a node without score or override, a value off its scale)."""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.risk import derive, load_scorecard
from aggregator.risk.calibration import REALISED_DEFI_LOSS, claims
from aggregator.risk.mapping import V1
from aggregator.settings import load_settings
from tests.conftest import AGGREGATOR, ROOT, clean_env

SCORECARD = ROOT / "config" / "risk" / "scorecard.toml"


def cli(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env({"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp}/a.sqlite", "COLUMNS": "220"})
    return subprocess.run(
        [AGGREGATOR, *args], check=False, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )


def test_mapping_pins_lido_and_kelp() -> None:
    """Lido (grade A, 3 points) and Kelp (grade D, 12 points: the 2026 bridge loss) give these priors under v1."""
    priors = derive(load_scorecard(SCORECARD))
    lido, kelp = priors["lido"], priors["kelp"]
    assert lido.score is not None and kelp.score is not None
    assert (lido.score.total, lido.score.grade, lido.p, lido.lgd) == (3, "A", 0.00465, 0.10)
    assert lido.p == round(0.004 * 1.115 ** math.log10(23.9), 5)  # grade A × the TVL factor of $23.9 bn
    assert dict(kelp.score.points) == {
        "age": 2,
        "audits": 0,
        "incidents": 3,
        "admin": 1,
        "oracle": 1,
        "withdrawal": 1,
        "custody": 3,
        "slashing": 1,
    }
    assert (kelp.score.grade, kelp.p, kelp.lgd) == ("D", 0.03272, 0.18)


def test_calibration_reproduces_the_base_rates_it_claims() -> None:
    """Every claim of v1 holds on the shipped scorecard; the A-grade figures are recomputed here by hand."""
    priors = derive(load_scorecard(SCORECARD))
    found = claims(priors)
    assert found and all(c.holds for c in found), [c for c in found if not c.holds]
    grade_a = [p for p in priors.values() if p.score and p.score.grade == "A" and not p.overridden]
    assert {p.node for p in grade_a} == {"lido", "rocketpool"}
    mean_p = sum(p.p for p in grade_a) / len(grade_a)
    assert mean_p == pytest.approx(0.00435) and abs(mean_p / V1.grade_p["A"] - 1) <= 0.2
    for p in grade_a:  # expected loss of an A-grade contract: 1–3 × the realised DeFi loss rate (0.024 %/yr)
        assert 1.0 <= p.p * p.lgd / REALISED_DEFI_LOSS <= 3.0
    years = sum(p.age_years or 0 for p in grade_a)
    expected = sum(p.p * (p.age_years or 0) for p in grade_a)
    assert f"{years:.1f} node-years" in found[0].figure and math.exp(-expected) >= 0.9


def test_a_mapping_ten_times_too_high_breaks_its_claims() -> None:
    """The claims are not vacuous: A-grade priors ten times higher fail the realised-loss claim."""
    priors = derive(load_scorecard(SCORECARD))
    inflated = {k: v.__class__(**{**vars(v), "p": v.p * 10}) for k, v in priors.items()}
    broken = {c.name for c in claims(inflated) if not c.holds}
    assert "grade A contracts: expected loss 1–3 × the realised DeFi loss rate" in broken


def test_demo_priors_come_from_the_scorecard() -> None:
    """The demo's risk nodes carry the scorecard's p and lgd, the override included; none is typed."""
    settings = load_settings(ROOT / "config" / "demo.toml")
    priors = derive(load_scorecard(SCORECARD))
    assert {n.id: (n.p, n.lgd) for n in settings.risk_nodes} == {k: (v.p, v.lgd) for k, v in priors.items()}
    assert settings.risk.scorecard == SCORECARD
    assert dict((n.id, n.p) for n in settings.risk_nodes)["ethereum-consensus"] == 0.001  # the override
    text = (ROOT / "config" / "demo.toml").read_text()
    assert not re.search(r"^(p|lgd) *=", text, re.MULTILINE)


def test_risk_command_prints_the_table_sources_overrides_and_calibration(tmp_path: Path) -> None:
    """`aggregator risk` shows each node's grade, derived p and lgd, the override's reason and every source."""
    out = cli("risk", "--config", "config/demo.toml", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("│ kelp "))
    assert "D (12)" in row and "3.272 %" in row and "18.0 %" in row and "bridge" in row
    assert (
        "override ethereum-consensus (mapped: p 0.400 %, lgd 5.0 %): the grades are calibrated" in out.stdout
    )
    assert "a forged cross-chain message released 116,500 rsETH" in out.stdout
    assert "[U] the operator's assessment" in out.stdout  # assumptions are marked, and shown as such
    assert "NO" not in re.findall(r"│ (yes|NO) +│", out.stdout) and out.stdout.count("yes") >= 5
    data = json.loads(cli("risk", "--json", "--config", "config/demo.toml", tmp=tmp_path).stdout)
    kelp = next(n for n in data["nodes"] if n["node"] == "kelp")
    assert (
        kelp["grade"] == "D"
        and kelp["p"] == 0.03272
        and kelp["sources"]["custody"].startswith("the 2026 loss")
    )
    assert data["mapping"] == "v1" and all(c["holds"] for c in data["calibration"])
    summary = cli("check-config", "--config", "config/demo.toml", tmp=tmp_path)
    assert (
        summary.returncode == 0 and "p and lgd from" in summary.stdout and "scorecard.toml" in summary.stdout
    )


SCORECARD_ERRORS = [
    (
        "[nodes.karak]\n",
        "[other.karak]\n",
        "risk_nodes[karak] has no score or override in the risk scorecard",
    ),
    ("audits = 0\nincidents = 1\nadmin = 1", "audits = 5\nincidents = 1\nadmin = 1", "nodes.lido.audits = 5"),
    ('custody = "bridge"', 'custody = "bridges"', "nodes.kelp.custody = 'bridges'"),
    (
        'withdrawal = 0\ncustody = "contract"\nslashing_live = false\nworst_depeg = 0.065',
        'custody = "contract"\nslashing_live = false\nworst_depeg = 0.065',
        "nodes.lido: scored attributes missing: ['withdrawal']",
    ),
    ('oracle = "AccountingOracle', 'oracle_ = "AccountingOracle', "no source for ['oracle']"),
    ('version = "v1"', 'version = "v0"', "version 'v0' is not a known mapping; valid: ['v1']"),
]


@pytest.mark.parametrize(
    ("old", "new", "message"), SCORECARD_ERRORS, ids=[m[:32] for *_, m in SCORECARD_ERRORS]
)
def test_check_config_rejects_a_bad_scorecard_naming_the_key(
    demo_config: Callable[..., Path], old: str, new: str, message: str
) -> None:
    """check-config exits 3 naming the node and key: an unscored node, a value off its scale, a missing source."""
    path = demo_config()
    card = path.parent / "risk" / "scorecard.toml"
    assert old in card.read_text()
    card.write_text(card.read_text().replace(old, new, 1).replace("[other.karak]", "[other-karak]"))
    if new.startswith("[other"):  # drop karak's whole card (its sources table too)
        text = card.read_text()
        card.write_text(re.sub(r"\[other-karak\].*?(?=\n\[nodes\.etherfi\])", "", text, flags=re.DOTALL))
    out = cli("check-config", "--config", str(path), tmp=path.parent)
    assert out.returncode == 3, out.stdout + out.stderr
    assert message in out.stderr
    if "audits = 5" in new:
        assert "scale 0–2: 0 = several independent audits" in out.stderr


def test_an_override_needs_a_reason_and_may_stand_alone(demo_config: Callable[..., Path]) -> None:
    """A node given only an override (p, lgd, reason) is accepted with those values; without a reason it is not."""
    path = demo_config()
    card = path.parent / "risk" / "scorecard.toml"
    text = card.read_text()
    start, end = text.index("[nodes.karak]"), text.index("[nodes.etherfi]")
    alone = '[nodes.karak]\noverride = { p = 0.05, lgd = 0.2, reason = "small TVL, unverified delays: cautious" }\n\n'
    card.write_text(text[:start] + alone + text[end:])
    settings = load_settings(path)
    assert next(n for n in settings.risk_nodes if n.id == "karak").p == 0.05
    card.write_text(text[:start] + alone.replace("small TVL, unverified delays: cautious", "") + text[end:])
    out = cli("check-config", "--config", str(path), tmp=path.parent)
    assert out.returncode == 3 and "nodes.karak.override.reason" in out.stderr


def test_the_environment_may_name_another_scorecard(
    demo_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AGGREGATOR_RISK__SCORECARD replaces the file's scorecard, and the priors are that scorecard's."""
    path = demo_config()
    other = tmp_path / "other.toml"
    other.write_text(
        SCORECARD.read_text().replace(
            "audits = 0\nincidents = 1\nadmin = 1", "audits = 2\nincidents = 3\nadmin = 2", 1
        )
    )
    monkeypatch.setenv("AGGREGATOR_RISK__SCORECARD", str(other))
    settings = load_settings(path)
    lido = next(n for n in settings.risk_nodes if n.id == "lido")
    assert settings.risk.scorecard == other and (lido.p, lido.lgd) == (
        derive(load_scorecard(other))["lido"].p,
        0.10,
    )
    assert lido.p == round(0.016 * 1.115 ** math.log10(23.9), 5)  # 8 points: grade C
