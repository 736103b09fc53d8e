"""Every config failure, at start or on SIGHUP, is exit 3 / `config_reload_failed` naming the problem (issue 14,
break 5): before, each of these gave a traceback (exit 1), and on SIGHUP killed the daemon."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.aggregator.test_cli import run
from tests.aggregator.test_daemon import _read_until
from tests.conftest import AGGREGATOR, clean_env, free_port, start_daemon

Edit = Callable[[str], str]


def _latin1(text: str) -> str:
    return text  # marks the case: `_encoded` puts a Latin-1 byte into the UTF-8 file


def _nested(depth: int) -> Edit:
    return lambda text: text.replace("[portfolio]", f"junk = {'[' * depth}{']' * depth}\n[portfolio]", 1)


def _huge(text: str) -> str:
    return text + ("# padding\n" * 120_000)


def _setting(key: str, value: str) -> Edit:
    """Set `key = value` in the demo's `[section]`, replacing the line if it is there."""

    def edit(text: str) -> str:
        pattern = rf"(?m)^{re.escape(key)} = .*$"
        if re.search(pattern, text):
            return re.sub(pattern, lambda _: f"{key} = {value}", text, count=1)
        raise AssertionError(f"{key} is not in the demo config")

    return edit


def _holdings_overflow(text: str) -> str:
    text = re.sub(r"(?m)^size_eth = .*\n", "", text, count=1)
    return re.sub(
        r"(?m)^holdings_eth = .*$", "holdings_eth = { eth = 1e308, lido-steth = 1e308 }", text, count=1
    )


def _config(demo_config: Callable[..., Path], edit: Edit | None) -> Path:
    """The demo config with `edit` applied, written in Latin-1 where the edit put a non-ASCII character in."""
    path = demo_config()
    path.write_bytes(_encoded(path.read_text(), edit))
    return path


def _encoded(text: str, edit: Edit | None) -> bytes:
    data = (edit(text) if edit else text).encode()
    return data.replace(b"[portfolio]", b"# caf\xe9 (Latin-1)\n[portfolio]", 1) if edit is _latin1 else data


# (id, edit of the file, environment, text the error must contain)
CASES: list[tuple[str, Edit | None, dict[str, str], str]] = [
    ("latin-1 byte", _latin1, {}, "not UTF-8 (byte 0xe9 at line"),
    ("50k-deep array", _nested(50_000), {}, "nested too deeply"),
    ("100-deep array", _nested(100), {}, "junk"),
    ("2 MB file", _huge, {}, "larger than 1024 KiB"),
    ("section env garbage", None, {"AGGREGATOR_LIMITS": "abc"}, "AGGREGATOR_LIMITS does not parse"),
    ("nested env garbage", None, {"AGGREGATOR_PORTFOLIO__HOLDINGS_ETH": "abc"}, "AGGREGATOR_PORTFOLIO"),
    ("bad database url", None, {"AGGREGATOR_DATABASE__URL": "not a url"}, "database.url = 'not a url'"),
    ("missing driver", None, {"AGGREGATOR_DATABASE__URL": "mysql+mysqldb://u@h/db"}, "no driver installed"),
    ("holdings overflow", _holdings_overflow, {}, "portfolio.holdings_eth.eth"),
    ("misfire grace 1e30", _setting("misfire_grace_seconds", str(10**30)), {}, "misfire_grace_seconds"),
    ("unresolvable api.host", None, {"AGGREGATOR_API__HOST": "no-such-host.invalid"}, "api.host"),
]


