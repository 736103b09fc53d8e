"""The errors the service acts on, named for what the daemon does about them.

AggregatorError
├── ConfigError            stop: bad or missing configuration (exit code 3)
├── SourceError            a data source let us down this cycle       (defined in adapters.errors)
│   ├── TemporarySourceError   retry with backoff, then skip the source this cycle
│   └── SourceDataError        malformed or implausible data: skip and alert, never retry
├── NoRatesError           no usable yield at all this cycle: hold (exit code 4)
├── CycleBusyError         another rebalance is running: wait or refuse
└── StoreError             the database cannot be written or read (read-only, full, locked): nothing half-written
    └── DamagedRecordError     one stored record does not parse: report it, keep serving the others (exit code 8)
"""

from __future__ import annotations

from adapters.errors import SourceDataError, SourceError, TemporarySourceError


class AggregatorError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigError(AggregatorError):
    """Configuration cannot be used; start-up stops."""


class NoRatesError(AggregatorError):
    """Every source failed or was rejected: nothing to optimise on."""


class CycleBusyError(AggregatorError):
    """Another rebalance holds the lock."""


class StoreError(AggregatorError):
    """The database refused a read or write; the transaction was rolled back, so the store is as before."""


class DamagedRecordError(StoreError):
    """A stored record (a proposal's plan or row) does not parse; the message names it and what is wrong."""


__all__ = [
    "AggregatorError",
    "ConfigError",
    "CycleBusyError",
    "DamagedRecordError",
    "NoRatesError",
    "SourceDataError",
    "SourceError",
    "StoreError",
    "TemporarySourceError",
]
