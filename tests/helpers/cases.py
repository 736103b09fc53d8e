"""The recorded source payloads, one case per HTTP adapter, for the tests and the benchmarks (soak, fetch_bench).

Defined in `tests/adapters/cases.py` (a helper module, not a test module), which the sources work of issue 20 keeps
editing; re-exported here so the benchmarks import from `tests.helpers` only. Move the definitions here once that
work has settled."""

from __future__ import annotations

from tests.adapters.cases import FIXTURES, HTTP_CASES, LIDO_TS, ROOT, Case, one_source_settings

__all__ = ["FIXTURES", "HTTP_CASES", "LIDO_TS", "ROOT", "Case", "one_source_settings"]
