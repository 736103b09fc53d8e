"""Every recorded body has its provenance, and a reconstructed one says so in its name."""

from __future__ import annotations

import tomllib

from tests.adapters.cases import FIXTURES, HTTP_CASES

KINDS = {"recorded", "published-example", "quoted", "reconstructed"}


def _entries() -> dict[str, dict[str, str]]:
    doc = tomllib.loads((FIXTURES / "PROVENANCE.toml").read_text())
    return {e["file"]: e for e in doc["fixture"]}


def test_every_fixture_has_its_provenance() -> None:
    """Each body under tests/fixtures/<adapter>/ is listed with where, when and by whom, and nothing listed is
    missing."""
    entries = _entries()
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*.json")}
    assert on_disk == set(entries)
    for name, entry in entries.items():
        assert entry["kind"] in KINDS, name
        for field in ("endpoint", "published", "when", "by", "value"):
            assert entry.get(field), f"{name}: no {field}"


def test_a_reconstructed_body_says_so_in_its_name() -> None:
    for name, entry in _entries().items():
        assert (entry["kind"] == "reconstructed") == ("reconstructed" in name), name


def test_cases_rest_on_a_real_body_where_one_was_found() -> None:
    """The adapters with a recording found in public (Rocket Pool, Coinbase, ether.fi) are tested on it."""
    entries = _entries()
    real = {c.adapter for c in HTTP_CASES if entries[c.fixture]["kind"] != "reconstructed"}
    assert {"rocketpool", "coinbase", "etherfi"} <= real
