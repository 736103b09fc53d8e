"""`aggregator health` with nothing listening answers at once: one line naming the address, exit 1, and none of
the settings schema, SQLAlchemy, httpx or the optimizer loaded (they took ~1.6 s before the refusal could be told;
`benchmarks/cli_bench.py` measures the command). The address it probes is the one `load_settings` resolves."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.interfaces.cli.probe import DEFAULT_HOST, DEFAULT_PORT, api_address, refused
from aggregator.settings import ApiSettings, load_settings
from tests.aggregator.test_cli_imports import loaded
from tests.conftest import AGGREGATOR, clean_env, free_port

NOT_LOADED = ("pydantic_settings", "sqlalchemy", "httpx", "numpy", "cvxpy", "fastapi", "apscheduler")


def test_nothing_listening_is_one_line_and_exit_1_from_the_console_script(
    demo_config: Callable[..., Path],
) -> None:
    config = demo_config()
    port = free_port()
    done = subprocess.run(
        [AGGREGATOR, "health", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=clean_env({"AGGREGATOR_API__PORT": str(port)}),
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"unhealthy: nothing listens on 127.0.0.1:{port} (connection refused); is `aggregator run` up with this "
        "config?"
    ]


def test_a_refusal_is_told_before_the_heavy_imports(demo_config: Callable[..., Path]) -> None:
    top, code, stderr = loaded(
        ["health", "--config", str(demo_config())], {"AGGREGATOR_API__PORT": str(free_port())}
    )
    assert code == "1", stderr
    assert "connection refused" in stderr
    assert not top & set(NOT_LOADED), sorted(top & set(NOT_LOADED))


@pytest.mark.parametrize(
    ("edit", "env"),
    [
        (None, {}),
        (None, {"AGGREGATOR_API__PORT": "9123"}),
        (None, {"AGGREGATOR_API__HOST": "0.0.0.0", "AGGREGATOR_API__TOKEN": "x" * 32}),
        (None, {"AGGREGATOR_API": '{"port": 9124}'}),
        (lambda t: t + "\n[api]\nport = 9125\n", {}),
    ],
)
def test_the_probed_address_is_the_one_the_settings_resolve(
    demo_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    edit: Callable[[str], str] | None,
    env: dict[str, str],
) -> None:
    config = demo_config(edit) if edit else demo_config()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    api = load_settings(config).api
    expected = ("127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host, api.port)
    assert api_address(config) == expected


def test_the_probe_defaults_are_the_settings_defaults() -> None:
    assert ApiSettings.model_fields["host"].default == DEFAULT_HOST
    assert ApiSettings.model_fields["port"].default == DEFAULT_PORT


def test_an_unreadable_config_leaves_it_to_the_full_loader(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[api\nport = 1\n")
    assert api_address(bad) is None
    assert api_address(tmp_path / "missing.toml") is None


def test_only_a_refusal_counts_as_nothing_listening() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert not refused("127.0.0.1", listening.getsockname()[1])
    assert refused("127.0.0.1", free_port())
