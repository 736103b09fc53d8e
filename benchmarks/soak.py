"""Soak: the daemon on an accelerated schedule for 1,000 rebalance cycles while its HTTP sources flap.

    .venv/bin/python -m benchmarks.soak [--cycles 1000] [--every 0.3] [--seed 7] [--window-days D]

The daemon runs as a subprocess on the bundled demo config with four real HTTP adapters added as second sources
(Lido, Rocket Pool, Coinbase, Binance: their recorded payloads from a local server on 127.0.0.1). Every half
second each source is re-scripted at random: up, down (503), slow (past its 0.2 s timeout), truncated JSON, or an
absurd value. Breakers cool down in 3 s, so they open and close many times. A rebalance is scheduled every
`--every` seconds and a rate collection every two; both write to the store.

Printed: the daemon's resident memory and open file descriptors after the first cycle, after 10 % of the cycles
(warm) and at the end; how long the first and the last tenth of the cycles took (does a growing store slow them); how every scheduled rebalance ended (completed, skipped with no usable yield, failed, or
missed with its logged reason); and scheduled runs that left no trace ("lost"). Exit code 1 if a run was lost,
a cycle started without finishing, memory grew more than 10 % or file descriptors by more than 2 after warm-up,
or the daemon did not exit 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tests.helpers.cases import HTTP_CASES
from tests.helpers.daemon import Daemon
from tests.helpers.demo import copy_demo
from tests.helpers.faults import FAULTS, scripted_reply
from tests.helpers.fixture_server import FixtureServer

SECOND_SOURCES = {  # demo venue -> adapter quoting it too
    "lido-steth": "lido",
    "rocketpool-reth": "rocketpool",
    "coinbase-cbeth": "coinbase",
    "binance-wbeth": "binance",
}
CASES = {c.adapter: c for c in HTTP_CASES}
WEIGHTS = (0.6, 0.1, 0.1, 0.1, 0.1)
OUTCOMES = ("rebalance_completed", "rebalance_skipped", "rebalance_failed")


def _edit(url: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        for venue, adapter in SECOND_SOURCES.items():
            case = CASES[adapter]
            text = text.replace(
                f'quotes = [{{ source = "demo", key = "{venue}.base" }}]',
                f'quotes = [{{ source = "demo", key = "{venue}.base" }}, '
                f'{{ source = "{adapter}", key = "{case.key}" }}]',
            )
            text += (
                f'\n[sources.{adapter}]\nadapter = "{adapter}"\nbase_url = "{url}/{adapter}"\n'
                "timeout_seconds = 0.2\nmax_attempts = 1\nmax_age_hours = 87600\nbreaker_cooldown_minutes = 0.05\n"
            )
        return text

    return edit


def _flap(server: FixtureServer, rng: random.Random, stop: threading.Event, scripted: Counter[str]) -> None:
    while not stop.wait(0.5):
        for adapter in SECOND_SOURCES.values():
            fault = rng.choices(FAULTS, WEIGHTS)[0]
            scripted[fault] += 1
            server.routes[f"/{adapter}{CASES[adapter].path}"] = [scripted_reply(CASES[adapter], fault)]


def _at(event: dict[str, object], key: str = "timestamp") -> float:
    return datetime.fromisoformat(str(event[key])).timestamp()


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _durations(events: list[dict[str, object]]) -> list[float]:
    """Seconds from each cycle's `cycle_started` to its `cycle_finished` (paired by lease), in order."""
    started: dict[object, float] = {}
    out: list[float] = []
    for e in events:
        if e["event"] == "cycle_started":
            started[e.get("lease")] = _at(e)
        elif e["event"] == "cycle_finished" and e.get("lease") in started:
            out.append(_at(e) - started.pop(e.get("lease")))
    return out