@pytest.mark.parametrize(("edit", "env", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_config_exits_3_naming_the_problem(
    demo_config: Callable[..., Path], edit: Edit | None, env: dict[str, str], expected: str
) -> None:
    out = run("check-config", "--config", str(_config(demo_config, edit)), env=env)
    assert out.returncode == 3, out.stderr
    assert out.stderr.startswith("configuration error:") and "Traceback" not in out.stderr
    assert expected in out.stderr, out.stderr


@pytest.mark.parametrize(("edit", "env", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_run_exits_3_naming_the_problem(
    demo_config: Callable[..., Path], edit: Edit | None, env: dict[str, str], expected: str
) -> None:
    out = run(
        "run",
        "--config",
        str(_config(demo_config, edit)),
        env=env | {"AGGREGATOR_API__PORT": str(free_port())},
    )
    assert out.returncode == 3, out.stderr
    assert expected in out.stderr and "Traceback" not in out.stderr


def test_run_on_a_busy_port_exits_3_naming_it(demo_config: Callable[..., Path], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [AGGREGATOR, "run", "--config", str(demo_config())],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(
                {
                    "AGGREGATOR_API__PORT": str(port),
                    "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/busy.sqlite",
                }
            ),
        )
    assert out.returncode == 3, out.stderr
    assert f"api.port = {port}" in out.stderr and "cannot listen" in out.stderr
    assert "Traceback" not in out.stderr


RELOAD_CASES = [c for c in CASES if not c[2]]  # the file's problems: the environment is fixed at start


def test_sighup_with_each_bad_file_logs_config_reload_failed_and_keeps_running(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """One real daemon, a real SIGHUP per bad file: each is refused with the problem named, the daemon keeps
    running and stops cleanly at the end."""
    config = demo_config()
    good = config.read_text()
    env = {
        "AGGREGATOR_API__PORT": str(free_port()),
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/r.sqlite",
    }
    with start_daemon(config, env) as proc:
        try:
            _read_until(proc, "cycle_finished", timeout=120)
            for name, edit, _, expected in RELOAD_CASES:
                assert edit is not None
                config.write_bytes(_encoded(good, edit))
                proc.send_signal(signal.SIGHUP)
                failed = _read_until(proc, "config_reload_failed", timeout=120)[-1]
                assert expected in str(failed["error"]), (name, failed["error"])
                assert failed["kept"] == "running config"
            config.write_text(good)
            proc.send_signal(signal.SIGHUP)
            _read_until(proc, "config_reloaded", timeout=120)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sighup_with_bad_database_or_api_settings_in_the_file_keeps_running(
    demo_config: Callable[..., Path],
) -> None:
    """The database and API cases of break 5 as a file can bring them on SIGHUP (the environment is fixed at
    start, so `AGGREGATOR_LIMITS=abc` and the like can only happen at start, covered above): a bad
    `database.url`, a missing driver, an unresolvable `api.host`, a port another process holds. Each is
    `config_reload_failed` naming the section, the daemon keeps its running database and listener (they only
    change on a restart) and stops cleanly."""
    port = free_port()
    config = demo_config(lambda text: text + f"\n[api]\nport = {port}\n")
    good = config.read_text()
    db_line = 'url = "sqlite:///../var/demo.sqlite"'
    assert db_line in good
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        edits = [
            ("bad database url", good.replace(db_line, 'url = "not a url"'), "database"),
            ("missing driver", good.replace(db_line, 'url = "mysql+mysqldb://u@h/db"'), "database"),
            ("unresolvable api.host", good + 'host = "no-such-host.invalid"\n', "api"),
            ("busy port", good.replace(f"port = {port}", f"port = {busy}"), "api"),
        ]
        with start_daemon(config, {}) as proc:
            try:
                _read_until(proc, "cycle_finished", timeout=120)
                for name, text, section in edits:
                    config.write_text(text)
                    proc.send_signal(signal.SIGHUP)
                    failed = _read_until(proc, "config_reload_failed", timeout=120)[-1]
                    assert section in str(failed["error"]), (name, failed["error"])
                    assert failed["kept"] == "running config", name
                config.write_text(good)
                proc.send_signal(signal.SIGHUP)
                _read_until(proc, "config_reloaded", timeout=120)
                with socket.create_connection(("127.0.0.1", port), timeout=10):
                    pass  # still listening where it started
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
