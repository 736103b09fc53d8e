"""The errors the service acts on, named for what the daemon does about them.

AggregatorError
├── ConfigError            stop: bad or missing configuration (exit code 3)
│   └── StoreOwnerError        the store was created by another config: refuse it (each config keeps its own)
├── SourceError            a data source let us down this cycle (adapters raise it, via adapters.errors)
│   ├── TemporarySourceError   retry with backoff, then skip the source this cycle
│   └── SourceDataError        malformed or implausible data: skip and alert, never retry
├── NoRatesError           no usable yield at all this cycle: hold (exit code 4)
├── CycleBusyError         another rebalance is running: wait or refuse
│   ├── LeaseLostError         this cycle outlived its lease and another took it: its write is refused (fenced)
│   │   └── LeadershipLostError    this replica lost leadership during the cycle: its write is refused (fenced)
│   ├── NotLeaderError         a replica that does not lead was asked to rebalance: the message names the leader
│   └── SlotTakenError         this scheduled slot already has its proposal (written by another replica)
└── StoreError             the database cannot be written or read (read-only, full, locked): nothing half-written
    ├── DamagedRecordError     one stored record does not parse: report it, keep serving the others (exit code 8)
    └── StoreDamagedError      the database file is damaged (integrity check, vanished WAL): every write refused
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error the service raises on purpose."""


MAX_REASON = 1000
"""Longest failure reason kept: a reason can quote what a source sent, and it is logged and stored."""


class ConfigError(AggregatorError):
    """Configuration cannot be used; start-up stops."""


class StoreOwnerError(ConfigError):
    """The database was created by another config; the message names both and how to take it over."""


class SourceError(AggregatorError):
    """A source failed this cycle."""

    def __init__(self, source: str, reason: str) -> None:
        if len(reason) > MAX_REASON:
            reason = f"{reason[: MAX_REASON - 40]}… [cut from {len(reason)} characters]"
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class TemporarySourceError(SourceError):
    """Timeout, connection error, 429 or 5xx: worth retrying later."""

    retry_after: float | None = None


class SourceDataError(SourceError):
    """The source answered with something we cannot trust (malformed, renamed fields, wrong units)."""


class NoRatesError(AggregatorError):
    """Every source failed or was rejected: nothing to optimise on."""


class CycleBusyError(AggregatorError):
    """Another rebalance holds the lock."""


class LeaseLostError(CycleBusyError):
    """The cycle's lease was taken over (its fencing epoch is no longer current): nothing of it was written."""


class LeadershipLostError(LeaseLostError):
    """The replica's leader lease was taken over during the cycle (a newer epoch): nothing of the cycle was written."""


class NotLeaderError(CycleBusyError):
    """This replica follows: only the leader rebalances; the message names the leader to ask."""


class SlotTakenError(CycleBusyError):
    """The scheduled slot already has its proposal: at most one proposal per slot, whichever replica made it."""


class StoreError(AggregatorError):
    """The database refused a read or write; the transaction was rolled back, so the store is as before."""


class DamagedRecordError(StoreError):
    """A stored record (a proposal's plan or row) does not parse; the message names it and what is wrong."""


class StoreDamagedError(StoreError):
    """The database file failed an integrity check or lost its write-ahead log: writes are refused until restored."""


__all__ = [
    "AggregatorError",
    "ConfigError",
    "CycleBusyError",
    "DamagedRecordError",
    "LeaseLostError",
    "NoRatesError",
    "SourceDataError",
    "SourceError",
    "StoreDamagedError",
    "StoreError",
    "StoreOwnerError",
    "TemporarySourceError",
]
