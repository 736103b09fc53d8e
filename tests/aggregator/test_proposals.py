"""Proposals in the store: dry run never moves the book, --apply does; history and show; one cycle at a time across
processes; kill -9 in the middle of a cycle leaves a consistent store that the next run uses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from aggregator.coordination import Leases
from aggregator.store import Store
from optimizer import Plan
from tests.aggregator.test_cli import run


def db_env(tmp_path: Path) -> dict[str, str]:
    return {"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/agg.sqlite"}


def test_dry_run_never_moves_the_book_and_apply_does(tmp_path: Path) -> None:
    """Two dry runs propose from the config's holdings; after --apply the next plan starts from the target."""
    env = db_env(tmp_path)
    first = Plan.model_validate_json(run("rebalance", "--json", env=env).stdout)
    second = Plan.model_validate_json(run("rebalance", "--json", env=env).stdout)
    assert second.current_weights == first.current_weights
    assert Store(env["AGGREGATOR_DATABASE__URL"]).book() is None
    applied = run("rebalance", "--json", "--apply", env=env)
    assert applied.returncode == 0, applied.stderr
    applied_plan = Plan.model_validate_json(applied.stdout)
    target = applied_plan.target_eth
    position = Store(env["AGGREGATOR_DATABASE__URL"]).position()
    assert position is not None
    # The book is settled positions plus capital in flight: headed where the plan aimed, queued exits still out.
    assert position.headed() == pytest.approx({v: a for v, a in target.items() if a > 1e-9})
    queued = [m for m in applied_plan.moves if m.action == "withdraw" and m.days > 0]
    exited = {m.from_venue for m in queued}
    assert queued and sum(p.amount_eth for p in position.pending if p.from_venue in exited) == pytest.approx(
        sum(m.amount_eth for m in queued)
    )
    # deposits wait until the exits land: the settled capital they spend (idle ETH) is in flight from where it was
    sources = {m.from_venue for m in applied_plan.moves if m.action == "deposit"} - exited
    before = {v: w * applied_plan.portfolio_eth for v, w in applied_plan.current_weights.items()}
    spent = sum(before.get(v, 0.0) - position.settled.get(v, 0.0) for v in sources)
    assert spent > 0 and sum(
        p.amount_eth for p in position.pending if p.from_venue in sources
    ) == pytest.approx(spent)
    after = Plan.model_validate_json(run("rebalance", "--json", env=env).stdout)
    assert after.current_weights == pytest.approx({v: a / 1e4 for v, a in target.items()})


def test_history_and_show(tmp_path: Path) -> None:
    """history lists proposals newest first with trigger and mode; show returns the stored plan in full."""
    env = db_env(tmp_path)
    run("rebalance", env=env)
    run("rebalance", "--apply", env=env)
    rows = json.loads(run("history", "--json", env=env).stdout)
    assert [(r["trigger"], r["mode"]) for r in rows] == [("cli", "applied"), ("cli", "dry_run")]
    shown = run("show", rows[0]["id"], "--json", env=env)
    assert shown.returncode == 0
    data = json.loads(shown.stdout)
    plan = Plan.model_validate(data["plan"])
    assert data["proposal"]["id"] == rows[0]["id"] and len(plan.moves) == rows[0]["moves"]
    assert run("show", "no-such-id", env=env).returncode == 7


def test_a_second_rebalance_is_refused_while_one_runs(store_url: str) -> None:
    """While a live process holds the lease, the CLI waits --wait seconds, then exits 6 with a clear message
    (on SQLite and on PostgreSQL)."""
    env = {"AGGREGATOR_DATABASE__URL": store_url}
    store = Store(env["AGGREGATOR_DATABASE__URL"])

    owner = f"{socket.gethostname()}:{os.getpid()}:test"
    assert Leases(store).acquire("rebalance", owner, ttl_seconds=60)
    start = time.monotonic()
    out = run("rebalance", "--wait", "1", env=env)
    assert out.returncode == 6 and "another rebalance is running" in out.stderr
    assert time.monotonic() - start >= 1.0
    Leases(store).release("rebalance", owner)
    assert run("rebalance", "--wait", "0", env=env).returncode == 0


def test_a_lease_left_by_a_dead_process_is_taken_over(store_url: str) -> None:
    """A lease whose holder on this host no longer runs (kill -9) does not block the next cycle (on SQLite and
    on PostgreSQL)."""
    env = {"AGGREGATOR_DATABASE__URL": store_url}
    store = Store(env["AGGREGATOR_DATABASE__URL"])
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()

    assert Leases(store).acquire("rebalance", f"{socket.gethostname()}:{proc.pid}:dead", ttl_seconds=600)
    assert run("rebalance", "--wait", "0", env=env).returncode == 0
