"""A reproducible build: the dependencies come from lock files with hashes (make and the image both install from
them, then the project alone), the base image is pinned by digest, the runtime dependencies have upper bounds, and
`make audit` checks the locks for known vulnerabilities or says plainly why it could not."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT, free_port
from tests.fixture_server import FixtureServer, Reply
from tests.test_container import stages

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def locked(path: Path) -> dict[str, list[tuple[Version, str, int]]]:
    """name -> [(version, marker, number of hashes)] of a `uv pip compile --generate-hashes` file."""
    out: dict[str, list[tuple[Version, str, int]]] = {}
    current: list[tuple[Version, str, int]] | None = None
    for line in path.read_text().splitlines():
        if m := PIN.match(line):
            current = out.setdefault(canonicalize_name(m[1]), [])
            current.append((Version(m[2]), (m[3] or "").strip(), 0))
        elif line.strip().startswith("--hash=sha256:") and current:
            version, marker, hashes = current[-1]
            current[-1] = (version, marker, hashes + 1)
    return out


def _marker_holds(marker: str, env: Mapping[str, Any]) -> bool:
    parsed = Requirement(f"x; {marker}").marker
    return parsed is None or parsed.evaluate(dict(env))


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {
        "runtime": data["project"]["dependencies"],
        "dev": data["project"]["optional-dependencies"]["dev"],
        "build": data["build-system"]["requires"],
    }


def test_the_locks_pin_every_dependency_of_pyproject_with_hashes() -> None:
    """Every requirement of pyproject.toml (runtime, the dev extra, the build backend) is pinned in the locks at a
    version its specifier allows, every pin carries sha256 hashes, and the runtime lock agrees with the dev lock.
    A dependency added to pyproject.toml without `make lock` fails here."""
    run, dev = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-dev.lock")
    reqs = project()
    env = default_environment() | {"python_full_version": "3.11.16", "python_version": "3.11"}
    for lock, names in ((run, reqs["runtime"] + reqs["build"]), (dev, [*reqs["runtime"], *reqs["dev"]])):
        for text in names:
            req = Requirement(text)
            pins = lock.get(canonicalize_name(req.name))
            assert pins, f"{req.name} is not in the lock: run `make lock`"
            usable = [v for v, marker, _ in pins if not marker or _marker_holds(marker, env)]
            assert usable and all(v in req.specifier for v in usable), (
                f"{req.name}: locked {usable}, pyproject wants {req.specifier}: run `make lock`"
            )
    for lock in (run, dev):
        assert all(hashes > 0 for pins in lock.values() for _, _, hashes in pins)
    for name, pins in run.items():
        assert {v for v, _, _ in pins} <= {v for v, _, _ in dev[name]}, name


def test_runtime_dependencies_have_upper_bounds() -> None:
    """structlog and rich included: a new major version is a decision, not an accident of the day of install."""
    for text in project()["runtime"]:
        req = Requirement(text)
        assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), (
            f"{req.name} has no upper bound"
        )


def test_make_and_the_image_install_from_the_lock_then_the_project_alone() -> None:
    """The Makefile's install step and the image's build stage: the lock with --require-hashes, then the project
    with --no-deps (built with the locked setuptools)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): pyproject.toml $(LOCK_DEV)\n", 1)[1].split("\n\n", 1)[0]
    assert "pip install --quiet --require-hashes -r $(LOCK_DEV)" in recipe
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in recipe
    assert "LOCK_DEV := requirements-dev.lock" in makefile
    runs = [rest for word, rest in stages()["build"] if word == "RUN"]
    assert "--require-hashes -r requirements.lock" in runs[0]
    assert runs[-1].endswith("pip install --no-deps --no-build-isolation .")
    assert "lock:" in makefile and "uv pip compile" in makefile


def test_the_base_image_is_pinned_by_digest() -> None:
    """Every FROM names python:3.11-slim by a sha256 digest, and a comment says where the digest came from."""
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2
    assert all(re.fullmatch(r"FROM python:3\.11-slim@sha256:[0-9a-f]{64} AS \w+", line) for line in froms)
    assert "the digest was taken on" in text


def make_audit(probe_url: str) -> subprocess.CompletedProcess[str]:
    """`make audit` with the probe of the vulnerability database pointed at `probe_url`; the installed venv is
    taken as up to date (-o) and this interpreter's bin folder used."""
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            f"BIN={Path(sys.executable).parent}",
            "audit",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "AUDIT_PROBE_URL": probe_url},
        check=False,
    )


def test_make_audit_says_plainly_when_its_database_is_unreachable() -> None:
    """With the vulnerability database out of reach (a closed port on 127.0.0.1 stands for it), `make audit`
    exits 0 after one `audit skipped: <why>` line, never a silent pass or a failed build."""
    done = make_audit(f"http://127.0.0.1:{free_port()}/pypi/alembic/1.20.1/json")
    assert done.returncode == 0, done.stdout + done.stderr
    skipped = [line for line in done.stdout.splitlines() if line.startswith("audit skipped:")]
    assert len(skipped) == 1 and "unreachable" in skipped[0] and "127.0.0.1" in skipped[0]
    assert "audit: " not in done.stdout  # pip-audit was not run


def test_make_audit_skips_behind_a_mirror_without_the_vulnerability_data() -> None:
    """A mirror that serves packages but not PyPI's per-version JSON (404, as on the machine this was written
    on), or JSON without `vulnerabilities`: pip-audit would find every package "not on PyPI" and report no
    known vulnerability; the audit says it was skipped, and why, instead."""
    with FixtureServer() as server:
        server.routes["/pypi/alembic/1.20.1/json"] = [Reply(b'{"info": {}}')]
        missing = make_audit(f"{server.url}/pypi/nothing/1.0/json")
        empty = make_audit(f"{server.url}/pypi/alembic/1.20.1/json")
    assert missing.returncode == 0 and empty.returncode == 0
    assert missing.stdout.splitlines()[-1].startswith("audit skipped:")
    assert "answered HTTP 404" in missing.stdout
    assert empty.stdout.splitlines()[-1].startswith("audit skipped:")
    assert "without a `vulnerabilities` list" in empty.stdout
