"""What the store reads from one collection, as protocols: the store needs the shape of a rate book, not the rates
stage that builds it (`aggregator.rates.collect.RateBook` satisfies `Collection`), so the store imports nothing
above it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection


class StoredRate(Protocol):
    """One venue component's yield of a collection."""

    @property
    def venue(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def sources(self) -> Sequence[str]: ...
    @property
    def observed_at(self) -> datetime: ...
    @property
    def spread(self) -> float | None: ...
    @property
    def independent(self) -> int: ...
    @property
    def lineage(self) -> Sequence[str]: ...


class StoredQuote(Protocol):
    """One valid quote of a source, before cross-checks."""

    @property
    def source(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def observed_at(self) -> datetime: ...
    @property
    def note(self) -> str: ...


class StoredRejection(Protocol):
    """A quote rejected with its reason."""

    @property
    def source(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def reason(self) -> str: ...


class Collection(Protocol):
    """One collection: when, which sources failed, the rates, the quotes and the rejections."""

    @property
    def fetched_at(self) -> datetime: ...
    @property
    def failed_sources(self) -> Mapping[str, str]: ...
    @property
    def rates(self) -> Sequence[StoredRate]: ...
    @property
    def quotes(self) -> Sequence[StoredQuote]: ...
    @property
    def rejected(self) -> Sequence[StoredRejection]: ...


class Fenced(Protocol):
    """A fence a write runs first (`aggregator.coordination.Fence`): `check` raises LeaseLostError, inside the
    write's transaction, when the lease it stands for was taken by another."""

    def check(self, conn: Connection) -> None: ...
