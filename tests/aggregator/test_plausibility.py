"""Break 11: a unit change seen by one source. Per-component plausibility bounds reject it by default, and the jump
check covers one-source components after a restart or from the CLI (a fresh process), against the stored yield."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from aggregator.core.errors import ConfigError
from aggregator.service import Service
from aggregator.settings import Settings, load_settings
from aggregator.settings.rates import CrossCheckSettings
from tests.adapters.cases import FIXTURES
from tests.fixture_server import FixtureServer, Reply

NOW = datetime(2026, 9, 14, 13, tzinfo=UTC)
LIDO = "747c1d2a-c668-4682-b9f9-296708a3dd90"


def _pools(apy_base: float) -> Reply:
    doc = json.loads((FIXTURES / "defillama" / "pools.partly-reconstructed.json").read_text())
    for row in doc["data"]:
        if row["pool"] == LIDO:
            row["apyBase"] = apy_base
    return Reply(json.dumps(doc).encode())


def _settings(
    url: str, db: Path, component: dict[str, Any] | None = None, kind: str = "liquid_staking"
) -> Settings:
    """One venue whose `base` yield only DefiLlama quotes (the break's set-up), a real SQLite file."""
    return Settings.model_validate(
        {
            "portfolio": {"holdings_eth": {"eth": 1.0}},
            "venues": [
                {"id": "eth", "kind": "idle"},
                {
                    "id": "lido-steth",
                    "parent": "eth",
                    "kind": kind,
                    "components": [
                        {"name": "base", "quotes": [{"source": "llama", "key": LIDO}], **(component or {})}
                    ],
                },
            ],
            "sources": {"llama": {"adapter": "defillama", "base_url": url, "max_attempts": 1}},
            "database": {"url": f"sqlite:///{db}"},
        }
    )


def _collect(settings: Settings) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """One `rates` collection by a fresh service: what a CLI call or a restarted daemon does."""
    with capture_logs() as logs:
        book = Service(settings, now=lambda: NOW).collect("cli")
    return book.yields(), [dict(e) for e in logs]


def test_a_fraction_where_percent_is_expected_is_rejected_by_the_plausible_range(tmp_path: Path) -> None:
    """DefiLlama answering 0.0223 (a fraction) for 2.23 %: 0.000223 /yr, outside an LST's 0.5–15 %/yr."""
    with FixtureServer() as server:
        server.routes["/pools"] = [_pools(0.0223)]
        yields, logs = _collect(_settings(server.url, tmp_path / "a.sqlite"))
    assert yields == {}
    rejected = [e for e in logs if e["event"] == "quote_rejected"]
    assert len(rejected) == 1, logs
    assert "outside the plausible 0.005..0.15 of lido-steth.base" in rejected[0]["reason"]
    assert "plausible_staking" in rejected[0]["reason"]
    assert rejected[0]["venue"] == "lido-steth" and rejected[0]["component"] == "base"
    assert any(e["event"] == "yield_missing" for e in logs)


def test_a_component_can_widen_its_own_range(tmp_path: Path) -> None:
    """`plausible = [0, 0.2]` on the component accepts what the default refuses."""
    with FixtureServer() as server:
        server.routes["/pools"] = [_pools(0.3)]
        settings = _settings(server.url, tmp_path / "b.sqlite", {"plausible": [0.0, 0.2]})
        yields, _ = _collect(settings)
    assert yields == {"lido-steth": {"base": pytest.approx(0.003)}}


def test_other_components_default_to_a_wider_range(tmp_path: Path) -> None:
    """A restaking venue's component may be 0.3 % (plausible_other 0–30 %); the staking bound is not applied."""
    with FixtureServer() as server:
        server.routes["/pools"] = [_pools(0.3)]
        yields, _ = _collect(_settings(server.url, tmp_path / "c.sqlite", kind="restaking"))
    assert yields == {"lido-steth": {"base": pytest.approx(0.003)}}


def test_a_one_source_jump_after_a_restart_is_quarantined(tmp_path: Path) -> None:
    """2.2 % stored, then 4.8 % from the only source in a fresh process (CLI or restarted daemon): before, nothing
    remembered the source's last value and the jump went straight to the optimizer. Now it is held against the
    stored yield, `quote_quarantined`, and the venue's yield is missing until it is confirmed."""
    db = tmp_path / "d.sqlite"
    with FixtureServer() as server:
        server.routes["/pools"] = [_pools(2.235)]
        first, _ = _collect(_settings(server.url, db))
        server.routes["/pools"] = [_pools(4.8)]
        second, logs = _collect(_settings(server.url, db))
    assert first == {"lido-steth": {"base": pytest.approx(0.02235)}}
    assert second == {}
    held = [e for e in logs if e["event"] == "quote_quarantined"]
    assert len(held) == 1 and held[0]["value"] == pytest.approx(0.048)
    assert held[0]["last_accepted"] == pytest.approx(0.02235)


def test_a_small_move_after_a_restart_passes(tmp_path: Path) -> None:
    """Within jump_threshold of the stored yield, a one-source quote is used at once."""
    db = tmp_path / "e.sqlite"
    with FixtureServer() as server:
        server.routes["/pools"] = [_pools(2.235)]
        _collect(_settings(server.url, db))
        server.routes["/pools"] = [_pools(2.4)]
        yields, logs = _collect(_settings(server.url, db))
    assert yields == {"lido-steth": {"base": pytest.approx(0.024)}}
    assert not [e for e in logs if e["event"] == "quote_quarantined"]


@pytest.mark.parametrize("bounds", [[0.1, 0.05], [0.0, float("inf")], [-2.0, 0.1]])
def test_bad_plausible_bounds_are_a_config_error(bounds: list[float]) -> None:
    with pytest.raises(ValueError, match="low < high"):
        CrossCheckSettings(plausible_staking=(bounds[0], bounds[1]))


def test_bad_component_bounds_name_the_key(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "config" / "demo.toml").read_text()
    text = text.replace(
        'components = [{ name = "base", quotes = [{ source = "demo", key = "lido-steth.base" }] }]',
        'components = [{ name = "base", plausible = [0.2, 0.1], quotes = [{ source = "demo", key = "lido-steth.base" }] }]',
    )
    path = tmp_path / "demo.toml"
    scorecard = Path(__file__).resolve().parents[2] / "config" / "risk" / "scorecard.toml"
    path.write_text(text.replace('"risk/scorecard.toml"', f'"{scorecard}"'))
    with pytest.raises(ConfigError, match=r"lido-steth.*plausible.*low < high"):
        load_settings(path)
