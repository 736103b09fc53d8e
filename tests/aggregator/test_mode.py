"""The proposal's `mode` is decided in one place (issue 19): a hold under `--apply` changed nothing, so the metrics'
`mode` label says `dry_run`, as the store's `mode` column and the webhook do. Before, the metrics said `applied`."""

from __future__ import annotations

from pathlib import Path

from aggregator.core.modes import proposal_mode
from aggregator.events.metrics import Metrics
from aggregator.service import Service
from tests.helpers.settings import demo_settings


def test_a_hold_under_apply_is_a_dry_run_in_the_metrics_and_the_store(tmp_path: Path) -> None:
    settings = demo_settings(
        tmp_path,
        database={"url": f"sqlite:///{tmp_path / 'mode.sqlite'}"},
        portfolio={"holdings_eth": {"eth": 10_000.0, "lido-steth": 0.0, "eigenlayer-steth": 0.0}},
        limits={"min_improvement_bps": 9000.0},  # idle ETH breaks no limit, and no move gains 90 %/yr
    )
    metrics = Metrics()
    service = Service(settings, metrics=metrics)
    try:
        plan = service.rebalance("cli", apply=True).plan
    finally:
        service.close()
    assert plan.status == "hold", plan.reason  # no move gains 90 %/yr
    stored = service.store.proposals(1)[0]
    assert stored.mode == "dry_run"
    sample = metrics.registry.get_sample_value(
        "aggregator_proposals_total", {"status": "hold", "mode": "dry_run"}
    )
    assert sample == 1.0
    assert metrics.registry.get_sample_value(
        "aggregator_proposals_total", {"status": "hold", "mode": "applied"}
    ) in (None, 0.0)


def test_proposal_mode() -> None:
    assert proposal_mode("rebalance", True) == "applied"
    assert proposal_mode("hold", True) == "dry_run"
    assert proposal_mode("rebalance", False) == "dry_run"
