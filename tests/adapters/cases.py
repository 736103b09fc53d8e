"""Moved to `tests.helpers.cases` (issue 19: the benchmarks import it); kept so existing imports keep working."""

from __future__ import annotations

from tests.helpers.cases import FIXTURES, HTTP_CASES, LIDO_TS, ROOT, Case, one_source_settings

__all__ = ["FIXTURES", "HTTP_CASES", "LIDO_TS", "ROOT", "Case", "one_source_settings"]