def _lost(events: list[dict[str, object]], every: float) -> int:
    """Scheduled rebalance runs with neither a cycle nor a `cycle_missed`: between two consecutive scheduled cycle
    starts, the interval says how many runs were due; each must be a logged miss."""
    starts = [_at(e) for e in events if e["event"] == "cycle_started" and e.get("trigger") == "schedule"]
    missed = sorted(
        _at(e, "scheduled_at") for e in events if e["event"] == "cycle_missed" and e.get("job") == "rebalance"
    )
    lost = 0
    for a, b in itertools.pairwise(starts):
        due = round((b - a) / every) - 1
        logged = sum(1 for t in missed if a < t < b)
        lost += max(0, due - logged)
    return lost


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--every", type=float, default=0.3, help="seconds between scheduled rebalances")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--window-days",
        "--smoothing-days",
        type=float,
        default=None,
        help="override [rates] window_days (the demo's 14 keeps every collection of the soak in the window)",
    )
    args = parser.parse_args()

    rng = random.Random(args.seed)
    scripted: Counter[str] = Counter()
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp, FixtureServer() as server:
        for adapter in SECOND_SOURCES.values():
            server.routes[f"/{adapter}{CASES[adapter].path}"] = [scripted_reply(CASES[adapter], "up")]
        config = copy_demo(Path(tmp), _edit(server.url))
        db = Path(tmp) / "soak.sqlite"
        env = {
            "AGGREGATOR_API__ENABLED": "false",
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
            "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": str(args.every / 60),
            "AGGREGATOR_SCHEDULE__RATES_EVERY_MINUTES": str(2 * args.every / 60),
            "AGGREGATOR_SCHEDULE__REBALANCE_ON_START": "false",
        }
        if args.window_days is not None:
            env["AGGREGATOR_RATES__WINDOW_DAYS"] = str(args.window_days)
        flapper = threading.Thread(target=_flap, args=(server, rng, stop, scripted), daemon=True)
        daemon = Daemon(config, env)
        started = time.monotonic()
        try:
            daemon.wait_for("cycle_finished")
            flapper.start()
            first = (daemon.rss_mib(), daemon.open_fds())
            warm_at = max(1, args.cycles // 10)
            daemon.wait_for("cycle_finished", warm_at, timeout=args.cycles * args.every * 5)
            warm = (daemon.rss_mib(), daemon.open_fds())
            peak, fds_seen = warm[0], [warm[1]]
            while daemon.count("cycle_finished") < args.cycles:
                daemon.wait_for("cycle_finished", min(args.cycles, daemon.count("cycle_finished") + 50), 600)
                peak = max(peak, daemon.rss_mib())
                fds_seen.append(daemon.open_fds())
            end = (daemon.rss_mib(), daemon.open_fds())
        finally:
            stop.set()
            code = daemon.stop()
        elapsed = time.monotonic() - started
        db_mib = db.stat().st_size / 2**20

    events = daemon.events
    count = Counter(e["event"] for e in events)
    by_trigger = Counter(e.get("trigger") for e in events if e["event"] == "cycle_started")
    missed = [e for e in events if e["event"] == "cycle_missed"]
    reasons = Counter(f"{e['job']}: {e['reason']}" for e in missed)
    lost = _lost(events, args.every)
    unfinished = count["cycle_started"] - count["cycle_finished"]
    outcomes = sum(count[o] for o in OUTCOMES)

    print(
        f"soak: {count['cycle_finished']} rebalance cycles in {elapsed:.0f} s (one scheduled every {args.every:g} s), "
        f"{count['rates_collected']} rate collections; store {db_mib:.1f} MiB"
    )
    print(f"source answers scripted: {dict(scripted)}")
    print(
        f"log: source_failed {count['source_failed']}, source_skipped (breaker open) {count['source_skipped']}, "
        f"circuit_opened {count['circuit_opened']}, quote_rejected {count['quote_rejected']}, "
        f"rates_disagree {count['rates_disagree']}"
    )
    print(f"{'':24} {'RSS MiB':>8} {'open fds':>9}")
    for name, (rss, fds) in (
        ("after the first cycle", first),
        (f"after {warm_at} cycles", warm),
        ("at the end", end),
    ):
        print(f"{name:24} {rss:>8.1f} {fds:>9}")
    print(f"{'peak RSS after warm-up':24} {peak:>8.1f}")
    print(
        f"open fds every 50 cycles after warm-up: min {min(fds_seen)}, max {max(fds_seen)} "
        f"({len(fds_seen)} samples; sockets to the sources come and go within a cycle)"
    )
    durations = _durations(events)
    tenth = max(1, len(durations) // 10)
    first_ms = [d * 1000 for d in durations[:tenth]]
    last_ms = [d * 1000 for d in durations[-tenth:]]
    print(
        f"cycle duration, first {tenth} cycles: median {statistics.median(first_ms):.0f} ms, "
        f"p90 {_p90(first_ms):.0f} ms; last {tenth}: median {statistics.median(last_ms):.0f} ms, "
        f"p90 {_p90(last_ms):.0f} ms (store grown to {db_mib:.1f} MiB)"
    )
    print(
        f"cycles: {dict(by_trigger)} started, {count['cycle_finished']} finished; outcomes: "
        + ", ".join(f"{o.removeprefix('rebalance_')} {count[o]}" for o in OUTCOMES)
    )
    print(f"scheduled runs not started, each logged as cycle_missed: {len(missed)}")
    for reason, n in reasons.most_common():
        print(f"  {n:>5}  {reason}")
    print(f"scheduled runs lost without a logged reason: {lost}")
    print(f"daemon exit code after SIGTERM: {code}")

    problems = []
    if lost:
        problems.append(f"{lost} lost runs")
    if unfinished or outcomes != count["cycle_finished"]:
        problems.append(
            f"{unfinished} cycles unfinished, {count['cycle_finished'] - outcomes} without an outcome"
        )
    if end[0] > warm[0] * 1.10:
        problems.append(f"RSS grew {warm[0]:.1f} → {end[0]:.1f} MiB after warm-up")
    if end[1] > warm[1] + 2:
        problems.append(f"open fds grew {warm[1]} → {end[1]}")
    if code != 0:
        problems.append(f"exit code {code}")
    print("result:", "ok" if not problems else "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
