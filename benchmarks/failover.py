"""Failover: two replica daemons on one real PostgreSQL; the leader is killed (SIGKILL) again and again.

    .venv/bin/python -m benchmarks.failover [--failovers 50] [--lease 2] [--every 0.1] [--seed 18]

Two `aggregator run` subprocesses on the demo config share a fresh database on a PostgreSQL server started for the
run (tests/helpers/postgres.py: Debian's binaries in a temporary directory), with `[coordination] replica_id` set
(a, b), `leader_lease_seconds = --lease` and a scheduled rebalance every `--every` minutes. Each round waits for
the leader's next scheduled `cycle_started`, kills it at a seeded random moment of the following second (mostly
mid-cycle), and times the follower: kill -> `leader_elected`, and kill -> its first scheduled `cycle_started`
(the catch-up of the dead leader's slot, or the next slot). The killed replica is started again as the follower.

Printed: median and max of both times over the failovers; how many slots were proposed and whether any slot got
two proposals (exit code 1 if one did, or if a follower did not take over within 60 s).

Both replicas run on one host, so the follower sees the dead leader's process gone (its pid) and takes over at its
next tick (a third of the lease); a leader on another host is trusted until its lease expires, so there the
election waits up to the whole lease (`docs/scaling.md`, "## Replicas").
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.helpers.daemon import Daemon
from tests.helpers.demo import copy_demo, free_port
from tests.helpers.postgres import PostgresServer


def _start(config: Path, url: str, replica: str, lease: float, every: float) -> Daemon:
    daemon = Daemon(
        config,
        {
            "AGGREGATOR_DATABASE__URL": url,
            "AGGREGATOR_COORDINATION__REPLICA_ID": replica,
            "AGGREGATOR_COORDINATION__LEADER_LEASE_SECONDS": str(lease),
            "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": str(every),
            "AGGREGATOR_SCHEDULE__RATES_EVERY_MINUTES": "600",
            "AGGREGATOR_SCHEDULE__REBALANCE_ON_START": "false",
            "AGGREGATOR_API__PORT": str(free_port()),
            "AGGREGATOR_LOGGING__FORMAT": "json",
        },
    )
    daemon.wait_for("daemon_started", timeout=120)
    return daemon


def _stop(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        daemon.stop(timeout=60)
    if daemon.proc.stdout is not None:
        daemon.proc.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=50)
    parser.add_argument("--lease", type=float, default=2.0, help="coordination.leader_lease_seconds")
    parser.add_argument("--every", type=float, default=0.1, help="schedule.rebalance_every_minutes")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    server = PostgresServer.start()
    everyone: list[Daemon] = []
    elect: list[float] = []
    first: list[float] = []
    failed = False
    try:
        url = server.database()
        with tempfile.TemporaryDirectory() as tmp:
            config = copy_demo(Path(tmp))
            names = ["a", "b"]  # leader, follower
            leader = _start(config, url, "a", args.lease, args.every)
            leader.wait_for("leader_elected", timeout=30)
            follower = _start(config, url, "b", args.lease, args.every)
            everyone += [leader, follower]
            for n in range(args.failovers):
                i, _ = leader.wait_match("cycle_finished", timeout=120)
                leader.wait_match("cycle_started", start=i, timeout=120, trigger="schedule")
                time.sleep(rng.uniform(0.0, 1.0))
                leader.proc.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                leader.proc.wait(timeout=30)
                mark = len(follower.events)
                try:
                    j, _ = follower.wait_match("leader_elected", start=mark, timeout=60)
                    elect.append(time.monotonic() - killed)
                    follower.wait_match("cycle_started", start=j, timeout=60, trigger="schedule")
                    first.append(time.monotonic() - killed)
                except RuntimeError as exc:
                    print(f"failover {n}: {exc}", file=sys.stderr)
                    failed = True
                    break
                restarted = _start(config, url, names[0], args.lease, args.every)
                everyone.append(restarted)
                leader, follower, names = follower, restarted, names[::-1]
                print(f"failover {n + 1}: elected {elect[-1]:.2f}s, first cycle {first[-1]:.2f}s", flush=True)
            for d in everyone:
                _stop(d)
        slots = {
            e["run_id"]: e.get("slot")
            for d in everyone
            for e in d.events
            if e["event"] == "cycle_started" and "run_id" in e
        }
        engine = create_engine(url)
        with engine.connect() as conn:
            stored = [r.id for r in conn.execute(text("select id from proposals"))]
        engine.dispose()
    finally:
        for d in everyone:
            if d.proc.poll() is None:
                d.proc.kill()
        server.stop()
    per_slot = Counter(slots.get(run_id) for run_id in stored)
    doubled = {slot: k for slot, k in per_slot.items() if k > 1 or slot is None}
    print(
        f"\n{len(first)} failovers (lease {args.lease:g} s, a slot every {args.every * 60:g} s, both replicas on "
        "one host, PostgreSQL)"
    )
    if first:
        print(
            f"kill -> leader_elected:                 median {statistics.median(elect):.2f} s, max {max(elect):.2f} s"
        )
        print(
            f"kill -> first scheduled cycle_started:  median {statistics.median(first):.2f} s, max {max(first):.2f} s"
        )
    print(
        f"{len(stored)} proposals over {len(per_slot)} slots; slots with two proposals (or none): {doubled or 0}"
    )
    return 1 if failed or doubled else 0


if __name__ == "__main__":
    sys.exit(main())
