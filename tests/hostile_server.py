"""Moved to `tests.helpers.hostile_server` (issue 19); kept so existing imports keep working."""

from __future__ import annotations

from tests.helpers.hostile_server import BEHAVIOURS, HostileServer

__all__ = ["BEHAVIOURS", "HostileServer"]
