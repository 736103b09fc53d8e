"""`aggregator --help` and `aggregator health` (the container's health check) load neither cvxpy nor FastAPI, and
`--help` / `--version` load no more than typer (no settings, SQLAlchemy, httpx): the CLI imports
what a command needs when the command runs. Each case runs the console script's entry point in a real
subprocess and prints the modules it loaded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from aggregator.interfaces import cli
from aggregator.settings import ENV_PREFIX
from tests.conftest import clean_env
from tests.fixture_server import FixtureServer, Reply

WRAPPER = """
import sys
from aggregator.interfaces.cli import main
sys.argv = ["aggregator", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("MODULES=" + ",".join(sorted(sys.modules)), file=sys.stderr)
print(f"EXIT={code}", file=sys.stderr)
"""

HEAVY = ("cvxpy", "fastapi")
NOT_FOR_HELP = ("sqlalchemy", "httpx", "pydantic_settings", "structlog", "apscheduler", "numpy")
"""What `--help` and `--version` used to load through the settings and the HTTP client at import (~0.5 s). Not
pydantic: typer itself uses it to convert a subcommand's parameters (`rebalance --help`)."""


def loaded(args: list[str], env: dict[str, str]) -> tuple[set[str], str, str]:
    """The top-level packages the CLI loaded for `args`, its exit code and its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(env),
    )
    lines = done.stderr.splitlines()
    modules = next(line for line in lines if line.startswith("MODULES=")).removeprefix("MODULES=").split(",")
    code = next(line for line in lines if line.startswith("EXIT=")).removeprefix("EXIT=")
    return {m.split(".")[0] for m in modules}, code, done.stderr


def test_help_loads_neither_cvxpy_nor_fastapi() -> None:
    top, code, _ = loaded(["--help"], {})
    assert code == "0"
    assert "typer" in top  # the wrapper did run the CLI
    assert not top & set(HEAVY)


def test_help_and_version_load_no_settings_nor_http_client() -> None:
    for args in (["--help"], ["--version"], ["rebalance", "--help"]):
        top, code, stderr = loaded(args, {})
        assert code == "0", stderr
        assert not top & set(NOT_FOR_HELP), (args, sorted(top & set(NOT_FOR_HELP)))
        mods = stderr.split("MODULES=", 1)[1].split("\n", 1)[0].split(",")
        assert "aggregator.settings" not in mods, args


def test_version_is_the_installed_distributions() -> None:
    """`--version` reads the dist-info itself (no importlib.metadata at start); it agrees with importlib.metadata."""
    assert cli.installed_version() == version("restaking-aggregator")
    _, code, stderr = loaded(["--version"], {})
    assert code == "0"
    assert "importlib.metadata" not in stderr.split("MODULES=", 1)[1].split("\n", 1)[0].split(",")


def test_the_cli_env_prefix_is_the_settings_one() -> None:
    """The CLI repeats ENV_PREFIX so as not to load the settings for `--help`; the two must agree."""
    assert cli.ENV_PREFIX == ENV_PREFIX


def test_health_loads_neither_cvxpy_nor_fastapi(demo_config: Callable[..., Path]) -> None:
    """Against a listener that answers /health (a local server): the whole check runs, over httpx. Nothing
    listening is told before any of this is loaded (tests/aggregator/test_health_probe.py)."""
    with FixtureServer() as server:
        server.routes["/health"] = [Reply(b'{"status": "ok"}')]
        port = server.url.rsplit(":", 1)[1]
        top, code, stderr = loaded(["health", "--config", str(demo_config())], {"AGGREGATOR_API__PORT": port})
        assert server.hits["/health"] == 1
    assert code == "0", stderr
    assert "aggregator" in top and "httpx" in top
    assert not top & set(HEAVY)


def test_the_probe_sees_cvxpy_where_a_command_needs_it(demo_config: Callable[..., Path]) -> None:
    """The same probe on `check-config`, which solves: it reports cvxpy, so an absence above is not an artefact of
    the probe (and `from optimizer import ...` of the typed inputs alone did not load it either)."""
    top, code, _ = loaded(["check-config", "--config", str(demo_config())], {})
    assert code == "0"
    assert "cvxpy" in top
