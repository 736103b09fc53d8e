"""The clock every layer is handed instead of calling `datetime.now`: tests and the backtest pass their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""
