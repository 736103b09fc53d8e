"""The hostile-source matrix's settings for `benchmarks/hostile.py`: NOW, LIMITS (mutable: the benchmark sets its
own caps), `http_adapters()` and `build()`. Still defined in `tests/adapters/test_hostile.py` (issue 20's file);
moving them here is left to that work so the two branches do not conflict."""

from __future__ import annotations

from tests.adapters.test_hostile import LIMITS, NOW, build, http_adapters

__all__ = ["LIMITS", "NOW", "build", "http_adapters"]
