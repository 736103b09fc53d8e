"""The layer contract (`.importlinter`) covers every package of the service, and CI enforces it."""

from __future__ import annotations

import configparser
import re

from tests.conftest import ROOT


def contract_layers() -> list[set[str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"].split("\n")
    return [{name.strip() for name in line.split("|")} for line in layers if line.strip()]


def test_every_package_of_the_service_is_a_layer() -> None:
    """A new package under aggregator/ (or a new top-level package) must be placed in the contract."""
    named = set().union(*contract_layers())
    packages = {f"aggregator.{p.parent.name}" for p in (ROOT / "aggregator").glob("*/__init__.py")}
    packages |= {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"aggregator", "tests", "benchmarks"}
    assert packages == named
    assert contract_layers()[0] == {"aggregator.interfaces"}
    assert contract_layers()[-1] == {"aggregator.core"}


def test_ci_runs_the_checks_then_the_tests() -> None:
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert steps == ["make check", "make test"]
    check = re.search(r"^check:.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert check is not None
    assert [line.split()[0] for line in check.group(1).splitlines()] == [
        "$(BIN)/ruff",
        "$(BIN)/ruff",
        "$(BIN)/mypy",
        "$(BIN)/lint-imports",
    ]
