"""Replay a recorded snapshot file: the offline demo and tests.

The file holds quotes already normalised to fractions per year, each with the time it was really observed and
where it came from. With `replay = true` the quotes are re-stamped so that the snapshot's `as_of` is now (ages
relative to the snapshot are kept), so a demo snapshot keeps working on any date.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.base import BoundedText, Quote, SourceSettings
from adapters.errors import SourceDataError
from aggregator.core.clock import Clock


class SnapshotSettings(SourceSettings):
    adapter: Literal["snapshot"]
    path: Path
    replay: bool = True


class _Recorded(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1)
    value: float = Field(allow_inf_nan=False)
    observed_at: AwareDatetime
    origin: BoundedText = Field(min_length=1)


class SnapshotFile(BaseModel):
    """The recorded file's schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: AwareDatetime
    description: str
    quotes: list[_Recorded]


def load_snapshot(path: Path, source: str = "snapshot") -> SnapshotFile:
    try:
        return SnapshotFile.model_validate(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise SourceDataError(source, f"snapshot file not found: {path}") from exc
    except (ValueError, ValidationError) as exc:
        raise SourceDataError(source, f"snapshot file {path} is malformed: {exc}") from exc


class SnapshotAdapter:
    keys: ClassVar[frozenset[str] | None] = None
    settings_model: ClassVar[type[SourceSettings]] = SnapshotSettings

    async def fetch(
        self,
        client: httpx.AsyncClient,
        name: str,
        settings: SnapshotSettings,
        keys: Sequence[str],
        now: Clock,
    ) -> list[Quote]:
        del client  # a file, not a request
        snap = load_snapshot(settings.path, name)
        fetched = now()
        wanted = set(keys)
        shift = fetched - snap.as_of if settings.replay else fetched - fetched
        return [
            Quote(
                source=name,
                key=q.key,
                value=q.value,
                observed_at=q.observed_at + shift,
                fetched_at=fetched,
                note=f"{q.origin} (recorded {q.observed_at.date().isoformat()})",
            )
            for q in snap.quotes
            if q.key in wanted
        ]
