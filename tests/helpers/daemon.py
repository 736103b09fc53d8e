"""A daemon subprocess for the tests and the load and soak benchmarks (on `tests.helpers.demo.copy_demo`'s config): its JSON log read
by a thread, and its resident memory and open file descriptors read from /proc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.helpers.demo import start_daemon


class Daemon:
    """`aggregator run` with every log line kept (parsed) and waitable by event name."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = start_daemon(config, env)
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "unparsed_line", "line": line.rstrip()}
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def wait_for(self, event: str, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.count(event) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"no {count}× {event} within {timeout:g}s (exit code {self.proc.poll()})"
                    )
                self._changed.wait(min(left, 0.5))

    def wait_match(
        self, event: str, timeout: float = 60.0, start: int = 0, **fields: Any
    ) -> tuple[int, dict[str, Any]]:
        """The first `event` logged at or after line `start` whose fields equal `fields`, with its index; a
        RuntimeError naming what was awaited when none comes within `timeout` or the process ends."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for i in range(start, len(self.events)):
                    e = self.events[i]
                    if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                        return i, e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"no {event} with {fields} within {timeout:g}s (exit code {self.proc.poll()}); last "
                        f"events: {[x['event'] for x in self.events[-15:]]}"
                    )
                self._changed.wait(min(left, 0.5))

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e["event"] == event)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(list(Path(f"/proc/{self.proc.pid}/fd").iterdir()))

    def stop(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=10)
        return code


def read_until(proc: subprocess.Popen[str], event: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """A daemon's JSON log lines up to the first `event`. A daemon silent past `timeout` is killed, so the read
    fails (naming what it saw) instead of blocking forever."""
    lines: list[dict[str, Any]] = []
    assert proc.stdout is not None
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            lines.append(json.loads(line))
            if lines[-1]["event"] == event:
                return lines
    finally:
        watchdog.cancel()
    raise AssertionError(f"no {event} within {timeout}s; got {[x['event'] for x in lines]}")
