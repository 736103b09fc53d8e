"""The real daemon's wall clock stepped back a day and forward two (libfaketime preloaded into the subprocess; the
monotonic clock is left alone, as an NTP step leaves it). The scheduler computes its runs on the wall clock, so
without the daemon's clock watch a step back would silence it for the length of the step."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libfaketime

from tests.aggregator.test_daemon import _read_until
from tests.conftest import start_daemon

LIB = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"


def _set_offset(path: Path, offset: str) -> None:
    """Move the fake clock in one step: libfaketime re-reads the file on every call (FAKETIME_NO_CACHE), and a
    plain write_text truncates first, so a read in between saw an empty file (offset 0) and the daemon logged two
    jumps of one day instead of one of two days."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{offset}\n")
    os.replace(tmp, path)


def _read_step(proc: subprocess.Popen[str], step: float, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The log up to the `clock_jumped` events that add up to `step` seconds. libfaketime parses the offset file
    into unlocked globals, so while the daemon's other threads read the clock, the 0.2 s watch can catch a
    half-parsed offset once (seen in CI: a two-day step logged as one day, then the rest on the next tick). Every
    jump the daemon saw is logged and summed; the sum must be the step the clock took."""
    seen: list[dict[str, Any]] = []
    total = 0.0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"clock_jumped summed to {total:.1f}s, not {step:.0f}s, within {timeout}s"
        seen += _read_until(proc, "clock_jumped", timeout=left)
        total += float(str(seen[-1]["seconds"]))
        if abs(total - step) < 5:
            return seen


def test_the_daemon_keeps_proposing_across_wall_clock_steps(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        "LD_PRELOAD": str(LIB),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
        "AGGREGATOR_API__ENABLED": "false",
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/clock.sqlite",
        "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "0.01",  # every 0.6 s
        "AGGREGATOR_SCHEDULE__REBALANCE_ON_START": "false",
    }
    with start_daemon(demo_config(), env) as proc:
        try:
            _read_until(proc, "cycle_finished", timeout=60)
            _set_offset(offset, "-1d")
            _read_step(proc, -86_400)
            after_back = _read_until(proc, "rebalance_completed", timeout=10)  # not a day later
            # the cycle writes its proposal just before cycle_finished: step forward only then, or the proposal can
            # be stamped on the far side of the next step (a race CI caught)
            after_back += _read_until(proc, "cycle_finished", timeout=10)
            _set_offset(offset, "+1d")
            _read_step(proc, 2 * 86_400)
            _read_until(proc, "rebalance_completed", timeout=10)
            proc.send_signal(signal.SIGTERM)
            try:  # keep reading: a daemon blocked on a full stdout pipe would look like one that ignores SIGTERM
                rest, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                rest, _ = proc.communicate()
                tail = [json.loads(line)["event"] for line in rest.splitlines()[-20:]]
                raise AssertionError(f"no exit within 30 s of SIGTERM; last events: {tail}") from None
            assert proc.returncode == 0, rest[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not [e for e in after_back if e["event"] in {"rebalance_failed", "rates_failed"}]
    with sqlite3.connect(tmp_path / "clock.sqlite") as con:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        assert con.execute("select count(*) from leases").fetchone() == (0,)
        stamps = [row[0] for row in con.execute("select created_at from proposals order by collection_id")]
    assert len(stamps) >= 3 and stamps[-1] > stamps[0] > min(
        stamps
    )  # proposals stamped on either side of the steps
