"""History series: CSV shapes, rates → yields, gaps carried at most N days, bad values rejected, DefiLlama cache."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from aggregator.core.errors import ConfigError
from aggregator.interfaces.research_inputs import inputs_from_settings
from aggregator.research.backtest.history import HistoryError, build_history, download_charts, read_chart
from aggregator.settings import load_settings
from tests.fixture_server import FixtureServer, Reply

ROOT = Path(__file__).resolve().parents[2]
CHART_POOL = "747c1d2a-c668-4682-b9f9-296708a3dd90"


def with_series(csv_text: str, extra: str = "", gap: int = 1) -> Callable[[str], str]:
    """Edit the small config: stETH read from `mine.csv` (written beside the config) instead of the bundle."""

    def edit(text: str) -> str:
        text = text.replace("max_gap_days = 1", f"max_gap_days = {gap}")
        return text.replace(
            'path = "../data/history/steth_apy_daily.csv"\ncolumn = "apy_pct"',
            f'path = "mine.csv"\ncolumn = "apy_pct"\n{extra}',
        )

    return edit


def test_gaps_are_carried_at_most_max_gap_days_then_unavailable(small_config: Callable[..., Path]) -> None:
    path = small_config(with_series("", gap=1))
    (path.parent / "mine.csv").write_text("date,apy_pct\n2024-01-22,3.0\n2024-01-26,4.0\n")
    s = load_settings(path)
    assert s.backtest is not None
    h = build_history(inputs_from_settings(s), s.backtest)
    k = h.components.index("lido-steth.base")
    got = {d: h.values[t, k] for t, d in enumerate(h.days)}
    assert got[date(2024, 1, 22)] == pytest.approx(0.03)
    assert got[date(2024, 1, 23)] == pytest.approx(0.03)  # carried one day
    assert math.isnan(got[date(2024, 1, 24)]) and math.isnan(got[date(2024, 1, 25)])  # never invented
    assert got[date(2024, 1, 26)] == pytest.approx(0.04)
    assert got[date(2024, 1, 27)] == pytest.approx(0.04)
    assert math.isnan(got[date(2024, 1, 28)])
    assert h.row(2).get("lido-steth") is None  # 2024-01-24: the venue has no yield


def test_out_of_range_values_are_rejected_and_counted(small_config: Callable[..., Path]) -> None:
    path = small_config(with_series("", gap=5))
    (path.parent / "mine.csv").write_text("date,apy_pct\n2024-01-22,3.0\n2024-01-23,80\n2024-01-24,-1\n")
    s = load_settings(path)
    assert s.backtest is not None
    h = build_history(inputs_from_settings(s), s.backtest)
    k = h.components.index("lido-steth.base")
    assert h.values[1:4, k] == pytest.approx([0.03, 0.03, 0.03])  # the 80 % and −1 % never enter
    report = next(r for r in h.series if r.component == "lido-steth.base")
    assert report.rejected == 2 and report.observations == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("day,apy_pct\n2024-01-22,3\n", "no column ['date']"),
        ("date,apy\n2024-01-22,3\n", "no column ['apy_pct']"),
        ("date,apy_pct\n2024-01-22,3\n2024-01-22,4\n", "a second row for 2024-01-22"),
        ("date,apy_pct\n22/01/2024,3\n", "is not YYYY-MM-DD"),
        ("date,apy_pct\n2024-01-22,n/a\n", "'n/a' is not a number"),
    ],
)
def test_malformed_csv_names_file_line_and_what_is_valid(
    small_config: Callable[..., Path], content: str, message: str
) -> None:
    path = small_config(with_series(""))
    (path.parent / "mine.csv").write_text(content)
    s = load_settings(path)
    assert s.backtest is not None
    with pytest.raises(HistoryError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        build_history(inputs_from_settings(s), s.backtest)
    assert "mine.csv" in str(info.value)


def test_two_series_for_one_component_combine_as_their_median(small_config: Callable[..., Path]) -> None:
    def edit(text: str) -> str:
        return with_series("")(text) + (
            '\n[[backtest.series]]\ncomponent = "lido-steth.base"\npath = "other.csv"\ncolumn = "apy_pct"\n'
        )

    path = small_config(edit)
    (path.parent / "mine.csv").write_text("date,apy_pct\n2024-01-22,3.0\n2024-01-23,3.0\n")
    (path.parent / "other.csv").write_text("date,apy_pct\n2024-01-22,4.0\n")
    s = load_settings(path)
    assert s.backtest is not None
    h = build_history(inputs_from_settings(s), s.backtest)
    k = h.components.index("lido-steth.base")
    assert h.values[0, k] == pytest.approx(0.035)  # both
    assert h.values[1, k] == pytest.approx(0.035)  # other.csv carried one day
    assert h.values[2, k] == pytest.approx(0.03)  # only mine.csv (carried)


def test_config_names_unknown_components_and_bad_periods(small_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match=r"component 'lido-steth.apr' is not a venue component; valid: "):
        load_settings(small_config(lambda t: t.replace('"lido-steth.base"', '"lido-steth.apr"')))
    with pytest.raises(ConfigError, match=r"must be after backtest\.start"):
        load_settings(small_config(lambda t: t.replace("end = 2024-01-28", "end = 2024-01-01")))


def test_defillama_chart_is_downloaded_once_cached_and_read_offline(
    small_config: Callable[..., Path], fixture_server: FixtureServer
) -> None:
    fixture_server.routes[f"/chart/{CHART_POOL}"] = [
        Reply((ROOT / "tests/fixtures/defillama/chart_steth.reconstructed.json").read_bytes())
    ]

    def edit(text: str) -> str:
        text = text.replace(
            'path = "../data/history/steth_apy_daily.csv"\ncolumn = "apy_pct"',
            f'format = "defillama"\npool = "{CHART_POOL}"',
        )
        return text.replace("[backtest]\n", f'[backtest]\ndefillama_url = "{fixture_server.url}"\n')

    s = load_settings(small_config(edit))
    assert s.backtest is not None
    with pytest.raises(HistoryError, match="run `aggregator backtest --download`"):
        build_history(inputs_from_settings(s), s.backtest)
    written = download_charts(s.backtest)
    assert len(written) == 1 and written[0].exists()
    assert fixture_server.hits[f"/chart/{CHART_POOL}"] == 1
    h = build_history(inputs_from_settings(s), s.backtest)
    k = h.components.index("lido-steth.base")
    # the chart's points are stamped 23:00 UTC of each day: 2024-01-23's is 3.8 %, like the bundled CSV
    assert h.values[1, k] == pytest.approx(0.038)
    spec = s.backtest.series[0]
    assert read_chart(spec, Path(s.backtest.cache_dir))[0] == (date(2024, 1, 22), 3.2)


def test_values_the_daemon_would_reject_are_not_seen(small_config: Callable[..., Path]) -> None:
    """A 20 % stETH print is inside the series' own range (max_yield 0.5) but outside the daemon's plausible range
    for a staking base yield ([0.005, 0.15] by default): decisions do not see it, as the daemon would not."""
    path = small_config(with_series("", gap=5))
    (path.parent / "mine.csv").write_text("date,apy_pct\n2024-01-22,3.0\n2024-01-23,20\n")
    s = load_settings(path)
    assert s.backtest is not None
    h = build_history(inputs_from_settings(s), s.backtest)
    k = h.components.index("lido-steth.base")
    assert h.values[1:3, k] == pytest.approx([0.03, 0.03])  # the 20 % never enters; 3 % carried
    assert next(r for r in h.series if r.component == "lido-steth.base").rejected == 1


def test_a_series_of_daily_returns_is_seen_as_its_trailing_mean(small_config: Callable[..., Path]) -> None:
    """Rewards on one day a week (7 %, then 0.1 % on six days): with mean_days = 7 decisions see the week's mean,
    1.086 %, where a median would see 0.1 %; a day needs half the window observed."""
    rows = ["date,apy_pct"] + [f"2024-01-{d:02d},{7.0 if d % 7 == 0 else 0.1}" for d in range(15, 26)]
    path = small_config(with_series("\n".join(rows), extra="mean_days = 7", gap=5))
    (path.parent / "mine.csv").write_text("\n".join(rows) + "\n")
    s = load_settings(path)
    assert s.backtest is not None
    h = build_history(inputs_from_settings(s), s.backtest)
    k = h.components.index("lido-steth.base")
    got = {d: h.values[t, k] for t, d in enumerate(h.days)}
    assert got[date(2024, 1, 24)] == pytest.approx((7.0 + 6 * 0.1) / 7 / 100)
