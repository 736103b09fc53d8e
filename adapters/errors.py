"""Source errors. httpx errors never leave `adapters/`: they are translated here at the boundary.

The classes live in the one exception tree, `aggregator.core.errors` (`SourceError` is an `AggregatorError`); this
module is where adapters import them from.
"""

from __future__ import annotations

from aggregator.core.errors import MAX_REASON, SourceDataError, SourceError, TemporarySourceError

__all__ = ["MAX_REASON", "SourceDataError", "SourceError", "TemporarySourceError"]
