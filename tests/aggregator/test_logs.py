"""Every line of the JSON log is one strict JSON object, whoever wrote it (our events, APScheduler, asyncio,
`warnings`, an uncaught exception), and `--json` output is strict JSON: no bare NaN or Infinity."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import AGGREGATOR, ROOT, clean_env, slow_source
from tests.fixture_server import FixtureServer


def strict_loads(line: str) -> dict[str, Any]:
    """json.loads that refuses NaN, Infinity and -Infinity (which Python's parser accepts by default)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"not JSON: bare {name} in {line[:200]!r}")

    value = json.loads(line, parse_constant=refuse)
    assert isinstance(value, dict), line
    return value


def test_the_daemons_whole_output_is_strict_json_lines(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A real daemon whose rebalance interval is shorter than its cycle (APScheduler warns, from its own logger,
    that it skipped a run) and with a source that fails: stdout and stderr, merged, are parsed line by line with
    a strict parser, and APScheduler's warning is among them as JSON with `event` and `logger`."""
    with FixtureServer() as server:
        slow = slow_source(server, 1.0)

        def edit(text: str) -> str:
            return slow(
                text.replace(
                    'quotes = [{ source = "demo", key = "rocketpool-reth.base" }]',
                    'quotes = [{ source = "demo", key = "rocketpool-reth.base" }, '
                    '{ source = "broken", key = "d4b3c522-6127-4b89-bedf-83641cdcd2eb" }]',
                )
                + f'\n[sources.broken]\nadapter = "defillama"\nbase_url = "{server.url}/broken"\n'
                "max_attempts = 1\n"
            )

        env = {
            "AGGREGATOR_API__ENABLED": "false",
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/j.sqlite",
            "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "0.004",
        }
        with subprocess.Popen(
            [AGGREGATOR, "run", "--config", str(demo_config(edit))],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_env(env),
        ) as proc:
            watchdog = threading.Timer(120, proc.kill)
            watchdog.start()
            lines: list[dict[str, Any]] = []
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    lines.append(strict_loads(raw))
                    seen = {x["event"] for x in lines} | {str(x.get("logger")) for x in lines}
                    if "source_failed" in seen and "apscheduler.scheduler" in seen:
                        proc.send_signal(signal.SIGTERM)
                        break
                lines += [strict_loads(raw) for raw in proc.stdout]
                assert proc.wait(timeout=60) == 0
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    proc.kill()
    assert all(isinstance(x.get("event"), str) and x.get("logger") for x in lines)
    scheduler = [x for x in lines if x["logger"] == "apscheduler.scheduler"]
    assert scheduler and scheduler[0]["level"] == "warning"
    assert "maximum number of running instances reached" in scheduler[0]["event"]
    assert any(x["event"] == "source_failed" and x["source"] == "broken" for x in lines)
    assert lines[-1]["event"] == "daemon_stopped"


SCRIPT = """
import asyncio, logging, threading, warnings
import structlog
from aggregator.events.logs import configure_logging
configure_logging("info", "json")
log = structlog.get_logger("aggregator.probe")
log.info("probe", nan=float("nan"), inf=float("inf"), nested={"x": [float("-inf"), 1.5]})
logging.getLogger("apscheduler.scheduler").info("Added job %s", "chatter below warning")
logging.getLogger("apscheduler.scheduler").warning("Run time of job %s was missed by %s", "rebalance", "0:00:03")
warnings.warn("a library warning")
for n in range(25):
    logging.getLogger("uvicorn.error").error("Exception in ASGI application %d", n)
loop = asyncio.new_event_loop()
loop.call_exception_handler({"message": "Task exception was never retrieved", "exception": ValueError("bad")})
worker = threading.Thread(target=lambda: 1 / 0, name="worker")
worker.start()
worker.join()
raise RuntimeError("nobody caught this")
"""


def test_foreign_records_floods_and_uncaught_exceptions_are_one_json_line_each() -> None:
    """In JSON mode: stdlib records become JSON with `event` and `logger` (INFO chatter of libraries is left
    out), non-finite numbers are null, a flood is cut after 10 lines with one `log_throttled`, and exceptions
    that nobody caught (asyncio, a thread, the main thread) are one line each with the traceback in `exception`.
    Nothing at all reaches stderr."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1 and done.stderr == ""
    lines = [strict_loads(raw) for raw in done.stdout.splitlines()]
    by_event = {x["event"]: x for x in lines}
    assert by_event["probe"]["nan"] is None and by_event["probe"]["inf"] is None
    assert by_event["probe"]["nested"] == {"x": [None, 1.5]}
    missed = by_event["Run time of job rebalance was missed by 0:00:03"]
    assert missed["logger"] == "apscheduler.scheduler" and missed["level"] == "warning"
    assert not any("chatter" in x["event"] for x in lines)
    assert any(x["logger"] == "py.warnings" and "a library warning" in x["event"] for x in lines)
    flood = [x for x in lines if x["logger"] == "uvicorn.error"]
    assert len(flood) == 10
    throttled = by_event["log_throttled"]
    assert throttled["of_logger"] == "uvicorn.error" and throttled["limit"] == 10
    task = by_event["Task exception was never retrieved"]
    assert task["logger"] == "asyncio" and "ValueError: bad" in task["exception"]
    thread = by_event["thread_exception"]
    assert thread["thread"] == "worker" and "ZeroDivisionError" in thread["exception"]
    uncaught = by_event["uncaught_exception"]
    assert uncaught["level"] == "critical" and uncaught["error"] == "RuntimeError: nobody caught this"
    assert uncaught["exception"].startswith("Traceback") and lines[-1] is uncaught


def test_rates_json_with_a_non_finite_value_in_the_store_is_strict_json(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The store holds an infinite yield for stETH (written behind the service's back), which two sources quote
    alike (so no one-source jump check holds it back): `aggregator rates --json` still prints strict JSON, the
    change against it written as null (it was a bare -Infinity)."""
    with FixtureServer() as server:
        cfg = demo_config(slow_source(server, 0.0))
        env = clean_env({"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/r.sqlite"})

        def rates() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [AGGREGATOR, "rates", "--config", str(cfg), "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )

        assert rates().returncode == 0
        with sqlite3.connect(tmp_path / "r.sqlite") as con:
            con.execute("update rates set value = ? where venue = 'lido-steth'", (float("inf"),))
        done = rates()
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout, parse_constant=lambda name: pytest_fail(name, done.stdout))
    steth = next(r for r in out["rates"] if r["venue"] == "lido-steth")
    assert steth["sources"] == ["demo", "slow"] and steth["value"] > 0
    assert steth["change"] is None


def pytest_fail(name: str, text: str) -> None:
    raise AssertionError(f"not JSON: bare {name} in the output:\n{text[:3000]}")
