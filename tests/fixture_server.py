"""Moved to `tests.helpers.fixture_server` (issue 19); kept so existing imports keep working."""

from __future__ import annotations

from tests.helpers.fixture_server import FixtureServer, Reply

__all__ = ["FixtureServer", "Reply"]
