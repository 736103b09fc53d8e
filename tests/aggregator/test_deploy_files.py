"""deploy/: the Grafana dashboard and the Prometheus config and alert rules parse, and every metric their queries
name is one the service exports (so a renamed metric cannot leave a blank panel or an alert that never fires);
the compose file mounts them behind the optional `monitoring` profile."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from aggregator.events.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAME = re.compile(r"\baggregator_[a-zA-Z0-9_:]*")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    """The sample names /metrics can serve, from the service's own registry (labelled ones included)."""
    return {
        family.name + suffix for family in Metrics().registry.collect() for suffix in SUFFIXES[family.type]
    }


def dashboard_exprs() -> list[str]:
    board: dict[str, Any] = json.loads((DEPLOY / "grafana/aggregator.json").read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_dashboard_names_only_exported_metrics_and_shows_every_venue_gauge() -> None:
    exprs = dashboard_exprs()
    named = {n for e in exprs for n in NAME.findall(e)}
    assert named <= exported(), sorted(named - exported())
    assert all(NAME.search(e) for e in exprs)  # every panel queries the service
    venue = {n for n in exported() if n.startswith("aggregator_venue_")}
    assert len(venue) == 4 and venue <= named


def test_alert_rules_name_only_exported_metrics() -> None:
    exprs = rule_exprs()
    assert len(exprs) >= 4
    named = {n for e in exprs for n in NAME.findall(e)}
    assert named and named <= exported(), sorted(named - exported())
    for e in exprs:
        assert NAME.search(e) or 'job="aggregator"' in e, e


def test_the_checks_see_a_wrong_name() -> None:
    """The name pattern finds a misspelt metric, so the subset checks above are not vacuous."""
    assert NAME.findall("rate(aggregator_source_failure_total[1h])") == ["aggregator_source_failure_total"]
    assert "aggregator_source_failure_total" not in exported()


def test_prometheus_scrapes_the_service_and_loads_the_rules() -> None:
    conf = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    assert conf["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = conf["scrape_configs"]
    assert job["job_name"] == "aggregator" and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["aggregator:8787"]


def test_compose_mounts_them_behind_the_monitoring_profile() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "profiles" not in services["aggregator"]  # `docker compose up` still starts only the service
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for mount in services[name]["volumes"]:
            source = mount.split(":", 1)[0]
            assert (ROOT / source).exists(), mount
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {
        p["datasource"]["uid"] for p in json.loads((DEPLOY / "grafana/aggregator.json").read_text())["panels"]
    }
    assert uids == {datasource["datasources"][0]["uid"]}
